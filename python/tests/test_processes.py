"""Crashes, signals, hostile peers, the C side, leaks and asyncio."""
import asyncio
import ctypes
import gc
import json
import os
import random
import select
import signal
import subprocess
import sys
import time

import pytest

import shmkit
from conftest import fork, join, join_ok


def test_cli_pub_to_python_consumer(name, cli):
    lines = [f"line {i} {'x' * (i % 50)}" for i in range(200)]
    p = subprocess.Popen([cli, "pub", name, "--create", "--framing", "lines", "-q"],
                         stdin=subprocess.PIPE)
    p.stdin.write(("\n".join(lines) + "\n").encode())
    p.stdin.close()
    assert p.wait(timeout=30) == 0
    with shmkit.Channel(name, "consumer") as ch:
        got = [m.decode() for m in ch]
        ch.unlink()
    assert got == lines


def test_python_producer_to_cli_sub(name, cli):
    ch = shmkit.Channel(name, "producer", create=True)
    sub = subprocess.Popen([cli, "sub", name, "--framing", "len"], stdout=subprocess.PIPE)
    msgs = [os.urandom(random.randrange(0, 3000)) for _ in range(200)]
    for m in msgs:
        ch.send(m, timeout=10)
    ch.close()  # end of stream: sub writes everything, exits 0 and removes the channel
    out, _ = sub.communicate(timeout=30)
    assert sub.returncode == 0
    got, off = [], 0
    while off < len(out):
        n = int.from_bytes(out[off:off + 4], "little")
        got.append(out[off + 4:off + 4 + n])
        off += 4 + n
    assert got == msgs


@pytest.mark.parametrize("kind", ["stream", "pubsub"])
def test_kill9_peer_gives_peer_dead_after_all_committed(kind, name):
    if kind == "stream":
        rx = shmkit.Channel(name, "consumer", create=True)
    else:
        rx = shmkit.Subscriber(name, create=True)
    r, w = os.pipe()

    def producer():
        tx = (shmkit.Channel(name, "producer") if kind == "stream"
              else shmkit.Publisher(name))
        for i in range(50):
            tx.send(i.to_bytes(4, "little") * 8, timeout=10)
        with tx.loan(64) as buf:  # a loan never committed: never delivered
            buf[:4] = b"LOST"
            os.write(w, b"1")
            time.sleep(60)

    pid = fork(producer)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.close(r)
    os.kill(pid, signal.SIGKILL)
    status = join(pid)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    for i in range(50):
        assert rx.recv(timeout=10) == i.to_bytes(4, "little") * 8
    with pytest.raises(shmkit.PeerDeadError) as e:
        rx.recv(timeout=10)
    assert e.value.errno == 130  # EOWNERDEAD
    rx.unlink()
    rx.close()


def test_sigint_interrupts_blocking_recv(name):
    """Ctrl-C during a recv that would wait forever raises KeyboardInterrupt. The issue
    asks for 100 ms; the bound asserted here is loose (a loaded CI machine), the measured
    latency is printed."""
    ch = shmkit.Channel(name, "consumer", create=True)
    r, w = os.pipe()

    def waiter():
        os.close(r)
        # What Ctrl-C normally runs; set explicitly because a shell running make in the
        # background starts it with SIGINT ignored, which Python then keeps.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        c = shmkit.Channel(name, "producer")  # keeps the channel alive, sends nothing
        sub_name = name + "w"
        rx = shmkit.Channel(sub_name, "consumer", create=True)
        try:
            os.write(w, b"1")
            try:
                rx.recv()  # no timeout: only the signal ends it
            except KeyboardInterrupt:
                t = time.monotonic()
                os.write(w, repr(t).encode())
                return
            raise AssertionError("recv returned")
        finally:
            rx.unlink()
            rx.close()
            c.close()

    pid = fork(waiter)
    os.close(w)
    assert os.read(r, 1) == b"1"
    time.sleep(0.3)  # let it settle into its futex sleep
    sent = time.monotonic()
    os.kill(pid, signal.SIGINT)
    ready = select.select([r], [], [], 20)[0]
    reply = os.read(r, 64).decode() if ready else ""
    os.close(r)
    if not reply:
        os.kill(pid, signal.SIGKILL)
    join_ok(pid)
    got = float(reply)
    latency = got - sent
    print(f"\nSIGINT -> KeyboardInterrupt latency: {latency * 1e3:.2f} ms")
    assert 0 <= latency < 2.0
    ch.unlink()
    ch.close()


