"""shmkit: shared-memory IPC for Linux, from Python.

Stream channels (one producer, one consumer), pub/sub (one publisher, many subscribers),
work queues (many to many), a shared table, and waitsets, over POSIX, System V or memfd
shared memory, with zero-copy loans and peeks that numpy can view in place::

    import numpy as np, shmkit
    with shmkit.Channel("frames", "producer") as ch:    # another process: "consumer"
        with ch.loan(frame.nbytes) as buf:              # a writable view into the ring
            np.copyto(np.frombuffer(buf, np.uint8), frame.ravel())

Every wait takes ``timeout=`` seconds (None = forever), releases the GIL and is
interrupted by Ctrl-C. Errors are exceptions that keep the errno: EOFError at the end of
a stream, TimeoutError, PeerDeadError, CorruptError, PermissionError, FileNotFoundError.
See python/README.md and the C documentation (man shmkit(7)) for the semantics.
"""
import asyncio as _asyncio
import pwd as _pwd
import time as _time
from collections.abc import MutableMapping as _MutableMapping

from . import _shmkit
from ._shmkit import (BusyError, CorruptError, Error, PeerDeadError, StaleError, View,
                      WaitSet, remove, strerror)
from ._shmkit import READABLE, CLOSED, DEAD, LIB_VERSION

__all__ = ["Channel", "Publisher", "Subscriber", "Queue", "Table", "WaitSet", "View",
           "segments", "stat", "remove", "strerror", "Error", "PeerDeadError",
           "CorruptError", "StaleError", "BusyError", "READABLE", "CLOSED", "DEAD"]
__version__ = "0.1.0"

_BACKENDS = {None: 0, "any": 0, "posix": 1, "sysv": 2, "memfd": 3}
_POLICIES = {"block": 0, "overwrite": 1}


def _backend(b):
    try:
        return _BACKENDS[b]
    except KeyError:
        raise ValueError(f"backend must be one of posix, sysv, memfd (not {b!r})") from None


def _seg(backend, mode, persistent, hugepages, foreign_uid, readonly, sysv_key):
    flags = ((_shmkit.SEG_PERSISTENT if persistent else 0)
             | (_shmkit.SEG_HUGEPAGES if hugepages else 0)
             | (_shmkit.SEG_FOREIGN_UID if foreign_uid else 0)
             | (_shmkit.SEG_RDONLY if readonly else 0))
    return dict(backend=_backend(backend), mode=mode, seg_flags=flags, sysv_key=sysv_key)


def _fd(fd):
    return -1 if fd is None else int(fd)


class _Messages(_shmkit.Endpoint):
    """What the stream, pub/sub and queue handles share: iteration, asyncio, close."""

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self.recv()
        except EOFError:
            raise StopIteration from None

    async def recv_async(self):
        """Receive the next message without blocking the event loop.

        Waits on the library's eventfd (WaitSet.fileno(), watched with
        loop.add_reader): no polling thread of Python's own."""
        loop = _asyncio.get_running_loop()
        while True:
            try:
                return self.recv(timeout=0)
            except TimeoutError:
                pass
            ws = self._ws_async
            if ws is None:
                ws = WaitSet()
                ws.add(self)
                self._ws_async = ws
            fd = ws.fileno()
            try:
                ws.wait(timeout=0)   # ready: try again; else this re-arms the eventfd
                continue
            except TimeoutError:
                pass
            fut = loop.create_future()
            loop.add_reader(fd, lambda: fut.done() or fut.set_result(None))
            try:
                await fut
            finally:
                loop.remove_reader(fd)

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.recv_async()
        except EOFError:
            raise StopAsyncIteration from None

    def _drop_async(self):
        ws = self._ws_async
        if ws is not None:
            self._ws_async = None
            ws.close()

    def close(self):
        """Close this end (a producer or publisher marks the end of the stream)."""
        self._drop_async()
        super().close()

    def abort(self):
        self._drop_async()
        super().abort()

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        state = "closed" if self.closed else f"max_msg={self.max_msg}"
        return f"<shmkit.{type(self).__name__} {self.name!r} {state}>"


