/* shmkit CLI — reading every object's counters without taking part (see observe.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "cli.h"
#include "observe.h"

volatile sig_atomic_t obs_stop;

static void on_signal(int sig)
{
	(void)sig;
	obs_stop = 1;
}

void obs_catch_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

void obs_nap(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
	while (!obs_stop && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int obs_not_channel(const struct cli_cmd *cmd, const char *name, uint32_t kind)
{
	return cli_errorf(cmd, "'%s' is a %s, not a stream, pub/sub channel or queue", name,
			  cli_kind_word(kind));
}

/* The same opening flags as the stat hooks: look only, whoever made the segment. */
#define OBS_FLAGS (SHMKIT_SEG_RDONLY | SHMKIT_SEG_FOREIGN_UID)

double obs_rate(uint64_t before, uint64_t now, uint64_t dt_ns)
{
	if (now < before || dt_ns == 0)
		return 0.0;
	return (double)(now - before) * 1e9 / (double)dt_ns;
}

static struct obs_party *add_party(struct obs_obj *o, const char *role, int32_t pid, int32_t alive)
{
	struct obs_party *p = &o->parties[o->nparties++];
	*p = (struct obs_party){.role = role, .pid = pid, .alive = alive, .slot = -1};
	return p;
}

static int read_stream(const struct shmkit_segment_info *inf, struct obs_obj *o)
{
	/* A stream observer maps read-write (the library's choice), but writes nothing. */
	struct shmkit_chan_opts co = {.seg = cli_info_opts(inf, OBS_FLAGS)};
	struct shmkit_chan *ch;
	int err = shmkit_chan_open(inf->name, SHMKIT_CHAN_OBSERVER, &co, &ch);
	if (err)
		return err;
	struct shmkit_chan_stats st;
	err = shmkit_chan_stats(ch, &st);
	shmkit_chan_close(ch);
	if (err)
		return err;
	o->parties = calloc(2, sizeof *o->parties);
	if (!o->parties)
		return -ENOMEM;
	o->counted = true;
	o->fill = st.fill;
	o->fill_whole = st.capacity;
	o->msgs = st.msgs_sent;
	o->bytes = st.bytes_sent;
	o->sleeps = st.producer_sleeps + st.consumer_sleeps;
	o->wakes = st.producer_wakes + st.consumer_wakes;
	if (st.producer_pid > 0)
		add_party(o, "producer", st.producer_pid, st.producer_alive > 0);
	if (st.consumer_pid > 0)
		add_party(o, "consumer", st.consumer_pid, st.consumer_alive > 0);
	return 0;
}

static int read_pubsub(const struct shmkit_segment_info *inf, struct obs_obj *o)
{
	struct shmkit_pubsub_opts po = {.seg = cli_info_opts(inf, OBS_FLAGS)};
	struct shmkit_pubsub *ps;
	int err = shmkit_pubsub_open(inf->name, SHMKIT_PUBSUB_OBSERVER, &po, &ps);
	if (err)
		return err;
	struct shmkit_pubsub_stats st;
	err = shmkit_pubsub_stats(ps, &st);
	struct shmkit_pubsub_sub_stats *subs = NULL;
	int held = 0;
	if (!err) {
		subs = calloc(st.max_subscribers ? st.max_subscribers : 1, sizeof *subs);
		held = subs ? shmkit_pubsub_subscribers(ps, subs, st.max_subscribers) : -ENOMEM;
	}
	shmkit_pubsub_close(ps);
	if (!err && held < 0)
		err = held;
	if (err) {
		free(subs);
		return err;
	}
	if ((uint32_t)held > st.max_subscribers)
		held = (int)st.max_subscribers;
	o->parties = calloc((size_t)held + 1, sizeof *o->parties);
	if (!o->parties) {
		free(subs);
		return -ENOMEM;
	}
	o->counted = true;
	o->fill_whole = st.capacity;
	/* next_seq counts every message published since creation; msgs_published only the
	 * current publisher's session. */
	o->msgs = st.next_seq;
	o->bytes = st.bytes_published;
	o->sleeps = st.publisher_sleeps;
	o->wakes = st.publisher_wakes;
	if (st.publisher_pid > 0)
		add_party(o, "publisher", st.publisher_pid, st.publisher_alive > 0);
	for (int i = 0; i < held; i++) {
		const struct shmkit_pubsub_sub_stats *s = &subs[i];
		struct obs_party *p = add_party(o, "subscriber", s->pid, s->alive);
		p->slot = (int32_t)s->slot;
		p->has_lag = !s->joining;
		p->lag = s->lag;
		p->lost = s->lost;
		p->msgs = s->msgs;
		o->sleeps += s->sleeps;
		o->lost += s->lost;
		/* The fill of a pub/sub ring is what the slowest subscriber still holds. */
		if (!s->joining && s->lag_bytes > o->fill)
			o->fill = s->lag_bytes;
	}
	if (o->fill > o->fill_whole)
		o->fill = o->fill_whole;
	free(subs);
	return 0;
}

