"""python -m shmkit.bench: shmkit against Python's own IPC, two Python processes.

For each payload (numpy uint8 arrays of 64 B, 64 KiB, 1 MiB and one 1920x1080x3 frame)
a producer process sends the array as fast as the transport takes it, for a fixed time,
and the consumer (this process) receives each message as a numpy array and reads its
first and last element. Measured in one run, so the ratios compare like with like:

  shmkit zero-copy     loan a slot of the ring, copy the array into it (np.copyto on a
                       view), commit; the consumer views the message in place (peek)
  shmkit copy          send(array) / np.frombuffer(recv())
  mp.Queue             multiprocessing.Queue(maxsize=8): put(array) / get() (pickled)
  mp.Pipe              Connection.send_bytes(array) / np.frombuffer(recv_bytes())
  shared_memory+Queue  a SharedMemory pool of 8 slots; the producer copies the array
                       into a free slot and puts its index on a Queue, the consumer
                       views the slot and gives the index back on another Queue

plus a 64-byte round trip (ping-pong, send/recv) and, when the shmkit CLI is found, the
C figure for the same sizes (`shmkit bench -m shmkit-spin`: round-trip p50, and stream
bytes/s with the consumer reading all of every message in place). Never pass/fail: the
targets of issue 15 are printed next to the ratios.
"""
import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
from multiprocessing import shared_memory

import numpy as np

import shmkit

SIZES = [("64 B", 64), ("64 KiB", 64 << 10), ("1 MiB", 1 << 20),
         ("1920x1080x3", 1920 * 1080 * 3)]
MECHS = ["shmkit zero-copy", "shmkit copy", "mp.Queue", "mp.Pipe", "shared_memory+Queue"]
_ctx = mp.get_context("fork")
_names = iter(range(1 << 30))


def _pin(cpu):
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass


def _source(n):
    return (np.arange(n, dtype=np.uint64) % 251).astype(np.uint8)


# --- producers (child processes) ------------------------------------------------------------

def _prod_shmkit(name, n, stop, cpu, zero_copy):
    _pin(cpu)
    src = _source(n)
    with shmkit.Channel(name, "producer") as ch:
        if zero_copy:
            while not stop.value:
                with ch.loan(n) as buf:
                    np.copyto(np.frombuffer(buf, np.uint8), src)
        else:
            while not stop.value:
                ch.send(src)


def _prod_queue(q, n, stop, cpu):
    _pin(cpu)
    src = _source(n)
    while not stop.value:
        q.put(src)
    q.put(None)


def _prod_pipe(conn, n, stop, cpu):
    _pin(cpu)
    src = _source(n)
    while not stop.value:
        conn.send_bytes(src)
    conn.send_bytes(b"")


def _prod_shm(shm_name, free_q, ready_q, n, stop, cpu):
    _pin(cpu)
    src = _source(n)
    shm = shared_memory.SharedMemory(shm_name)
    slots = [np.ndarray((n,), np.uint8, shm.buf, i * n) for i in range(8)]
    while not stop.value:
        i = free_q.get()
        np.copyto(slots[i], src)
        ready_q.put(i)
    ready_q.put(-1)
    del slots
    shm.close()


# --- the consumer side (this process) -------------------------------------------------------

class _Meter:
    """Lets `warm` seconds pass from the first message (first-touch page faults of the
    rings and pools, caches), then counts messages for `seconds` and asks the producer to
    stop; the caller drains what is left (not counted)."""

    def __init__(self, seconds, stop, warm):
        self.seconds, self.stop, self.warm = seconds, stop, warm
        self.count, self.t0, self.start = 0, None, None

    def tick(self):
        now = time.perf_counter()
        if self.start is None:
            self.start = now
        if self.t0 is None:
            if now - self.start >= self.warm:
                self.t0 = now
            return True
        self.count += 1
        if now - self.t0 >= self.seconds:
            self.stop.value = 1
            self.elapsed = now - self.t0
            return False
        return True

    def rate(self):
        return self.count / self.elapsed