class Channel(_Messages):
    """A stream channel end: one producer, one consumer, variable-size messages.

    Channel(name, role, *, create=False, ...) with role "producer" or "consumer"
    (readonly=True: an observer for stats()). Options (0 = the C default):
    capacity (ring bytes, default 1 MiB), max_msg (default capacity/4), spin_ns,
    no_spin; segment options backend ("posix", "sysv", "memfd"; default posix for
    create, any for open), mode (0 = 0600), persistent, sysv_key, hugepages,
    foreign_uid. fd=: open from a descriptor (a memfd inherited or received).
    """

    def __init__(self, name=None, role="consumer", *, create=False, fd=None, capacity=0,
                 max_msg=0, spin_ns=0, no_spin=False, backend=None, mode=0,
                 persistent=False, sysv_key=0, hugepages=False, foreign_uid=False,
                 readonly=False):
        if readonly:
            role = "observer"
        self._attach(_shmkit.KIND_STREAM, name, role, create, _fd(fd), capacity=capacity,
                     max_msg=max_msg, spin_ns=spin_ns,
                     flags=_shmkit.CHAN_NO_SPIN if no_spin else 0,
                     **_seg(backend, mode, persistent, hugepages, foreign_uid, readonly,
                            sysv_key))


class _PubSub(_Messages):
    def __init__(self, name, role, create, fd, capacity, max_msg, max_subscribers, policy,
                 history, spin_ns, no_spin, no_history, backend, mode, persistent, sysv_key,
                 hugepages, foreign_uid, readonly):
        if policy not in _POLICIES:
            raise ValueError("policy must be 'block' or 'overwrite'")
        flags = ((_shmkit.PUBSUB_NO_SPIN if no_spin else 0)
                 | (_shmkit.PUBSUB_NO_HISTORY if no_history else 0))
        self._attach(_shmkit.KIND_PUBSUB, name, "observer" if readonly else role, create,
                     _fd(fd), capacity=capacity, max_msg=max_msg,
                     max_subscribers=max_subscribers, policy=_POLICIES[policy],
                     history=history, spin_ns=spin_ns, flags=flags,
                     **_seg(backend, mode, persistent, hugepages, foreign_uid, readonly,
                            sysv_key))


class Publisher(_PubSub):
    """The publisher of a pub/sub channel: every subscriber sees every message.

    Publisher(name, *, create=False, ...). Options (0 = the C default): capacity
    (1 MiB), max_msg (capacity/4), max_subscribers (16), policy ("block": lossless,
    the publisher waits for the slowest subscriber; "overwrite": latest wins), history
    (messages a late subscriber starts with), spin_ns, no_spin, and the segment options
    of Channel.
    """

    def __init__(self, name=None, *, create=False, fd=None, capacity=0, max_msg=0,
                 max_subscribers=0, policy="block", history=0, spin_ns=0, no_spin=False,
                 backend=None, mode=0, persistent=False, sysv_key=0, hugepages=False,
                 foreign_uid=False):
        super().__init__(name, "publisher", create, fd, capacity, max_msg, max_subscribers,
                         policy, history, spin_ns, no_spin, False, backend, mode, persistent,
                         sysv_key, hugepages, foreign_uid, False)


class Subscriber(_PubSub):
    """A subscriber of a pub/sub channel. Subscriber(name, *, create=False, ...): the
    options of Publisher (used when create=True), no_history=True to start with the next
    message even when the channel keeps history. `lost` counts messages lost to
    overwriting (policy "overwrite")."""

    def __init__(self, name=None, *, create=False, fd=None, capacity=0, max_msg=0,
                 max_subscribers=0, policy="block", history=0, spin_ns=0, no_spin=False,
                 no_history=False, backend=None, mode=0, persistent=False, sysv_key=0,
                 hugepages=False, foreign_uid=False, readonly=False):
        super().__init__(name, "subscriber", create, fd, capacity, max_msg, max_subscribers,
                         policy, history, spin_ns, no_spin, no_history, backend, mode,
                         persistent, sysv_key, hugepages, foreign_uid, readonly)


class Queue(_Messages):
    """A work queue: any number of producers and consumers, each message delivered to
    exactly one consumer (at least once across a consumer crash). Every handle may both
    send and receive.

    Queue(name, *, create=False, ...). Options (0 = the C default): slots (1024, a power
    of two), max_members (64), max_msg (240 bytes), spin_ns, no_spin, and the segment
    options of Channel.
    """

    def __init__(self, name=None, *, create=False, fd=None, slots=0, max_members=0,
                 max_msg=0, spin_ns=0, no_spin=False, backend=None, mode=0,
                 persistent=False, sysv_key=0, hugepages=False, foreign_uid=False,
                 readonly=False):
        self._attach(_shmkit.KIND_QUEUE, name, None, create, _fd(fd), slots=slots,
                     max_members=max_members, max_msg=max_msg, spin_ns=spin_ns,
                     flags=_shmkit.QUEUE_NO_SPIN if no_spin else 0,
                     **_seg(backend, mode, persistent, hugepages, foreign_uid, readonly,
                            sysv_key))


