/* bench/peers — other shared-memory libraries, measured by the same drivers and printed in
 * the same format as `shmkit bench`, with the floor and shmkit's rows from the same run.
 * Not part of `make` or `make check`: `make bench-peers` installs the Debian packages and
 * builds and runs them (bench/peers/run.sh). */
#ifndef SHMKIT_BENCH_PEERS_PEER_H
#define SHMKIT_BENCH_PEERS_PEER_H

#include "lib/ipc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parses [--quick] [--duration SEC] [--sizes LIST] [--json], then measures the floor,
 * shmkit-spin, shmkit-block, ring and `mechs` at every size — each size in a fresh pair of
 * processes (a library's runtime, once initialized, cannot be inherited across fork) — and
 * prints the Markdown table (or JSON). Returns the exit status for main(). */
int peer_main(int argc, char **argv, const char *title, const struct ipc_mech *const *mechs,
	      int nmech);

#ifdef __cplusplus
}
#endif

#endif
