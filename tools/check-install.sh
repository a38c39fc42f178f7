#!/bin/sh
# Installs shmkit into a scratch DESTDIR, then builds programs against the installed
# copy through pkg-config — tests/install/consumer.c and the users' examples
# examples/producer_consumer.c and examples/chan_producer_consumer.c — runs them against
# the installed shared library, and
# checks the library's SONAME and that it exports only shmkit_ symbols.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=/usr/local
make --no-print-directory -s install DESTDIR="$tmp" PREFIX="$prefix" >/dev/null
export PKG_CONFIG_PATH="$tmp$prefix/lib/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$tmp"
cflags=$(pkg-config --cflags shmkit)
libs=$(pkg-config --libs shmkit)
fail() { echo "check-install: FAILED: $*" >&2; exit 1; }
cc -std=c11 -Wall -Wextra -Werror $cflags -o "$tmp/consumer" tests/install/consumer.c $libs ||
	fail "consumer does not build against the installed headers"
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $cflags -o "$tmp/producer_consumer" \
	examples/producer_consumer.c $libs || fail "the example does not build"
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $cflags -o "$tmp/chan_producer_consumer" \
	examples/chan_producer_consumer.c $libs || fail "the channel example does not build"
soname=$(objdump -p "$tmp$prefix/lib/libshmkit.so" | awk '/SONAME/ {print $2}')
[ "$soname" = "libshmkit.so.0" ] || fail "SONAME is '$soname'"
bad=$(nm -D --defined-only "$tmp$prefix/lib/libshmkit.so" | awk '{print $3}' |
	grep -v '^shmkit_[a-z0-9]' | grep -v '^SHMKIT_' || true)
[ -z "$bad" ] || fail "exports non-API symbols: $bad"
export LD_LIBRARY_PATH="$tmp$prefix/lib"
ldd "$tmp/consumer" | grep -q "$tmp$prefix/lib/libshmkit.so.0" || fail "consumer not linked to the installed library"
"$tmp/consumer" || fail "consumer"
out=$("$tmp/producer_consumer") || fail "example exited non-zero"
expected="Producer wrote: Message 1
Consumer read: Message 1
Producer wrote: Message 2
Consumer read: Message 2
Producer wrote: Message 3
Consumer read: Message 3
Producer wrote: Message 4
Consumer read: Message 4
Producer wrote: Message 5
Consumer read: Message 5
Consumer received END signal. Exiting..."
[ "$out" = "$expected" ] || fail "example output differs:
$out"
out=$("$tmp/chan_producer_consumer") || fail "channel example exited non-zero"
[ "$out" = "$expected" ] || fail "channel example output differs:
$out"
man="$tmp$prefix/share/man"
for page in "$man"/man3/*.3; do
	target=$(sed -n '1s|^\.so ||p' "$page")
	[ -z "$target" ] || [ -f "$man/$target" ] || fail "installed $page: .so $target does not resolve"
done
[ -x "$tmp$prefix/bin/shmkit" ] || fail "CLI not installed"
"$tmp$prefix/bin/shmkit" --version >/dev/null || fail "installed CLI"
comp="$tmp$prefix/share/bash-completion/completions/shmkit"
[ -f "$comp" ] || fail "bash completion not installed"
bash -c ". '$comp' && complete -p shmkit" | grep -q -- '-F _shmkit shmkit' || fail "bash completion"
echo "check-install: installed library, pkg-config, example and CLI ok"