class Table(_shmkit.TableBase, _MutableMapping):
    """A shared table of byte strings, used like a dict by any number of processes.

    Table(name, *, create=False, ...). Options (0 = the C default): capacity (1024
    entries), key_max (64 bytes), value_max (256 bytes), cache (evict instead of failing
    when full), ttl_ms (default time-to-live, 0 = none), stripes, and the segment
    options of Channel (readonly=True: reads only). Keys and values are bytes-like or
    str (UTF-8); values read back as bytes. t[k], t[k] = v, del t[k], k in t, len(t),
    iteration over keys, get, put(k, v, ttl_ms=), get_versioned, cas.
    """

    def __init__(self, name=None, *, create=False, fd=None, capacity=0, key_max=0,
                 value_max=0, cache=False, ttl_ms=0, stripes=0, backend=None, mode=0,
                 persistent=False, sysv_key=0, hugepages=False, foreign_uid=False,
                 readonly=False):
        self._attach(name, create, _fd(fd), capacity=capacity, key_max=key_max,
                     value_max=value_max, flags=_shmkit.TABLE_CACHE if cache else 0,
                     ttl_ms=ttl_ms, stripes=stripes,
                     **_seg(backend, mode, persistent, hugepages, foreign_uid, readonly,
                            sysv_key))

    def __getitem__(self, key):
        r = self.get_versioned(key)
        if r is None:
            raise KeyError(key)
        return r[0]

    def get(self, key, default=None):
        r = self.get_versioned(key)
        return default if r is None else r[0]

    def __contains__(self, key):
        return self.get_versioned(key) is not None

    def __setitem__(self, key, value):
        self.put(key, value)

    def __delitem__(self, key):
        if not self._del(key):
            raise KeyError(key)

    def __iter__(self):
        return iter([k for k, _, _ in self.snapshot()])

    def items(self):
        """(key, value) pairs from one walk of the table."""
        return [(k, v) for k, v, _ in self.snapshot()]

    def __len__(self):
        return self._len()

    def __repr__(self):
        return f"<shmkit.Table {self.name!r}>"


# --- segments() and stat(): the fields of `shmkit ls --json` / `shmkit stat --json` ----

_STATUS = {0: "ok", -11: "not-ready", -74: "corrupt", -71: "incompatible", -34: "truncated",
           -76: "foreign", -124: "wrong-kind", -1: "other-user", -13: "no-access"}


