/* The README's 20-line example: a producer and a consumer sharing a stream channel.
 * (Kept identical to the snippet in README.md; `make` builds it.) */
#include <shmkit.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	struct shmkit_chan *ch;
	if (fork() == 0) {                       /* consumer */
		char buf[256];
		while (shmkit_chan_open("hello", SHMKIT_CHAN_CONSUMER, NULL, &ch) < 0)
			usleep(1000);                    /* until the producer created it */
		ssize_t n;
		while ((n = shmkit_chan_recv_wait(ch, buf, sizeof buf, NULL)) >= 0)
			printf("got %.*s\n", (int)n, buf);  /* ends with -EPIPE */
		shmkit_chan_unlink(ch);
		return shmkit_chan_close(ch);
	}
	shmkit_chan_create("hello", SHMKIT_CHAN_PRODUCER, NULL, &ch);
	for (int i = 0; i < 3; i++)
		shmkit_chan_send_wait(ch, "hi there", 8, NULL);
	shmkit_chan_close(ch);                   /* end of stream */
	return wait(NULL) < 0;
}
