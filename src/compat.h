/* shmkit — the definitions behind public names that have more than one symbol version
 * (src/libshmkit.map, src/object.h). Never installed.
 *
 * shmkit__X is the current definition of shmkit_X (default version SHMKIT_0.2, the one a
 * program built now links against); src/compat.c defines shmkit_X@SHMKIT_0.1, which
 * translates the SHMKIT_0.1 arguments (option structs without reserved words, the old
 * flag values, the observer role or flag) and results (-EMSGSIZE for a short buffer) and
 * calls shmkit__X. */
#ifndef SHMKIT_COMPAT_H
#define SHMKIT_COMPAT_H

#include <sys/types.h>

#include "object.h"

struct timespec;

SHMKIT__EXPORT int shmkit__chan_create(const char *name, int role,
				       const struct shmkit_chan_opts *opts, struct shmkit_chan **chp);
SHMKIT__EXPORT int shmkit__chan_open(const char *name, int role, const struct shmkit_chan_opts *opts,
				     struct shmkit_chan **chp);
SHMKIT__EXPORT int shmkit__chan_open_fd(int fd, int role, const struct shmkit_chan_opts *opts,
					struct shmkit_chan **chp);
SHMKIT__EXPORT ssize_t shmkit__chan_recv(struct shmkit_chan *ch, void *buf, size_t cap);
SHMKIT__EXPORT ssize_t shmkit__chan_recv_wait(struct shmkit_chan *ch, void *buf, size_t cap,
					      const struct timespec *deadline);

SHMKIT__EXPORT int shmkit__pubsub_create(const char *name, int role,
					 const struct shmkit_pubsub_opts *opts,
					 struct shmkit_pubsub **psp);
SHMKIT__EXPORT int shmkit__pubsub_open(const char *name, int role,
				       const struct shmkit_pubsub_opts *opts,
				       struct shmkit_pubsub **psp);
SHMKIT__EXPORT int shmkit__pubsub_open_fd(int fd, int role, const struct shmkit_pubsub_opts *opts,
					  struct shmkit_pubsub **psp);
SHMKIT__EXPORT ssize_t shmkit__pubsub_recv(struct shmkit_pubsub *ps, void *buf, size_t cap);
SHMKIT__EXPORT ssize_t shmkit__pubsub_recv_wait(struct shmkit_pubsub *ps, void *buf, size_t cap,
						const struct timespec *deadline);

SHMKIT__EXPORT int shmkit__queue_create(const char *name, const struct shmkit_queue_opts *opts,
					struct shmkit_queue **qp);
SHMKIT__EXPORT int shmkit__queue_open(const char *name, const struct shmkit_queue_opts *opts,
				      struct shmkit_queue **qp);
SHMKIT__EXPORT int shmkit__queue_open_fd(int fd, const struct shmkit_queue_opts *opts,
					 struct shmkit_queue **qp);
SHMKIT__EXPORT ssize_t shmkit__queue_recv(struct shmkit_queue *q, void *buf, size_t cap);
SHMKIT__EXPORT ssize_t shmkit__queue_recv_wait(struct shmkit_queue *q, void *buf, size_t cap,
					       const struct timespec *deadline);

SHMKIT__EXPORT int shmkit__table_create(const char *name, const struct shmkit_table_opts *opts,
					struct shmkit_table **tp);
SHMKIT__EXPORT int shmkit__table_open(const char *name, const struct shmkit_table_opts *opts,
				      struct shmkit_table **tp);
SHMKIT__EXPORT int shmkit__table_open_fd(int fd, const struct shmkit_table_opts *opts,
					 struct shmkit_table **tp);

#endif