static int read_queue(const struct shmkit_segment_info *inf, struct obs_obj *o)
{
	struct shmkit_queue_opts qo = {.seg = cli_info_opts(inf, OBS_FLAGS)};
	struct shmkit_queue *q;
	int err = shmkit_queue_open(inf->name, &qo, &q);
	if (err)
		return err;
	struct shmkit_queue_stats st;
	err = shmkit_queue_stats(q, &st);
	shmkit_queue_close(q);
	if (err)
		return err;
	o->counted = true;
	o->fill = st.fill > st.slots ? st.slots : st.fill;
	o->fill_whole = st.slots;
	o->msgs = st.msgs_sent;
	o->bytes = st.bytes_sent;
	o->sleeps = st.producer_sleeps + st.consumer_sleeps;
	o->wakes = st.wakes;
	return 0;
}

static int read_table(const struct shmkit_segment_info *inf, struct obs_obj *o)
{
	struct shmkit_table_opts so = {.seg = cli_info_opts(inf, OBS_FLAGS)};
	struct shmkit_table *t;
	int err = shmkit_table_open(inf->name, &so, &t);
	if (err)
		return err;
	struct shmkit_table_stats st;
	err = shmkit_table_stats(t, &st);
	shmkit_table_close(t);
	if (err)
		return err;
	/* A table has no messages: its rate is puts and deletes. */
	o->counted = true;
	o->fill = st.entries > st.capacity ? st.capacity : st.entries;
	o->fill_whole = st.capacity;
	o->msgs = st.puts + st.dels;
	return 0;
}

int obs_read(const struct shmkit_segment_info *inf, struct obs_obj *o)
{
	memset(o, 0, sizeof *o);
	o->info = *inf;
	/* Only valid segments are opened (-EPERM: valid, another user's; observers may look). */
	if ((inf->status != 0 && inf->status != -EPERM) || !cli_info_trusted(inf) || !inf->name[0])
		return o->err = 0;
	switch (inf->kind) {
	case SHMKIT_KIND_STREAM:
		o->err = read_stream(inf, o);
		break;
	case SHMKIT_KIND_PUBSUB:
		o->err = read_pubsub(inf, o);
		break;
	case SHMKIT_KIND_QUEUE:
		o->err = read_queue(inf, o);
		break;
	case SHMKIT_KIND_TABLE:
		o->err = read_table(inf, o);
		break;
	default:
		break;
	}
	return o->err;
}

void obs_obj_free(struct obs_obj *o)
{
	free(o->parties);
	o->parties = NULL;
	o->nparties = 0;
}

void obs_free(struct obs_snap *s)
{
	for (int i = 0; i < s->n; i++)
		obs_obj_free(&s->obj[i]);
	free(s->obj);
	s->obj = NULL;
	s->n = 0;
}

int obs_take(struct obs_snap *s)
{
	memset(s, 0, sizeof *s);
	struct shmkit_segment_info *inf;
	int n = shmkit_segment_list(&inf);
	if (n < 0)
		return n;
	s->obj = calloc(n ? (size_t)n : 1, sizeof *s->obj);
	if (!s->obj) {
		shmkit_segment_list_free(inf);
		return -ENOMEM;
	}
	s->t_ns = shmkit_now_ns();
	for (int i = 0; i < n; i++)
		obs_read(&inf[i], &s->obj[i]);
	s->n = n;
	shmkit_segment_list_free(inf);
	return 0;
}

static bool same_segment(const struct shmkit_segment_info *a, const struct shmkit_segment_info *b)
{
	return strcmp(a->name, b->name) == 0 && a->backend == b->backend &&
	       a->sysv_key == b->sysv_key && a->sysv_id == b->sysv_id &&
	       a->created_ns == b->created_ns;
}

const struct obs_obj *obs_find(const struct obs_snap *s, const struct obs_obj *o)
{
	for (int i = 0; i < s->n; i++)
		if (same_segment(&s->obj[i].info, &o->info))
			return &s->obj[i];
	return NULL;
}
