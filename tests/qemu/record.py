# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
"""A real 2-channel multifd migration between two QEMU processes, recorded
by migstream-record on loopback.

    source QEMU (-S, TCG, pc, 64 MiB, a 1 MiB blob loaded at 0x1000000)
      --tcp--> migstream-record --tcp--> destination QEMU (-incoming defer)
    both: multifd=on, multifd-channels=2 (QMP)

Checks: both sides complete; the destination's memory at 0x1000000 holds
the blob (QMP pmemsave); the recording has conn0 qemu-main and conn1/conn2
qemu-multifd in its manifest with the files' byte counts; migstream-verify
accepts the recorded s2d files; migstream-extract --ram rebuilds pc.ram
with the blob at 0x1000000.  The destination has no loader device, so the
blob can only have come through the migration.

Usage: record.py --bin BUILD_DIR --qemu BIN --keep DIR
  DIR/capture  the recording (kept for archive/replay tests)
  DIR/blob.bin the ground truth; DIR/*.log the processes' stderr
Exit 0 when every check held, 1 when one did not.
"""
import argparse
import ctypes
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

from qmp import Qmp

BLOB_ADDR = 0x1000000
BLOB_SIZE = 1 << 20
TIMEOUT = 40  # seconds for the whole migration


class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            self.failed += 1
        return cond


def qemu_cmd(qemu, qmp_path, extra):
    return [qemu, "-machine", "pc,accel=tcg", "-m", "64", "-nographic",
            "-nodefaults", "-serial", "none", "-monitor", "none",
            "-qmp", "unix:%s,server=on,wait=off" % qmp_path] + extra


