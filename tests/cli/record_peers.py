# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
"""A tiny source and destination around migstream-record (tests/cli/record.sh).

The destination accepts connections, reads each until the source's end
(its shutdown(SHUT_WR), forwarded by the recorder), then answers with
bytes of its own and closes: a half-close in each direction.  The sources
open their connections one after another (like QEMU: main, then the
channels) and send concurrently, each a different deterministic payload.

Usage: record_peers.py --record BIN --work DIR --case CASE
  CASE: tcp | unix | early-close | no-destination | count | signal
Prints what it checked; exit 0 when all held, 1 when not.
"""
import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

TIMEOUT = 20
# bytes the source sends, and the destination answers, per connection
SIZES = [(3 << 20, 4096), (700_000, 0), (0, 5000), (1, 1)]


def payload(tag, n):
    """n deterministic pseudo-random bytes for `tag`."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%s-%d" % (tag.encode(), i)).digest()
        i += 1
    return bytes(out[:n])


def recv_all(s):
    data = bytearray()
    while True:
        chunk = s.recv(1 << 16)
        if not chunk:
            return bytes(data)
        data += chunk


class Destination:
    """Accept, read to EOF, answer, close; what each connection got."""

    def __init__(self, family, addr, mode):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(addr)
        self.sock.listen(16)
        self.sock.settimeout(TIMEOUT)
        self.mode = mode
        self.got = {}
        self.threads = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        k = 0
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self.one, args=(c, k), daemon=True)
            t.start()
            self.threads.append(t)
            k += 1

    def one(self, c, k):
        c.settimeout(TIMEOUT)
        if self.mode == "early-close":
            time.sleep(0.2)  # let the source's first bytes arrive unread
            c.close()  # unread bytes: the kernel resets the connection
            return
        # the first 8 bytes of what the source sends name its index
        self.got[k] = recv_all(c)
        c.sendall(payload("d2s-%d" % k, SIZES[k % len(SIZES)][1]))
        c.close()


def source(family, addr, k, results, connected):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    try:
        s.connect(addr)
        connected.set()
        s.sendall(payload("s2d-%d" % k, SIZES[k][0]))
        s.shutdown(socket.SHUT_WR)
        results[k] = recv_all(s)
    except OSError as e:
        results[k] = e
    finally:
        connected.set()
        s.close()


def run_sources(family, addr, n):
    """n connections opened in order, sending concurrently."""
    results, threads = {}, []
    for k in range(n):
        connected = threading.Event()
        t = threading.Thread(target=source,
                             args=(family, addr, k, results, connected))
        t.start()
        threads.append(t)
        connected.wait(TIMEOUT)
        time.sleep(0.05)  # accept order = connect order
    for t in threads:
        t.join(TIMEOUT)
    return results


def start_record(binary, listen, to, out, extra):
    proc = subprocess.Popen([binary, "--listen", listen, "--to", to, "-o",
                             out] + extra, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()  # "migstream-record: listening on ADDR"
    if "listening on " not in line:
        proc.kill()
        raise SystemExit("record did not start: " + line)
    return proc, line.split("listening on ", 1)[1].strip()


class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            self.failed += 1


def check_capture(ck, out, n, dest, results, listen_text, to_text):
    """Files byte-exact both ways, manifest right."""
    with open(os.path.join(out, "manifest.json")) as f:
        m = json.load(f)
    ck.check(m.get("migstream_capture") == "1.0", "manifest version 1.0")
    ck.check(m.get("listen") == listen_text, "manifest listen " + listen_text)
    ck.check(m.get("to") == to_text, "manifest to " + to_text)
    ck.check(len(m.get("connections", [])) == n, "manifest lists %d" % n)
    for k in range(n):
        s2d_want = payload("s2d-%d" % k, SIZES[k][0])
        d2s_want = payload("d2s-%d" % k, SIZES[k][1])
        with open(os.path.join(out, "conn%d.s2d" % k), "rb") as f:
            ck.check(f.read() == s2d_want, "conn%d.s2d byte-exact" % k)
        with open(os.path.join(out, "conn%d.d2s" % k), "rb") as f:
            ck.check(f.read() == d2s_want, "conn%d.d2s byte-exact" % k)
        ck.check(dest.got.get(k) == s2d_want, "destination got conn%d" % k)
        ck.check(results.get(k) == d2s_want, "source got conn%d's answer" % k)
        c = m["connections"][k]
        ck.check(c["index"] == k, "conn%d index" % k)
        ck.check(c["s2d"]["bytes"] == str(len(s2d_want)) and
                 c["d2s"]["bytes"] == str(len(d2s_want)), "conn%d counts" % k)
        ck.check(c["s2d"]["file"] == "conn%d.s2d" % k, "conn%d file" % k)
        ck.check(c["kind"] == "unknown", "conn%d kind unknown" % k)
        ck.check(c["closed_by"] in ("source", "both"),
                 "conn%d closed by the source (%s)" % (k, c["closed_by"]))
        ck.check(int(c["close_ms"]) >= int(c["accepted_ms"]) >= 0,
                 "conn%d times" % k)
        if SIZES[k][0]:
            ck.check(int(c["s2d"]["first_byte_ms"]) <=
                     int(c["s2d"]["last_byte_ms"]), "conn%d byte times" % k)
        else:
            ck.check("first_byte_ms" not in c["s2d"], "conn%d no s2d time" % k)


def signal_case(ck, proc, family, addr, out):
    """SIGTERM while a connection is open: it is cut (the source sees its
    end), the manifest is written, exit 1."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(addr)
    s.sendall(b"x" * 1000)
    time.sleep(0.3)
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    sys.stderr.write(err)
    ck.check(proc.returncode == 1, "record exit 1 (got %s)" % proc.returncode)
    try:
        ck.check(recv_all(s) == b"", "the source sees its connection end")
    except OSError as e:
        ck.check(True, "the source sees its connection end (%s)" % e)
    s.close()
    with open(os.path.join(out, "manifest.json")) as f:
        m = json.load(f)
    ck.check(m["stopped"] == "signal", "manifest stopped: " + m["stopped"])
    c = m["connections"][0]
    ck.check(c["closed_by"] == "error: interrupted by signal 15",
             "closed_by " + c["closed_by"])
    ck.check(c["s2d"]["bytes"] == "1000", "s2d bytes " + c["s2d"]["bytes"])
    return 1 if ck.failed else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--record", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--case", required=True)
    a = ap.parse_args()
    ck = Checks()
    out = os.path.join(a.work, "cap-" + a.case)
    unix = a.case == "unix"
    n = len(SIZES)
    if unix:
        dpath = os.path.join(a.work, "dst.sock")
        dest = Destination(socket.AF_UNIX, dpath, a.case)
        to = "unix:" + dpath
        listen = "unix:" + os.path.join(a.work, "rec.sock")
    elif a.case == "no-destination":
        # a port bound but not listening: a connect to it is refused
        # (closing a listener another thread accepts on would not be)
        dest = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        dest.bind(("127.0.0.1", 0))
        to = "127.0.0.1:%d" % dest.getsockname()[1]
        listen = "tcp:127.0.0.1:0"
    else:
        dest = Destination(socket.AF_INET, ("127.0.0.1", 0), a.case)
        port = dest.sock.getsockname()[1]
        to = "127.0.0.1:%d" % port
        listen = "tcp:127.0.0.1:0"
    extra = ["--idle", "0.5"]
    if a.case == "count":
        extra = ["--count", "2", "--idle", "0"]
        n = 2
    if a.case in ("early-close", "no-destination"):
        n = 1
    proc, bound = start_record(a.record, listen, to, out, extra)
    family = socket.AF_UNIX if unix else socket.AF_INET
    if unix:
        addr = bound[len("unix:"):]
    else:
        host, port = bound[len("tcp:"):].rsplit(":", 1)
        addr = (host, int(port))
    if a.case == "signal":
        return signal_case(ck, proc, family, addr, out)
    results = run_sources(family, addr, n)
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        ck.check(False, "record stopped by itself")
    sys.stderr.write(err)
    rc = proc.returncode
    to_text = to if to.startswith("unix:") else "tcp:" + to
    if a.case in ("tcp", "unix", "count"):
        ck.check(rc == 0, "record exit 0 (got %s)" % rc)
        check_capture(ck, out, n, dest, results, bound, to_text)
    if a.case == "count":
        # a third connection is refused: the listener is gone
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.connect(addr)
            ck.check(False, "a connection beyond --count is refused")
        except OSError:
            ck.check(True, "a connection beyond --count is refused")
        s.close()
    if a.case in ("early-close", "no-destination"):
        ck.check(rc == 1, "record exit 1 (got %s)" % rc)
        want = ("destination closed early" if a.case == "early-close"
                else "cannot connect to " + to_text)
        ck.check(want in err, "stderr says '%s'" % want)
        ck.check(isinstance(results.get(0), OSError) or results.get(0) == b"",
                 "the source saw its connection fail (%r)"
                 % str(results.get(0))[:60])
        with open(os.path.join(out, "manifest.json")) as f:
            m = json.load(f)
        c = m["connections"][0]
        ck.check(c["closed_by"].startswith("error: ") and
                 want in c["closed_by"], "manifest closed_by " + c["closed_by"])
        if a.case == "early-close":
            # what the source sent before the reset is still recorded
            got = os.path.getsize(os.path.join(out, "conn0.s2d"))
            ck.check(str(got) == c["s2d"]["bytes"] and got > 0,
                     "early-close: %d bytes recorded" % got)
        else:
            ck.check("s2d" not in c, "no s2d for a connection never forwarded")
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
