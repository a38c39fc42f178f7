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
# The Python binding, built by pip against the installed library (through pkg-config), as
# `pip install ./python` after `make install` does; a message round trip through it.
py=/usr/bin/python3
/usr/bin/python3 -m pip install -q --no-build-isolation --no-deps --target "$tmp/py" ./python \
	>"$tmp/pip.log" 2>&1 || { cat "$tmp/pip.log"; fail "pip install ./python"; }
PYTHONPATH="$tmp/py" PYTHONDONTWRITEBYTECODE=1 $py -c '
import os, shmkit
name = "chkinst%d" % os.getpid()
rx = shmkit.Channel(name, "consumer", create=True)
tx = shmkit.Channel(name, "producer")
tx.send(b"installed")
assert rx.recv(timeout=5) == b"installed"
rx.unlink()
' || fail "the pip-installed Python binding"
rm -rf python/build python/shmkit.egg-info
echo "check-install: installed library, pkg-config, example, CLI and Python binding ok"
