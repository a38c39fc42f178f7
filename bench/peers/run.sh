#!/bin/sh
# Runs the peer-library benchmarks: bench/peers/run.sh BUILD_DIR [OPTIONS]
# (make bench-peers builds them and calls this). OPTIONS go to every benchmark
# (--quick, --duration SEC, --sizes LIST, --json).
#
# iceoryx needs its RouDi daemon: this script starts one for the run and stops it on every
# exit path (trap), then removes the shared memory, sockets and lock files that RouDi and the
# benchmark's processes created during the run (found by comparing /dev/shm and /tmp before
# and after, so nothing else is touched).
set -u
build=${1:-build}
[ $# -gt 0 ] && shift
status=0

snapshot() {
	{ ls -1 /dev/shm 2>/dev/null | sed 's|^|/dev/shm/|'
	  ls -1d /tmp/iox* /tmp/roudi* /tmp/shmkit-bench-* 2>/dev/null; } | sort
}

roudi_pid=""
log=$(mktemp /tmp/shmkit-roudi-log.XXXXXX)
before=$(snapshot)

cleanup() {
	if [ -n "$roudi_pid" ] && kill -0 "$roudi_pid" 2>/dev/null; then
		kill -TERM "$roudi_pid" 2>/dev/null
		i=0
		while kill -0 "$roudi_pid" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$roudi_pid" 2>/dev/null
		wait "$roudi_pid" 2>/dev/null
	fi
	roudi_pid=""
	# What appeared during the run and is RouDi's (its management segment, the per-user
	# data segment, its lock and sockets).
	after=$(snapshot)
	printf '%s\n' "$before" | comm -13 - /dev/fd/3 3<<EOT | while read -r f; do
$after
EOT
		case "$f" in
		/dev/shm/iceoryx_mgmt|/dev/shm/"$(id -un)"|/tmp/iox*|/tmp/roudi*|/tmp/shmkit-bench-*) rm -rf "$f" ;;
		esac
	done
	rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -x "$build/bench/peers/iceoryx" ]; then
	if ! command -v iox-roudi >/dev/null 2>&1; then
		echo "bench-peers: iox-roudi not found (Debian package iceoryx)" >&2
		status=1
	else
		iox-roudi >"$log" 2>&1 &
		roudi_pid=$!
		i=0
		until grep -q "RouDi is ready for clients" "$log" 2>/dev/null; do
			if ! kill -0 "$roudi_pid" 2>/dev/null || [ $i -ge 100 ]; then
				echo "bench-peers: iox-roudi did not start (another RouDi running?):" >&2
				cat "$log" >&2
				status=1
				break
			fi
			sleep 0.1
			i=$((i + 1))
		done
		if [ $status -eq 0 ]; then
			"$build/bench/peers/iceoryx" "$@" || status=1
			echo
		fi
		cleanup
	fi
fi
if [ -x "$build/bench/peers/boost" ]; then
	"$build/bench/peers/boost" "$@" || status=1
fi
exit $status