def _user(uid):
    try:
        return _pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _fields(i):
    trusted = i["kind"] != 0
    sysv = i["backend"] == _shmkit.BACKEND_SYSV
    backend, kind = _shmkit._names(i["backend"], i["kind"])
    pid = i["creator_pid"]
    alive = i["creator_alive"] if trusted else -1
    created = None
    if trusted and i["created_ns"]:
        created = _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(i["created_ns"] // 10**9))
    return {
        "name": i["name"],
        "backend": backend,
        "sysv_key": i["sysv_key"] if sysv else None,
        "sysv_id": i["sysv_id"] if sysv else None,
        "kind": kind if trusted else None,
        "lifetime": {1: "ephemeral", 2: "persistent"}.get(i["lifetime"]),
        "total_size": i["total_size"],
        "data_size": i["data_size"] if trusted else None,
        "mode": i["mode"],
        "uid": i["uid"],
        "gid": i["gid"],
        "owner": _user(i["uid"]),
        "sysv_cuid": i["cuid"] if sysv else None,
        "sysv_cgid": i["cgid"] if sysv else None,
        "sysv_creator": _user(i["cuid"]) if sysv else None,
        "creator_pid": pid if trusted and pid > 0 else None,
        "creator_uid": i["creator_uid"] if trusted else None,
        "creator_alive": None if alive < 0 else bool(alive),
        "nattach": i["nattach"] if i["nattach"] >= 0 else None,
        "state": {1: "initializing", 2: "ready"}.get(i["state"], "unknown"),
        "version": (f"{i['ver_major']}.{i['ver_minor']}"
                    if i["ver_major"] or i["ver_minor"] else None),
        "status": _STATUS.get(i["status"], "error"),
        "error": strerror(i["status"]) if i["status"] else None,
        "created": created,
    }


def segments():
    """Every shmkit segment (POSIX and System V), corrupt ones included, as a list of
    dicts with the fields of `shmkit ls --json`, sorted as ls sorts them."""
    rows = _shmkit._segment_list()
    rows.sort(key=lambda i: (i["name"].encode(), i["backend"], i["sysv_key"], i["sysv_id"]))
    return [_fields(i) for i in rows]


def _pct(part, whole):
    return float("%.1f" % (100.0 * part / whole if whole else 0.0))


def _tri(v):
    return None if v < 0 else v > 0


def _kind_detail(i):
    """What `shmkit stat` adds for each kind, read as it reads it: a read-only observer,
    whoever made the object."""
    out = {}
    sysv = i["backend"] == _shmkit.BACKEND_SYSV
    kw = dict(backend={1: "posix", 2: "sysv", 3: "memfd"}.get(i["backend"]),
              sysv_key=i["sysv_key"] if sysv else 0, readonly=True, foreign_uid=True)
    kind, name = i["kind"], i["name"]
    if kind in (_shmkit.KIND_STREAM, _shmkit.KIND_PUBSUB, _shmkit.KIND_QUEUE):
        try:
            fenced, missed = _shmkit._wait_stats(None if sysv else name, i["backend"],
                                                 kw["sysv_key"])
            out["wake_mode"] = "fenced" if fenced else "membarrier"
            out["wake_missed"] = missed
        except OSError:
            pass
    try:
        if kind == _shmkit.KIND_STREAM:
            with Channel(name, **kw) as h:
                s = h.stats()
            out.update(capacity=s["capacity"], max_msg=s["max_msg"], fill=s["fill"],
                       fill_percent=_pct(s["fill"], s["capacity"]),
                       msgs_sent=s["msgs_sent"], bytes_sent=s["bytes_sent"],
                       msgs_recv=s["msgs_recv"], bytes_recv=s["bytes_recv"],
                       producer_pid=s["producer_pid"] if s["producer_pid"] > 0 else None,
                       producer_alive=s["producer_alive"] > 0,
                       consumer_pid=s["consumer_pid"] if s["consumer_pid"] > 0 else None,
                       consumer_alive=s["consumer_alive"] > 0,
                       producer_sleeps=s["producer_sleeps"],
                       producer_wakes=s["producer_wakes"],
                       consumer_sleeps=s["consumer_sleeps"],
                       consumer_wakes=s["consumer_wakes"], closed=s["closed"] != 0)
        elif kind == _shmkit.KIND_PUBSUB:
            with Subscriber(name, **kw) as h:
                s, subs = h.stats(), h.subscribers()
            pid = s["publisher_pid"]
            out.update(policy="overwrite" if s["policy"] == 1 else "block",
                       capacity=s["capacity"], max_msg=s["max_msg"], history=s["history"],
                       max_subscribers=s["max_subscribers"], subscribers=s["subscribers"],
                       published=s["next_seq"], publisher_pid=pid or None,
                       publisher_alive=_tri(s["publisher_alive"] if pid else -1),
                       closed=_tri(s["closed"]), publisher_sleeps=s["publisher_sleeps"],
                       subscribers_dropped=s["subscribers_dropped"])
            for x in subs:
                k = f"subscriber.{x['slot']}."
                out[k + "pid"] = x["pid"]
                out[k + "alive"] = _tri(x["alive"])
                out[k + "lag"] = None if x["joining"] else x["lag"]
                out[k + "lost"] = x["lost"]
                out[k + "received"] = x["msgs"]
        elif kind == _shmkit.KIND_QUEUE:
            with Queue(name, **kw) as h:
                s = h.stats()
            out.update(slots=s["slots"], max_msg=s["max_msg"], fill=s["fill"],
                       members=s["members"], max_members=s["max_members"],
                       sent=s["msgs_sent"], received=s["msgs_recv"],
                       redelivered=s["redelivered"], skipped=s["skipped"])
        elif kind == _shmkit.KIND_TABLE:
            with Table(name, **kw) as h:
                s = h.stats()
            out.update(entries=s["entries"], capacity=s["capacity"],
                       load=_pct(s["entries"], s["capacity"]), key_max=s["key_max"],
                       value_max=s["value_max"], cache=bool(s["flags"] & _shmkit.TABLE_CACHE),
                       ttl_ms=s["ttl_ms"], stripes=s["stripes"], puts=s["puts"],
                       inserts=s["inserts"], dels=s["dels"], cas_failures=s["cas_failures"],
                       evictions=s["evictions"], expirations=s["expirations"],
                       repairs=s["repairs"])
    except OSError as e:
        out["detail_error"] = strerror(e.errno or 0)
    return out


def stat(name=None, *, backend=None, sysv_key=0):
    """Describe one segment: a dict with the fields of `shmkit stat --json`, the
    segment's own and what its kind adds (a channel's counters and ends, a table's load,
    each subscriber's lag...), read through a read-only mapping; the bookkeeping keys
    `shmkit stat` shows for a `shmkit bridge` channel are not included.
    FileNotFoundError when there is no such segment."""
    raw = _shmkit._segment_stat(name, _backend(backend), sysv_key)
    out = _fields(raw)
    if raw["status"] in (0, -1):  # valid, ours or (-EPERM) another user's
        out.update(_kind_detail(raw))
    return out
