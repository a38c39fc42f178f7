/* shmkit CLI — reading every object's counters without taking part (top, hz).
 *
 * A snapshot opens each object the way `shmkit stat` does — as an OBSERVER, read-only where
 * the kind allows it, SHMKIT_SEG_FOREIGN_UID — copies its counters into one kind-neutral
 * struct, and closes it again. Observers hold no role and no member entry, so watching a
 * channel never takes a message, never blocks a party and never writes its shared memory.
 * Counters are snapshots written by other processes: they are shown, never trusted for
 * anything else (a counter that goes backwards gives a rate of 0, not a wrap).
 */
#ifndef SHMKIT_CLI_OBSERVE_H
#define SHMKIT_CLI_OBSERVE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <shmkit.h>

/* One process attached to an object in a named role. */
struct obs_party {
	const char *role; /* "producer", "consumer", "publisher", "subscriber" (static) */
	int32_t pid;
	int32_t alive;    /* 1 alive, 0 dead, -1 unknown */
	int32_t slot;     /* subscriber slot, -1 otherwise */
	bool has_lag;     /* subscribers that have published a position */
	uint64_t lag;     /* messages published and not released by it */
	uint64_t lost;    /* messages it lost (overwrite policy) */
	uint64_t msgs;    /* messages it received */
};

/* One object's counters, whatever its kind. */
struct obs_obj {
	struct shmkit_segment_info info;
	int err;          /* 0, or why the object could not be opened/read (negative errno) */
	bool counted;     /* msgs/bytes/sleeps/wakes mean something for this kind */
	uint64_t fill, fill_whole; /* fill as part/whole (bytes of the ring, slots, entries) */
	uint64_t msgs, bytes;      /* messages and bytes sent (published, put) so far */
	uint64_t sleeps, wakes;    /* futex sleeps and wake-up calls, every party summed */
	uint64_t lost;             /* sum of the subscribers' lost counts */
	int nparties;
	struct obs_party *parties;
};

/* Every shmkit object at one instant. */
struct obs_snap {
	uint64_t t_ns; /* CLOCK_MONOTONIC when the snapshot was taken */
	int n;
	struct obs_obj *obj;
};

/* Lists and reads every object; sorted by name, backend, key. Returns 0 or a negative
 * errno (the listing failed). Objects that cannot be opened are included with .err set. */
int obs_take(struct obs_snap *s);

/* Reads one object (already described by `inf`) into *o. Returns o->err. */
int obs_read(const struct shmkit_segment_info *inf, struct obs_obj *o);

void obs_obj_free(struct obs_obj *o);
void obs_free(struct obs_snap *s);

/* The object in `s` that is the same segment as `o` (name, backend, key), or NULL. */
const struct obs_obj *obs_find(const struct obs_snap *s, const struct obs_obj *o);

/* Counter difference per second: (now - before) / dt, 0 when the counter went backwards
 * (a new session, a recreated object) or dt is 0. */
double obs_rate(uint64_t before, uint64_t now, uint64_t dt_ns);

/* --- what the watching commands (top, hz, record, replay) share --------------------------- */

/* Set by SIGINT/SIGTERM once obs_catch_signals() ran: the command finishes its output (a
 * recording's last record, a summary) and exits normally instead of dying mid-write. */
extern volatile sig_atomic_t obs_stop;
void obs_catch_signals(void);

/* Sleeps `ns`, or less once obs_stop is set (cli_nap() sleeps through signals). */
void obs_nap(uint64_t ns);

/* Reports "'NAME' is a KIND, not a stream, pub/sub channel or queue"; returns CLI_ERR. */
struct cli_cmd;
int obs_not_channel(const struct cli_cmd *cmd, const char *name, uint32_t kind);

#endif
