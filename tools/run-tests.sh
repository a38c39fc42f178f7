#!/bin/sh
# Runs Check test binaries: tools/run-tests.sh BUILD_DIR BIN...
# Each binary forks every test with its own timeout (Check's CK_FORK), so a crash or a hang
# is a named failure. After each binary the runner checks that it left no shared-memory
# segment behind (POSIX objects in /dev/shm, System V segments in /proc/sysvipc/shm).
set -u
build=$1
shift
snapshot() {
	{ ls /dev/shm 2>/dev/null | sed 's/^/posix /'
	  awk 'NR > 1 { print "sysv " $1 " " $2 }' /proc/sysvipc/shm 2>/dev/null; } | sort
}
failed=""
total=0
start=$(date +%s)
for bin in "$@"; do
	total=$((total + 1))
	before=$(snapshot)
	echo "== $bin"
	t0=$(date +%s)
	if ! "$bin"; then
		failed="$failed $bin"
	fi
	# Per-suite wall time, so the CI budget can be traced to the suites that spend it.
	echo "== $bin: $(($(date +%s) - t0)) s"
	after=$(snapshot)
	# Lines present after the suite but not before it: what it leaked.
	leaked=$(printf '%s\n' "$before" | comm -13 - /dev/fd/3 3<<EOT
$after
EOT
)
	if [ -n "$leaked" ]; then
		echo "LEAK: $bin left shared memory behind:"
		printf '  %s\n' "$leaked"
		failed="$failed $bin(leak)"
	fi
done
end=$(date +%s)
if [ -n "$failed" ]; then
	echo "[$build] FAILED:$failed ($total suites, $((end - start)) s)"
	exit 1
fi
echo "[$build] all $total suites passed ($((end - start)) s)"
