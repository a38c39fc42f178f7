/* shmkit CLI — what the files of `shmkit pub` and `shmkit sub` on a stream channel share
 * (cli/pubsub*.c; --pubsub hands over to cli/pubsub_multi.c).
 *
 *   cli/pubsub.c      the design (framings, decisions), the usages, the option values and
 *                     the stream channel's open/leave helpers, the stat detail
 *   cli/pubsub_pub.c  pub: standard input cut into messages
 *   cli/pubsub_sub.c  sub: messages written to standard output
 */
#ifndef SHMKIT_CLI_PUBSUB_INT_H
#define SHMKIT_CLI_PUBSUB_INT_H

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pubsub_multi.h"

#define DEFAULT_CAPACITY (4ull << 20)
#define DEFAULT_MAX_RAW (1ull << 20)
#define DEFAULT_MAX_FRAMED (64ull << 10)
#define MAX_CAPACITY (1ull << 40)   /* the library's largest ring */
#define PIPE_GROW (1u << 20)

/* Whether argv asks for a publish/subscribe channel (handled by cli/pubsub_multi.c). */
static inline bool wants_pubsub(int argc, char **argv, const char *long_opt, const char *short_opt)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], long_opt) == 0 || (short_opt && strcmp(argv[i], short_opt) == 0))
			return true;
	return false;
}

/* cli/pubsub.c */
int cli_chan_open_wait(const char *name, int role, const struct shmkit_chan_opts *co,
		       const struct cli_waiting *w, struct shmkit_chan **chp);
void cli_grow_pipe(int fd);
int cli_chan_leave(struct shmkit_chan *ch, const char *name, bool abort, bool remove);
int cli_chan_open_error(const struct cli_cmd *cmd, const char *name, uint32_t backend, int err,
			int role);
int cli_chan_leave_error(const struct cli_cmd *cmd, const char *name, int err);

#endif
