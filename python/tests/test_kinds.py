"""Round trips for every kind on every backend, between two real processes."""
import hashlib
import os

import pytest

import shmkit
from conftest import BACKENDS, fork, join_ok

N = 300


def payload(i):
    """Message i: a size that varies (0 .. ~3 KiB) and a checkable body."""
    body = hashlib.sha256(i.to_bytes(4, "little")).digest()
    return i.to_bytes(4, "little") + body * (i % 97)


def opener(backend, name, handle):
    """How a child opens the object: by name, or from the inherited memfd descriptor."""
    if backend == "memfd":
        return dict(fd=handle.fileno())
    return dict(name=name, backend=backend)


def create_name(backend, name):
    return None if backend == "memfd" else name


@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_round_trip(backend, name):
    cons = shmkit.Channel(create_name(backend, name), "consumer", create=True,
                          backend=backend, capacity=16384)
    how = opener(backend, name, cons)

    def producer():
        with shmkit.Channel(role="producer", **how) as ch:
            for i in range(N):
                m = payload(i)
                if i % 3 == 0:
                    ch.send(m, timeout=10)
                else:
                    with ch.loan(len(m), timeout=10) as buf:
                        buf[:] = m

    pid = fork(producer)
    buf = bytearray(cons.max_msg)
    for i in range(N):
        if i % 3 == 0:
            got = cons.recv(timeout=10)
        elif i % 3 == 1:
            with cons.peek(timeout=10) as msg:
                assert msg.readonly
                got = bytes(msg)
        else:
            n = cons.recv_into(buf, timeout=10)
            got = bytes(buf[:n])
        assert got == payload(i), i
    with pytest.raises(EOFError):
        cons.recv(timeout=10)
    assert list(cons) == []
    join_ok(pid)
    cons.unlink()
    cons.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_pubsub_round_trip(backend, name):
    sub = shmkit.Subscriber(create_name(backend, name), create=True, backend=backend,
                            capacity=16384)
    how = opener(backend, name, sub)
    r, w = os.pipe()

    def publisher():
        os.close(r)
        with shmkit.Publisher(**how) as pub:
            os.write(w, b"1")  # a second subscriber joins before the first message
            assert os.read(r2, 1) == b"1"
            for i in range(N):
                m = payload(i)
                if i % 2:
                    pub.send(m, timeout=10)
                else:
                    with pub.loan(len(m), timeout=10) as buf:
                        buf[:] = m

    r2, w2 = os.pipe()
    pid = fork(publisher)
    os.close(w)
    assert os.read(r, 1) == b"1"
    sub2 = shmkit.Subscriber(**how)
    os.write(w2, b"1")
    # Block mode: the publisher waits for the slower subscriber, so read both in turn.
    for i, m in enumerate(sub):
        assert m == payload(i), i
        with sub2.peek(timeout=10) as msg:
            assert bytes(msg) == payload(i)
    assert i == N - 1
    with pytest.raises(EOFError):
        sub2.recv(timeout=10)
    join_ok(pid)
    for fd in (r, w2):
        os.close(fd)
    sub2.close()
    sub.unlink()
    sub.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_queue_round_trip(backend, name):
    q = shmkit.Queue(create_name(backend, name), create=True, backend=backend, slots=64,
                     max_msg=4096)
    how = opener(backend, name, q)

    def producer():
        with shmkit.Queue(**how) as qp:
            for i in range(N):
                m = payload(i)
                if i % 2:
                    qp.send(m, timeout=10)
                else:
                    with qp.loan(len(m), timeout=10) as buf:
                        buf[:] = m

    pid = fork(producer)
    got = []
    for i in range(N):
        if i % 2:
            got.append(q.recv(timeout=10))
        else:
            with q.peek(timeout=10) as msg:
                got.append(bytes(msg))
    assert got == [payload(i) for i in range(N)]
    with pytest.raises(TimeoutError):
        q.recv(timeout=0.05)
    join_ok(pid)
    q.unlink()
    q.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_table_round_trip(backend, name):
    t = shmkit.Table(create_name(backend, name), create=True, backend=backend, capacity=256,
                     value_max=1024)
    how = opener(backend, name, t)

    def writer():
        with shmkit.Table(**how) as tw:
            for i in range(100):
                tw[f"k{i}"] = payload(i)[:1000]
            del tw["k7"]

    join_ok(fork(writer))
    assert len(t) == 99
    assert t["k3"] == payload(3)[:1000]
    assert "k7" not in t and t.get("k7") is None and t.get("k7", b"x") == b"x"
    with pytest.raises(KeyError):
        t["k7"]
    with pytest.raises(KeyError):
        del t["k7"]
    assert sorted(t) == sorted(f"k{i}".encode() for i in range(100) if i != 7)
    assert dict(t.items())[b"k5"] == payload(5)[:1000]
    value, ver = t.get_versioned("k1")
    assert t.cas("k1", ver, b"new") > ver
    assert t.cas("k1", ver, b"lost") is None         # the version moved on
    assert t["k1"] == b"new"
    assert t.cas("fresh", 0, b"v") and t.cas("fresh", 0, b"w") is None
    t.verify()
    with pytest.raises(shmkit.Error) as e:
        t["big"] = b"x" * 2000
    assert e.value.errno == 90  # EMSGSIZE
    t.unlink()
    t.close()


