#!/bin/sh
# Writes the missing one-line man pages of section 3: tools/man-stubs.sh LIBRARY.so
#
# Every function the library exports gets man/man3/NAME.3. A function without a page gets a
# stub `.so man/man3/FAMILY.3` pointing at its family page. The family is that of the other
# stubs sharing its shmkit_NOUN_ prefix (so shmkit_chan_x joins shmkit_chan.3), else the
# table below. Stubs written in the installed form (`.so man3/...`) are rewritten to the
# repository form, which `man -l man/man3/NAME.3` resolves from the repository root;
# `make install` writes them back in the installed form (.so paths there are relative to
# the man directory). Reports the functions whose family page does not name them yet.
set -eu
lib=${1:-build/libshmkit.so}
dir=man/man3
[ -f "$lib" ] || { echo "man-stubs: $lib not built (run make lib)" >&2; exit 1; }

# Families of names whose prefix no stub shares yet.
fallback() {
	case $1 in
	shmkit_table_*) echo shmkit_table ;;
	shmkit_waitset_*) echo shmkit_wait ;;
	shmkit_segment_* | shmkit_backend_* | shmkit_kind_* | shmkit_name_* | shmkit_sysv_*) echo shmkit_segment ;;
	shmkit_mutex_* | shmkit_sem_* | shmkit_seqlock_* | shmkit_event_* | shmkit_futex_* | \
	shmkit_deadline_* | shmkit_now_* | shmkit_pid_*) echo shmkit_sync ;;
	shmkit_chan_*) echo shmkit_chan ;;
	shmkit_pubsub_*) echo shmkit_pubsub ;;
	shmkit_queue_*) echo shmkit_queue ;;
	*) echo "" ;;
	esac
}

# The installed form first: rewrite `.so man3/X` to `.so man/man3/X`.
for f in "$dir"/*.3; do
	if head -n 1 "$f" | grep -q '^\.so man3/'; then
		sed -i '1s|^\.so man3/|.so man/man3/|' "$f"
		echo "man-stubs: rewrote $f"
	fi
done

status=0
for fn in $(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | grep '^shmkit_[a-z0-9]' | sort -u); do
	page=$dir/$fn.3
	if [ ! -f "$page" ]; then
		noun=$(echo "$fn" | cut -d_ -f1-2)
		family=""
		for s in "$dir"/"$noun"_*.3; do
			[ -f "$s" ] || continue
			t=$(sed -n '1s|^\.so man/man3/\(.*\)\.3$|\1|p' "$s")
			if [ -n "$t" ]; then family=$t; break; fi
		done
		[ -n "$family" ] || family=$(fallback "$fn")
		if [ -z "$family" ]; then
			echo "man-stubs: no family page for $fn: write man/man3/$fn.3" >&2
			status=1
			continue
		fi
		echo ".so man/man3/$family.3" > "$page"
		echo "man-stubs: wrote $page -> $family.3"
	fi
	target=$(sed -n '1s|^\.so man/man3/||p' "$page")
	[ -n "$target" ] || target=$fn.3
	if ! grep -q "\\b$fn\\b" "$dir/$target"; then
		echo "man-stubs: $dir/$target does not describe $fn yet" >&2
		status=1
	fi
done
exit $status
