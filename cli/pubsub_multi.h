/* shmkit CLI — publish/subscribe channels (one publisher, many subscribers) and work
 * queues: the parts of `shmkit pub`, `shmkit sub` and `shmkit stat` that handle them
 * (cli/pubsub_multi.c). cli/pubsub.c hands over to these:
 *   - `shmkit pub NAME --pubsub ...`           -> cli_pub_multi(cmd, argc, argv)
 *   - `shmkit sub NAME ...` on a segment whose kind is SHMKIT_KIND_PUBSUB
 *                                               -> cli_sub_multi(cmd, argc, argv)
 * with the command's own argv (argv[0] = "pub" / "sub"); they parse it themselves.
 */
#ifndef SHMKIT_CLI_PUBSUB_MULTI_H
#define SHMKIT_CLI_PUBSUB_MULTI_H

#include "cli.h"

int cli_pub_multi(const struct cli_cmd *cmd, int argc, char **argv);
int cli_sub_multi(const struct cli_cmd *cmd, int argc, char **argv);

/* `shmkit stat` detail (cli_stat_kind_hooks[] in cli/admin.c). */
void cli_pubsub_describe(const struct shmkit_segment_info *inf, struct cli_kv *kv);
void cli_queue_describe(const struct shmkit_segment_info *inf, struct cli_kv *kv);

#endif
