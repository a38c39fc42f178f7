#!/usr/bin/env python3
"""Reads a `shmkit record` file (format: shmkit(1), RECORDING FORMAT).

    python3 shmkit_record.py FILE        prints one line per message: time (s), length, bytes
    read_recording(path)                  returns (header dict, [(t_ns, payload), ...])

A truncated or corrupt file raises ValueError naming the offset of the first bad record,
the same offsets `shmkit replay --verify` reports.
"""
import struct
import sys
import zlib

HEADER = struct.Struct("<8sHHIQII")  # magic, version, header size, kind, start, reserved, crc
RECORD = struct.Struct("<QII")       # time since start (ns), payload length, crc


def read_recording(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < HEADER.size or data[:8] != b"SHMKREC\0":
        raise ValueError("not a shmkit recording (no header at offset 0)")
    magic, version, hsize, kind, start_ns, _, crc = HEADER.unpack_from(data, 0)
    if crc != zlib.crc32(data[:28]):
        raise ValueError("corrupt header at offset 0 (checksum mismatch)")
    if version != 1:
        raise ValueError("recording format version %d is not supported (only 1)" % version)
    records, off = [], hsize
    while off < len(data):
        if len(data) - off < RECORD.size:
            raise ValueError("truncated record at offset %d" % off)
        t_ns, length, crc = RECORD.unpack_from(data, off)
        body = data[off + RECORD.size:off + RECORD.size + length]
        if len(body) < length:
            raise ValueError("truncated record at offset %d" % off)
        if crc != zlib.crc32(body, zlib.crc32(data[off:off + 12])):
            raise ValueError("corrupt record at offset %d (checksum mismatch)" % off)
        records.append((t_ns, body))
        off += RECORD.size + length
    return {"version": version, "kind": kind, "start_ns": start_ns}, records


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: shmkit_record.py FILE")
    try:
        header, records = read_recording(sys.argv[1])
    except ValueError as e:
        sys.exit("%s: %s" % (sys.argv[1], e))
    for t_ns, body in records:
        print("%.9f %d %s" % (t_ns / 1e9, len(body), body[:32].hex()))
    print("%d records" % len(records))


if __name__ == "__main__":
    main()
