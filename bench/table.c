/* bench/table — the shared lookup table: get/put throughput and latency from 1 or 2 reader
 * processes with 0 or 1 writer process, as ratios to the same table used by one process
 * alone (the ceiling) and to Redis GET/SET over loopback (a redis-server started and
 * stopped by the benchmark, one command per round trip and pipelined), all in one run.
 * The measuring code is bench/lib/table.c (shared with `shmkit bench`). Timing never fails
 * the run: exit 0 unless something broke; without redis-server the Redis rows say
 * "skipped".
 */
#include "lib/table.h"

int main(int argc, char **argv)
{
	return bench_table_main(argc, argv);
}