def _run(mech, n, seconds, cpus, warm=0.2):
    stop = _ctx.RawValue("b", 0)
    meter = _Meter(seconds, stop, warm)
    cpu_p = cpus[1] if cpus else None
    if mech.startswith("shmkit"):
        name = f"pybench{os.getpid()}-{next(_names)}"
        ch = shmkit.Channel(name, "consumer", create=True, max_msg=max(n, 4096))
        p = _ctx.Process(target=_prod_shmkit, args=(name, n, stop, cpu_p, "zero" in mech))
        p.start()
        try:
            if "zero" in mech:
                while True:
                    with ch.peek() as m:
                        a = np.frombuffer(m, np.uint8)
                        a[0], a[-1]
                        del a
                    if not meter.tick():
                        break
            else:
                for m in ch:
                    a = np.frombuffer(m, np.uint8)
                    a[0], a[-1]
                    if not meter.tick():
                        break
            for m in ch:  # drain to the end of the stream
                pass
        finally:
            p.join()
            ch.unlink()
            ch.close()
    elif mech == "mp.Queue":
        q = _ctx.Queue(maxsize=8)
        p = _ctx.Process(target=_prod_queue, args=(q, n, stop, cpu_p))
        p.start()
        while True:
            a = q.get()
            a[0], a[-1]
            if not meter.tick():
                break
        while q.get() is not None:
            pass
        p.join()
    elif mech == "mp.Pipe":
        rx, tx = _ctx.Pipe(duplex=False)
        p = _ctx.Process(target=_prod_pipe, args=(tx, n, stop, cpu_p))
        p.start()
        tx.close()
        while True:
            a = np.frombuffer(rx.recv_bytes(), np.uint8)
            a[0], a[-1]
            if not meter.tick():
                break
        while rx.recv_bytes():
            pass
        p.join()
        rx.close()
    else:
        shm = shared_memory.SharedMemory(create=True, size=8 * n)
        free_q, ready_q = _ctx.Queue(), _ctx.Queue()
        for i in range(8):
            free_q.put(i)
        p = _ctx.Process(target=_prod_shm, args=(shm.name, free_q, ready_q, n, stop, cpu_p))
        p.start()
        slots = [np.ndarray((n,), np.uint8, shm.buf, i * n) for i in range(8)]
        try:
            while True:
                i = ready_q.get()
                a = slots[i]
                a[0], a[-1]
                free_q.put(i)
                if not meter.tick():
                    break
            while True:
                i = ready_q.get()
                if i < 0:
                    break
                free_q.put(i)
            p.join()
        finally:
            del slots, a
            shm.close()
            shm.unlink()
    return meter.rate()


def _echo(a_name, b_name, cpu):
    _pin(cpu)
    with shmkit.Channel(a_name, "consumer") as a, shmkit.Channel(b_name, "producer") as b:
        for m in a:
            b.send(m)


def _rtt(seconds, cpus):
    """Round-trip percentiles of a 64-byte ping-pong between two Python processes."""
    base = f"pybench{os.getpid()}-{next(_names)}"
    a = shmkit.Channel(base + "a", "producer", create=True)
    b = shmkit.Channel(base + "b", "consumer", create=True)
    p = _ctx.Process(target=_echo, args=(base + "a", base + "b", cpus[1] if cpus else None))
    p.start()
    msg = bytes(64)
    clock = time.perf_counter_ns
    for _ in range(2000):  # warm up
        a.send(msg)
        b.recv()
    samples = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(1000):
            t0 = clock()
            a.send(msg)
            b.recv()
            samples.append(clock() - t0)
    a.unlink()
    b.unlink()
    a.close()
    p.join()
    b.close()
    samples.sort()
    return {q: samples[int(len(samples) * q / 100)] for q in (50, 99)}


def _c_figures(cli, quick):
    """The C stream's round-trip p50 and bytes/s for the same sizes, from shmkit bench."""
    sizes = ",".join(str(n) for _, n in SIZES)
    cmd = [cli, "bench", "--sizes", sizes, "-m", "shmkit-spin", "--json"]
    cmd += ["--quick"] if quick else ["--duration", "10"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"(shmkit bench failed: {e})", file=sys.stderr)
        return {}
    return {r["size"]: r for r in json.loads(out) if r["name"] == "shmkit-spin"}


