"""Fixtures for the binding's tests: unique names, child processes, a leak check.

Every test runs against real shared memory with real processes (os.fork): the child
opens its own handles (shmkit handles do not survive fork) and reports through its
exit status, or a pipe."""
import itertools
import os
import signal
import sys
import time
import traceback

import pytest

import shmkit

_seq = itertools.count()
PREFIX = f"pyt{os.getpid()}-"
BACKENDS = ["posix", "sysv", "memfd"]


def _ours():
    """Our segments: POSIX names in /dev/shm and System V segments, by our prefix."""
    return sorted((s["name"], s["backend"], s["sysv_id"]) for s in shmkit.segments()
                  if s["name"].startswith(PREFIX))


TEST_TIMEOUT = 120


def _overtime(signum, frame):
    raise pytest.fail.Exception(f"test ran past {TEST_TIMEOUT} s (a hang)")


@pytest.fixture(autouse=True)
def time_limit():
    """No test hangs the suite: SIGALRM interrupts any wait (the binding's waits return
    to Python for signals) and fails the test."""
    old = signal.signal(signal.SIGALRM, _overtime)
    signal.alarm(TEST_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def no_leak():
    before = _ours()
    yield
    after = _ours()
    leaked = [s for s in after if s not in before]
    for name, backend, _ in leaked:
        try:
            shmkit.remove(name, backend={"posix": 1, "sysv": 2}.get(backend, 0))
        except OSError:
            pass
    assert not leaked, f"test left shared memory behind: {leaked}"


@pytest.fixture
def name():
    return f"{PREFIX}{next(_seq)}"


@pytest.fixture
def cli():
    """The C command-line tool of this tree (the C side of interop tests)."""
    path = os.environ.get("SHMKIT_CLI") or os.path.join(
        os.path.dirname(__file__), "..", "..", "build", "shmkit")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        pytest.fail(f"the shmkit CLI is not built at {path} (make cli, or set SHMKIT_CLI)")
    return path


def fork(fn, *args):
    """Runs fn(*args) in a child process; its exit status is 0 when fn returned, 1 when
    it raised (the traceback goes to stderr). Returns the pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn(*args)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def join(pid, timeout=30.0):
    """Waits for a child; returns its wait status (kills it past the timeout)."""
    end = time.monotonic() + timeout
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            return status
        if time.monotonic() > end:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"child {pid} did not finish within {timeout} s")
        time.sleep(0.005)


def join_ok(pid, timeout=30.0):
    status = join(pid, timeout)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, \
        f"child failed (wait status {status:#x})"