def test_hostile_scribbler_gives_corrupt_error_never_a_crash(name):
    """A second process scribbles over the ring under a Python reader: every call fails
    cleanly (CorruptError, or another shmkit error), none crashes or hangs."""
    rx = shmkit.Channel(name, "consumer", create=True, capacity=8192)
    tx = shmkit.Channel(name, "producer")
    for i in range(20):
        tx.send(bytes([i]) * 100)
    base, size = rx.mapping()

    r, w = os.pipe()

    def scribbler(seed):
        rnd = random.Random(seed)
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            off = rnd.randrange(size - 64)
            junk = rnd.randbytes(64)
            ctypes.memmove(base + off, junk, 64)  # the inherited shared mapping
        ctypes.memset(base, 0xA5, size)           # and finally all of it
        os.write(w, b"1")

    pid = fork(scribbler, 1)
    os.close(w)
    seen = set()
    deadline = time.monotonic() + 20
    done = False
    while time.monotonic() < deadline and not done:
        done = bool(select.select([r], [], [], 0)[0])
        try:
            rx.recv(timeout=0.01)
            seen.add("msg")
        except (shmkit.Error, OSError, EOFError) as e:
            seen.add(type(e).__name__)
    os.close(r)
    join_ok(pid)
    with pytest.raises(shmkit.CorruptError):
        rx.recv(timeout=0.01)
    print(f"\nscribbler: reader saw {sorted(seen)}")
    assert "CorruptError" in seen, seen
    tx.close()
    rx.unlink()
    rx.close()


def test_no_reference_or_memory_leak(name):
    rx = shmkit.Channel(name, "consumer", create=True)
    tx = shmkit.Channel(name, "producer")
    t = shmkit.Table(name + "t", create=True)
    buf = bytearray(64)

    def rounds(n):
        for i in range(n):
            tx.send(b"x" * 32)
            rx.recv()
            with tx.loan(16) as b:
                b[:2] = b"ab"
            with rx.peek() as m:
                bytes(m)
            tx.send(b"y")
            rx.recv_into(buf)
            t["k"] = b"v" * 10
            t.get("k")
            try:
                rx.recv(timeout=0)
            except TimeoutError:
                pass

    def rss_kib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

    rounds(3000)
    gc.collect()
    total = getattr(sys, "gettotalrefcount", None)
    refs0 = total() if total else None
    objs0 = len(gc.get_objects())
    rss0 = rss_kib()
    rounds(30000)
    gc.collect()
    if total:
        assert total() - refs0 < 100
    assert len(gc.get_objects()) - objs0 < 100
    grown = rss_kib() - rss0
    assert grown < 2048, f"RSS grew {grown} KiB over 30000 rounds"
    for h in (rx, t):
        h.unlink()
    for h in (rx, tx, t):
        h.close()


def test_asyncio_recv_async_and_async_for(name):
    """The event loop stays free while recv_async waits: the publisher sends nothing
    until a task on the same loop has run five times, which it can only do while the
    reader is awaiting (a blocked loop would hang here, and the alarm would fail it)."""
    sub = shmkit.Subscriber(name, create=True)
    r, w = os.pipe()
    go_r, go_w = os.pipe()

    def publisher():
        with shmkit.Publisher(name) as pub:
            os.write(w, b"1")
            assert os.read(go_r, 1) == b"1"
            for i in range(20):
                if i % 5 == 0:
                    time.sleep(0.02)  # the reader waits again
                pub.send(b"m%d" % i)

    pid = fork(publisher)
    os.close(w)
    os.close(go_r)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                if ticks == 5:
                    os.write(go_w, b"1")
                await asyncio.sleep(0.005)

        tk = asyncio.create_task(ticker())
        first = await asyncio.wait_for(sub.recv_async(), 30)
        assert ticks >= 5
        rest = [m async for m in sub]
        tk.cancel()
        return [first] + rest

    assert os.read(r, 1) == b"1"
    got = asyncio.run(main())
    assert got == [b"m%d" % i for i in range(20)]
    join_ok(pid)
    os.close(r)
    os.close(go_w)
    sub.unlink()
    sub.close()


@pytest.mark.parametrize("kind", ["stream", "pubsub", "queue", "table"])
def test_segments_and_stat_match_the_cli(kind, name, cli):
    for backend in ("posix", "sysv"):
        n = f"{name}{backend}"
        if kind == "stream":
            q = shmkit.Channel(n, "consumer", create=True, backend=backend)
            p = shmkit.Channel(n, "producer", backend=backend)
            p.send(b"x" * 100)
        elif kind == "pubsub":
            q = shmkit.Subscriber(n, create=True, backend=backend, history=4)
            p = shmkit.Publisher(n, backend=backend)
            p.send(b"x" * 100)
        elif kind == "queue":
            q = p = shmkit.Queue(n, create=True, backend=backend, persistent=True)
            p.send(b"x")
        else:
            q = p = shmkit.Table(n, create=True, backend=backend, cache=True)
            q["k"] = b"v"
        mine = shmkit.stat(n, backend=backend)
        out = subprocess.run([cli, "stat", n, "--json", "--backend", backend],
                             capture_output=True, check=True, text=True).stdout
        theirs = json.loads(out)
        assert mine == theirs
        assert mine["kind"] == kind and mine["status"] == "ok"
        listed = [s for s in shmkit.segments() if s["name"] == n]
        ls = [s for s in json.loads(subprocess.run([cli, "ls", "--json"], capture_output=True,
                                                   check=True, text=True).stdout)
              if s["name"] == n]
        assert listed == ls and len(listed) == 1
        q.unlink()
        q.close()
        p.close()
    with pytest.raises(FileNotFoundError):
        shmkit.stat(name + "none")