def _fmt_rate(x):
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.2f} {unit}"
    return f"{x:.0f}"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m shmkit.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=0.5, help="measuring time per cell")
    ap.add_argument("--quick", action="store_true", help="0.2 s per cell, quick C run")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the two processes")
    ap.add_argument("--no-c", action="store_true", help="skip the C figure (shmkit bench)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)
    seconds = 0.2 if args.quick else args.seconds
    cpus = None
    if not args.no_pin:
        avail = sorted(os.sched_getaffinity(0))
        cpus = avail[:2] if len(avail) >= 2 else None
    saved = os.sched_getaffinity(0)
    _pin(cpus[0] if cpus else None)
    load = os.getloadavg()[0]
    results = {}
    try:
        for label, n in SIZES:
            for mech in MECHS:
                print(f"shmkit.bench: {label} {mech}", file=sys.stderr)
                results[(n, mech)] = _run(mech, n, seconds, cpus)
        rtt = _rtt(max(seconds * 2, 0.3), cpus)
    finally:
        os.sched_setaffinity(0, saved)
    cli = None if args.no_c else (os.environ.get("SHMKIT_CLI") or shutil.which("shmkit"))
    cfig = _c_figures(cli, args.quick) if cli else {}

    print(f"Python {sys.version.split()[0]}, numpy {np.__version__}, libshmkit "
          f"{shmkit.LIB_VERSION}; {os.cpu_count()} CPUs, load average {load:.2f} at the "
          f"start; {'pinned to CPUs ' + str(cpus) if cpus else 'not pinned'}; "
          f"{seconds:g} s per cell after 0.2 s of warm-up")
    print()
    print("| payload | mechanism | msg/s | GB/s | × mp.Queue |")
    print("|---|---|---:|---:|---:|")
    for label, n in SIZES:
        base = results[(n, "mp.Queue")]
        for mech in MECHS:
            r = results[(n, mech)]
            print(f"| {label} | {mech} | {_fmt_rate(r)} | {r * n / 1e9:.2f} | {r / base:.1f} |")
        c = cfig.get(n)
        if c and c.get("bytes_per_s"):
            print(f"| {label} | C shmkit-spin (shmkit bench) | {_fmt_rate(c['msgs_per_s'])} | "
                  f"{c['bytes_per_s'] / 1e9:.2f} | – |")
    print()
    print(f"64 B round trip, two Python processes (send/recv): p50 {rtt[50] / 1e3:.2f} us, "
          f"p99 {rtt[99] / 1e3:.2f} us" +
          (f"; C shmkit-spin p50 {cfig[64]['rtt_p50_ns'] / 1e3:.2f} us" if 64 in cfig else ""))
    print()
    best = lambda n: max(results[(n, "shmkit zero-copy")], results[(n, "shmkit copy")])
    frame = SIZES[-1][1]
    print("Issue 15 targets (this run):")
    print(f"  64 B msg/s vs mp.Queue: {best(64) / results[(64, 'mp.Queue')]:.1f}x (target >= 20x)")
    zc_frame = results[(frame, "shmkit zero-copy")]
    print(f"  frame msg/s vs mp.Queue: {zc_frame / results[(frame, 'mp.Queue')]:.1f}x "
          f"(target >= 10x)")
    if frame in cfig and cfig[frame].get("bytes_per_s"):
        print(f"  frame bytes/s vs the C stream: "
              f"{results[(frame, 'shmkit zero-copy')] * frame / cfig[frame]['bytes_per_s']:.2f}x "
              f"(target >= 0.5x)")
    if 64 in cfig:
        print(f"  64 B round-trip p50 above C: {(rtt[50] - cfig[64]['rtt_p50_ns']) / 1e3:.2f} us "
              f"(target <= 3 us)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"load": load, "seconds": seconds, "cpus": cpus,
                       "rows": [{"size": n, "mechanism": m, "msgs_per_s": r}
                                for (n, m), r in results.items()],
                       "rtt_ns": rtt, "c": {str(k): v for k, v in cfig.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
