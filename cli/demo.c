/* shmkit CLI — `shmkit demo`: the producer/consumer example, run from the tool.
 *
 * The demo *is* the examples: examples/producer_consumer.c (segment + semaphores, with
 * --semaphores) is compiled into this file, examples/chan_producer_consumer.c (stream
 * channel, the default) into cli/demo_chan.c, both without their main(), so the programs
 * users copy from and the ones `shmkit demo` runs cannot drift apart. This file only parses
 * the command line.
 */
#include <getopt.h>
#include <limits.h>

#include "cli.h"

#define SHMKIT_EXAMPLE_NO_MAIN
#define SHMKIT_EXAMPLE_PROG "shmkit: demo"
#include "../examples/producer_consumer.c"

int cli_cmd_demo(const struct cli_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{"count", required_argument, NULL, 'n'},
		{"semaphores", no_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int count = 5;
	bool semaphores = false;
	int c;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":n:sh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (cli_parse_int(optarg, 0, INT_MAX, &count) < 0)
				return cli_usage_error(cmd, "invalid message count '%s' (0..%d)",
						       optarg, INT_MAX);
			break;
		case 's':
			semaphores = true;
			break;
		default: /* -h, --help and errors */
			return cli_default_option(cmd, c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	int rc = semaphores ? shmkit_example_producer_consumer(count)
			    : shmkit_example_chan_producer_consumer(count);
	return rc == 0 ? CLI_OK : CLI_ERR;
}
