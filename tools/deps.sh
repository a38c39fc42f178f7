#!/bin/sh
# Installs the Debian packages named as arguments that are missing. Runs apt-get update
# first (only when something is missing). Needs root for the install; otherwise it says
# what to install and fails. With --optional first, a non-root run only says what is
# missing and succeeds (for packages the build can do without).
set -eu
optional=0
if [ "${1:-}" = "--optional" ]; then
	optional=1
	shift
fi
missing=""
for p in "$@"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	if [ "$optional" -eq 1 ]; then
		echo "shmkit: optional Debian packages missing:$missing (features that need them are left out)" >&2
		exit 0
	fi
	echo "shmkit: missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "shmkit: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
