#!/usr/bin/env python3
"""Writes the seed sessions in fuzz/seeds/ (client bytes of whole NBD sessions)."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def opt(option, data=b""):
    return b"IHAVEOPT" + struct.pack(">II", option, len(data)) + data


def export(name, infos=()):
    return struct.pack(">I", len(name)) + name + struct.pack(">H", len(infos)) + b"".join(
        struct.pack(">H", i) for i in infos)


def req(cmd, offset, length, flags=0, handle=1, payload=b""):
    return struct.pack(">IHHQQI", 0x25609513, flags, cmd, handle, offset, length) + payload


FLAGS = struct.pack(">I", 3)
SEEDS = {
    "go-rw": FLAGS + opt(7, export(b"rw", (1, 2, 3))) + req(1, 512, 512, 1, 1, b"\xab" * 512)
    + req(0, 0, 4096) + req(3, 0, 0) + req(6, 4096, 8192, 2) + req(4, 0, 4096) + req(2, 0, 0),
    "list-info-ro": FLAGS + opt(3) + opt(6, export(b"ro", (1,))) + opt(7, export(b"ro"))
    + req(0, 65024, 512) + req(1, 0, 16, 0, 2, b"x" * 16) + req(2, 0, 0),
    "export-name": FLAGS + opt(8) + opt(5) + opt(1, b"rw") + req(6, 0, 65536) + req(0, 65535, 2),
}

os.makedirs(os.path.join(HERE, "seeds"), exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(HERE, "seeds", name), "wb") as f:
        f.write(data)
