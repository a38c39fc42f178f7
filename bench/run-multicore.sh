#!/bin/sh
# bench/run-multicore.sh — the measurements of the many-party channels that need more CPUs
# than the 2-vCPU development VMs have: publish/subscribe with 1, 2, 4, 8 subscribers (9
# processes) and the work queue with 1, 2, 4 producers x consumers (8 processes), next to
# the reference sequence-per-slot MPMC queue measured in the same run. Run it where 16 CPUs
# exist; it builds what it needs with cc alone (no check, no other benchmark code) and
# finishes in well under 5 minutes:
#
#     sh bench/run-multicore.sh            # or: sh bench/run-multicore.sh --quick
#
# Everything goes to standard output as Markdown. Each configuration pins its processes to
# distinct CPUs when there are enough, and says "oversubscribed" when not.
set -eu
cd "$(dirname "$0")/.."
out=${TMPDIR:-/tmp}/shmkit-multicore.$$
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT INT TERM
CC=${CC:-cc}
$CC -std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc -Ibench -o "$out/pubsub" \
	src/*.c \
	bench/lib/common.c bench/lib/pubsub.c bench/pubsub.c -lpthread -lm
echo "## shmkit many-party channels, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo
printf 'Machine: %s, %s CPUs online (%s usable here), Linux %s\n\n' \
	"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
	"$(getconf _NPROCESSORS_ONLN)" "$(nproc)" "$(uname -r)"
iters=4000000
[ "${1:-}" = "--quick" ] && iters=400000
echo "### 64-byte messages"
echo
timeout 200 "$out/pubsub" --iters "$iters"
echo "### 4 KiB messages, publish/subscribe"
echo
timeout 80 "$out/pubsub" --iters $((iters / 8)) --size 4096 --pubsub-only
