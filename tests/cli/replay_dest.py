# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
"""A fake migration destination for tests/cli/replay.sh (no QEMU).

Listens on tcp:127.0.0.1:0 (the port it got is written to --port-file) or
unix:PATH, accepts --conns connections, then reads them to their end in
--read-order (indexes in accept order; default 0, 1, ...), each saved to
OUT/connN.  Options for what it says back on the main connection (conn 0):

  --reply HEX     after reading conn 0 to its end, send these bytes
  --reply-after N ... after its first N bytes instead (then read on)
  --reset-after N read only N bytes of conn 0, then reset it (SO_LINGER 0)

It exits 0, or 1 when a connection did not end within --timeout seconds
(a replayer that holds a connection back deadlocks against it).  Every
accepted socket gets a small receive buffer, so a replayer that sends one
connection after another blocks on the main connection while this reads
another.
"""
import argparse
import os
import socket
import struct
import sys
import time


def listen(where, port_file):
    if where.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind(where[5:])
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind(("127.0.0.1", 0))
    s.listen(16)
    if port_file:
        with open(port_file + ".tmp", "w") as fh:
            fh.write("%d\n" % (s.getsockname()[1] if s.family == socket.AF_INET else 0))
        os.rename(port_file + ".tmp", port_file)
    return s


def read_to_end(conn, out_path, deadline, limit=None, reply=None):
    """Read to the end (or `limit` bytes); reply = (after N bytes, bytes)
    is sent once that many were read."""
    got = 0
    with open(out_path, "wb") as fh:
        while limit is None or got < limit:
            conn.settimeout(max(0.1, deadline - time.monotonic()))
            chunk = conn.recv(min(65536, (limit - got) if limit else 65536))
            if not chunk:
                break
            fh.write(chunk)
            got += len(chunk)
            if reply and got >= reply[0]:
                conn.sendall(reply[1])
                reply = None
    return got


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--port-file")
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--read-order", default="")
    p.add_argument("--out", required=True)
    p.add_argument("--reply", default="")
    p.add_argument("--reply-after", type=int)
    p.add_argument("--reset-after", type=int)
    p.add_argument("--timeout", type=float, default=20)
    a = p.parse_args()
    deadline = time.monotonic() + a.timeout
    srv = listen(a.listen, a.port_file)
    srv.settimeout(a.timeout)
    conns = []
    try:
        for _ in range(a.conns):
            c, _ = srv.accept()
            conns.append(c)
        order = [int(x) for x in a.read_order.split(",")] if a.read_order \
            else list(range(a.conns))
        for i in order:
            path = os.path.join(a.out, "conn%d" % i)
            if i == 0 and a.reset_after is not None:
                read_to_end(conns[0], path, deadline, a.reset_after)
                conns[0].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                conns[0].close()
                continue
            early = a.reply_after is not None and i == 0
            read_to_end(conns[i], path, deadline, None,
                        (a.reply_after, bytes.fromhex(a.reply)) if early else None)
            if i == 0 and a.reply and not early:
                conns[0].sendall(bytes.fromhex(a.reply))
    except socket.timeout:
        print("replay_dest: timed out (deadlock?)", file=sys.stderr)
        return 1
    for c in conns:
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
