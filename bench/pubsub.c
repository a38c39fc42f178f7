/* bench/pubsub — publish/subscribe fan-out (1, 2, 4, 8 subscribers) and work-queue
 * throughput (1, 2, 4 producers and consumers, single and batched, next to the reference
 * sequence-per-slot MPMC queue), every configuration in one run. The measuring code is
 * bench/lib/pubsub.c (shared with `shmkit bench`). Needs 9 CPUs for the 8-subscriber row
 * and 8 for the 4 x 4 row to be meaningful: bench/run-multicore.sh runs exactly these on a
 * bigger machine. Timing never fails the run: exit 0 unless something broke.
 */
#include "lib/pubsub.h"

int main(int argc, char **argv)
{
	return bench_multi_main(argc, argv);
}
