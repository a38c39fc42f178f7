/* shmkit CLI — the stream-channel version of `shmkit demo`.
 *
 * Like cli/demo.c for the semaphore version, this file *is* the example users copy from:
 * examples/chan_producer_consumer.c is compiled in (without its main()), so the program and
 * `shmkit demo` cannot drift apart. It gets a translation unit of its own because the two
 * examples are standalone programs that use the same names for their static functions.
 */
#include "cli.h"

#define SHMKIT_EXAMPLE_NO_MAIN
#define SHMKIT_EXAMPLE_PROG "shmkit: demo"
#include "../examples/chan_producer_consumer.c"
