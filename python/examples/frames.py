"""Two processes, one stream of video frames, no copy on the receiving side.

    /usr/bin/python3 frames.py

The parent creates the channel and reads; a child process (multiprocessing) writes
1920x1080 RGB frames straight into the channel's ring and closes it at the end.
"""
import multiprocessing as mp

import numpy as np

import shmkit

H, W = 1080, 1920
FRAME = H * W * 3
COUNT = 100


def camera(name):
    with shmkit.Channel(name, "producer") as ch:          # close() = end of stream
        for i in range(COUNT):
            with ch.loan(FRAME, timeout=5) as buf:         # a writable view of the ring
                img = np.frombuffer(buf, np.uint8).reshape(H, W, 3)
                img[:] = i % 256                            # "render" in place
                img[0, 0] = (i, i >> 8, 0)
                del img                                     # no view may outlive the block


def main():
    name = "frames-example"
    with shmkit.Channel(name, "consumer", create=True, max_msg=FRAME) as ch:
        cam = mp.get_context("fork").Process(target=camera, args=(name,))
        cam.start()
        seen = 0
        try:
            while True:
                with ch.peek(timeout=5) as msg:            # read-only view, in place
                    img = np.frombuffer(msg, np.uint8).reshape(H, W, 3)
                    assert img[0, 0, 0] + (int(img[0, 0, 1]) << 8) == seen
                    mean = float(img[1:].mean())           # work on the frame, no copy
                    del img
                seen += 1
        except EOFError:                                    # the camera closed the stream
            pass
        finally:
            cam.join()
            ch.unlink()
    print(f"received {seen} frames, last mean {mean:.1f}")


if __name__ == "__main__":
    main()
