"""Zero copy: loans and peeks are views of the ring itself, released with their block."""
import numpy as np
import pytest

import shmkit


def inside(handle, addr, n):
    base, size = handle.mapping()
    return base <= addr and addr + n <= base + size


@pytest.mark.parametrize("kind", ["stream", "pubsub", "queue"])
def test_numpy_views_lie_in_the_mapping(kind, name):
    if kind == "stream":
        rx = shmkit.Channel(name, "consumer", create=True)
        tx = shmkit.Channel(name, "producer")
    elif kind == "pubsub":
        rx = shmkit.Subscriber(name, create=True)
        tx = shmkit.Publisher(name)
    else:
        rx = shmkit.Queue(name, create=True, max_msg=4096)
        tx = shmkit.Queue(name)
    frame = np.arange(512, dtype=np.float64)
    lo = tx.loan(frame.nbytes)
    with lo as buf:
        a = np.frombuffer(buf, np.float64, 512)
        # The array's data pointer is the loan's, inside the producer's mapping: no copy.
        assert a.ctypes.data == lo.address
        assert inside(tx, a.ctypes.data, a.nbytes)
        a[:] = frame
        del a
    pk = rx.peek(timeout=5)
    with pk as msg:
        b = np.frombuffer(msg, np.float64)
        assert b.ctypes.data == pk.address and inside(rx, b.ctypes.data, b.nbytes)
        assert not b.flags.writeable
        assert np.array_equal(b, frame)
        del b
    for h in (rx, tx):
        if h is rx:
            h.unlink()
        h.close()


def test_view_used_after_its_block_raises(name):
    rx = shmkit.Channel(name, "consumer", create=True)
    tx = shmkit.Channel(name, "producer")
    with tx.loan(8) as buf:
        buf[:] = b"abcdefgh"
        kept = buf
    with pytest.raises(ValueError):
        kept[0] = 1
    with rx.peek() as msg:
        seen = msg
        assert bytes(msg) == b"abcdefgh"
    with pytest.raises(ValueError):
        bytes(seen)
    with pytest.raises(ValueError):
        np.frombuffer(seen, np.uint8)
    rx.unlink()
    rx.close()
    tx.close()


def test_block_refuses_to_end_while_numpy_still_holds_the_ring(name):
    rx = shmkit.Channel(name, "consumer", create=True)
    tx = shmkit.Channel(name, "producer")
    tx.send(b"12345678")
    tx.send(b"second!!")
    pk = rx.peek()
    with pytest.raises(BufferError):
        with pk as msg:
            arr = np.frombuffer(msg, np.uint8)
    # Nothing was released under the array: it still reads the message, and the handle
    # refuses other calls until the peek ends.
    assert bytes(arr) == b"12345678"
    with pytest.raises(BufferError):
        rx.recv()
    with pytest.raises(BufferError):
        pk.release()
    del arr
    pk.release()
    assert pk.done
    assert rx.recv() == b"second!!"
    # The buffer protocol refuses a view of an ended loan or peek.
    with pytest.raises(ValueError):
        memoryview(pk)
    rx.unlink()
    rx.close()
    tx.close()


def test_exception_in_loan_block_cancels(name):
    rx = shmkit.Queue(name, create=True)
    tx = shmkit.Queue(name)
    with pytest.raises(RuntimeError):
        with tx.loan(4) as buf:
            buf[:] = b"half"
            raise RuntimeError("producer failed mid-message")
    with pytest.raises(TimeoutError):
        rx.recv(timeout=0.05)
    lo = tx.loan(100)
    with lo as buf:
        buf[:3] = b"abc"
        lo.nbytes = 3
    assert rx.recv(timeout=5) == b"abc"
    rx.unlink()
    rx.close()
    tx.close()


def test_peek_view_is_read_only(name):
    rx = shmkit.Channel(name, "consumer", create=True)
    tx = shmkit.Channel(name, "producer")
    tx.send(b"ro")
    with rx.peek() as msg:
        with pytest.raises(TypeError):
            msg[0] = 1
    rx.unlink()
    rx.close()
    tx.close()