def die_with_parent():
    """In the child: killed when this script dies, however it dies
    (prctl PR_SET_PDEATHSIG, SIGKILL), so no QEMU outlives the test."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def start(cmd, log_path, procs):
    with open(log_path, "wb") as log:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=log,
                             preexec_fn=die_with_parent)
    procs.append(p)
    return p


def multifd(qmp):
    qmp.cmd("migrate-set-capabilities",
            capabilities=[{"capability": "multifd", "state": True}])
    qmp.cmd("migrate-set-parameters", **{"multifd-channels": 2})


def wait_completed(ck, src, dst, deadline):
    """Poll both sides until both completed (or one failed, or time out)."""
    s = d = None
    while time.monotonic() < deadline:
        s = src.cmd("query-migrate").get("status")
        d = dst.cmd("query-migrate").get("status")
        if s in ("failed", "cancelled") or d in ("failed", "cancelled"):
            break
        if s == "completed" and d == "completed":
            break
        time.sleep(0.1)
    ck.check(s == "completed", "source migration completed (%s)" % s)
    return ck.check(d == "completed", "destination completed (%s)" % d)


def wait_exit(proc, deadline):
    try:
        return proc.wait(max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return None


def check_manifest(ck, cap):
    with open(os.path.join(cap, "manifest.json")) as f:
        m = json.load(f)
    conns = m.get("connections", [])
    kinds = [c.get("kind") for c in conns]
    ck.check(kinds == ["qemu-main", "qemu-multifd", "qemu-multifd"],
             "manifest kinds main, multifd, multifd (%s)" % kinds)
    for c in conns:
        for d in ("s2d", "d2s"):
            path = os.path.join(cap, c[d]["file"])
            ck.check(os.path.getsize(path) == int(c[d]["bytes"]),
                     "%s: %s bytes as in the manifest" % (c[d]["file"],
                                                          c[d]["bytes"]))
        ck.check(not c["closed_by"].startswith("error"),
                 "conn%d closed by %s" % (c["index"], c["closed_by"]))
    return len(conns)


def check_tools(ck, binary, cap, keep, blob, n):
    files = [os.path.join(cap, "conn%d.s2d" % i) for i in range(n)]
    v = subprocess.run([os.path.join(binary, "migstream-verify")] + files,
                       capture_output=True, text=True, timeout=60)
    ck.check(v.returncode == 0, "migstream-verify on the recorded s2d: exit %d %s"
             % (v.returncode, (v.stdout + v.stderr).strip()[:300]))
    ram = os.path.join(keep, "ram")
    shutil.rmtree(ram, ignore_errors=True)
    x = subprocess.run([os.path.join(binary, "migstream-extract"), "--ram",
                        ram] + files, capture_output=True, text=True,
                       timeout=60)
    ck.check(x.returncode == 0, "migstream-extract --ram: exit %d %s"
             % (x.returncode, x.stderr.strip()[:300]))
    try:
        with open(os.path.join(ram, "pc.ram"), "rb") as f:
            f.seek(BLOB_ADDR)
            got = f.read(BLOB_SIZE)
    except OSError as e:
        got = str(e).encode()
    ck.check(got == blob, "extracted pc.ram holds the blob at 0x%x" % BLOB_ADDR)


def migrate(ck, a, procs, blob_path):
    """Run the migration through migstream-record; the record process."""
    deadline = time.monotonic() + TIMEOUT
    sq, dq = os.path.join(a.keep, "src.qmp"), os.path.join(a.keep, "dst.qmp")
    start(qemu_cmd(a.qemu, sq, [
        "-S", "-device",
        "loader,file=%s,addr=0x%x,force-raw=on" % (blob_path, BLOB_ADDR)]),
        os.path.join(a.keep, "src.log"), procs)
    start(qemu_cmd(a.qemu, dq, ["-incoming", "defer"]),
          os.path.join(a.keep, "dst.log"), procs)
    src, dst = Qmp(sq, deadline), Qmp(dq, deadline)
    multifd(src)
    multifd(dst)
    dst.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")  # a free port
    addr = dst.cmd("query-migrate")["socket-address"][0]
    rec_log = open(os.path.join(a.keep, "record.log"), "w+")
    rec = subprocess.Popen(
        [os.path.join(a.bin, "migstream-record"), "--listen",
         "tcp:127.0.0.1:0", "--to", "tcp:%s:%s" % (addr["host"], addr["port"]),
         "-o", os.path.join(a.keep, "capture"), "--idle", "1"],
        stdin=subprocess.DEVNULL, stderr=rec_log, preexec_fn=die_with_parent)
    procs.append(rec)
    listen = None
    while listen is None and time.monotonic() < deadline:
        rec_log.seek(0)
        for line in rec_log:
            if "listening on tcp:" in line:
                listen = line.split("listening on ", 1)[1].strip()
        time.sleep(0.05)
    if not ck.check(listen is not None, "migstream-record listens"):
        return rec, None
    src.cmd("migrate", uri=listen)
    ok = wait_completed(ck, src, dst, deadline)
    return rec, dst if ok else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--keep", required=True)
    a = ap.parse_args()
    # SIGTERM (ctest's timeout, the trap of record.sh): the finally below
    # kills the processes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ck = Checks()
    cap = os.path.join(a.keep, "capture")
    shutil.rmtree(cap, ignore_errors=True)  # the previous run's recording
    os.makedirs(a.keep, exist_ok=True)
    blob = random.Random(0x51F00D).randbytes(BLOB_SIZE)  # deterministic
    blob_path = os.path.join(a.keep, "blob.bin")
    with open(blob_path, "wb") as f:
        f.write(blob)
    procs = []
    try:
        rec, dst = migrate(ck, a, procs, blob_path)
        if dst is not None:
            mem = os.path.join(a.keep, "dst-mem.bin")
            dst.cmd("pmemsave", val=BLOB_ADDR, size=BLOB_SIZE, filename=mem)
            with open(mem, "rb") as f:
                ck.check(f.read() == blob,
                         "destination memory at 0x%x holds the blob" % BLOB_ADDR)
        rc = wait_exit(rec, time.monotonic() + 20)
        ck.check(rc == 0, "migstream-record exit 0 (got %s; %s)"
                 % (rc, os.path.join(a.keep, "record.log")))
        if rc is not None and os.path.exists(os.path.join(cap, "manifest.json")):
            n = check_manifest(ck, cap)
            check_tools(ck, a.bin, cap, a.keep, blob, n)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    print("recording kept in %s" % cap)
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