def test_waitset_reports_the_ready_member(name):
    a = shmkit.Channel(name + "a", "consumer", create=True)
    b = shmkit.Subscriber(name + "b", create=True)
    pa = shmkit.Channel(name + "a", "producer")
    pb = shmkit.Publisher(name + "b")
    with shmkit.WaitSet() as ws:
        ws.add(a, "video")
        ws.add(b)
        assert len(ws) == 2
        with pytest.raises(TimeoutError):
            ws.wait(timeout=0.05)
        pb.send(b"telemetry")
        assert ws.wait(timeout=5) == [(b, shmkit.READABLE)]
        assert b.recv() == b"telemetry"
        pa.close()
        assert ws.wait(timeout=5) == [("video", shmkit.CLOSED)]
        with pytest.raises(RuntimeError):
            a.close()  # still a member
        ws.remove(a)
    a.unlink()
    b.unlink()
    for h in (a, b, pb):
        h.close()


def test_errors_keep_errno(name):
    with pytest.raises(FileNotFoundError) as e:
        shmkit.Channel(name, "consumer")
    assert e.value.errno == 2 and name in str(e.value)
    ch = shmkit.Channel(name, "consumer", create=True)
    with pytest.raises(FileExistsError):
        shmkit.Channel(name, "consumer", create=True)
    with pytest.raises(shmkit.BusyError):
        shmkit.Channel(name, "consumer")
    with pytest.raises(PermissionError) as e:
        ch.send(b"x")  # a consumer cannot send
    assert e.value.errno == 1
    t = shmkit.Table(name + "t", create=True)
    ro = shmkit.Table(name + "t", readonly=True)
    with pytest.raises(PermissionError):
        ro["k"] = b"v"
    ro.close()
    t.unlink()
    t.close()
    ch.unlink()
    ch.close()
    with pytest.raises(ValueError):
        ch.recv()


def test_recv_into_too_small_keeps_the_message(name):
    rx = shmkit.Channel(name, "consumer", create=True)
    tx = shmkit.Channel(name, "producer")
    tx.send(b"0123456789")
    small = bytearray(4)
    with pytest.raises(shmkit.Error) as e:
        rx.recv_into(small)
    assert e.value.errno == 105  # ENOBUFS
    big = bytearray(64)
    assert rx.recv_into(big, timeout=1) == 10 and bytes(big[:10]) == b"0123456789"
    rx.unlink()
    rx.close()
    tx.close()


def test_pubsub_overwrite_counts_lost_messages(name):
    sub = shmkit.Subscriber(name, create=True, policy="overwrite", capacity=4096, max_msg=64)
    pub = shmkit.Publisher(name)
    for i in range(1000):  # never waits: laps the subscriber many times
        pub.send(i.to_bytes(8, "little") * 4)
    got = []
    while True:
        try:
            got.append(int.from_bytes(sub.recv(timeout=0)[:8], "little"))
        except TimeoutError:
            break
    assert got and got[-1] == 999 and got == sorted(got)
    assert sub.lost == 1000 - len(got)
    sub.unlink()
    for h in (sub, pub):
        h.close()
