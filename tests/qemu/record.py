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

A second migration (no multifd, capability return-path) is recorded the
same way: the destination's return path (conn0.d2s) must get through the
recorder (the source completes only after its SHUT) and verify as one.

Usage: record.py --bin BUILD_DIR --qemu BIN --keep DIR
  DIR/capture  the multifd recording (kept for archive/replay tests)
  DIR/capture-return-path  the second one
  DIR/blob.bin the ground truth; DIR/capture*-*.log the processes' stderr
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


# The migrations recorded: DIR/NAME is each one's recording.  The first is
# the one later tests (archive, replay) start from.
RUNS = [
    {"name": "capture", "caps": {"multifd": True},
     "params": {"multifd-channels": 2},
     "kinds": ["qemu-main", "qemu-multifd", "qemu-multifd"]},
    # the return path (destination -> source on the main connection: d2s)
    # must get through too: the 7.2 source waits for its SHUT to complete
    {"name": "capture-return-path", "caps": {"return-path": True},
     "params": {}, "kinds": ["qemu-main"], "d2s": True},
]


def set_caps(qmp, run):
    qmp.cmd("migrate-set-capabilities", capabilities=[
        {"capability": k, "state": v} for k, v in run["caps"].items()])
    if run["params"]:
        qmp.cmd("migrate-set-parameters", **run["params"])


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


def check_manifest(ck, cap, run):
    with open(os.path.join(cap, "manifest.json")) as f:
        m = json.load(f)
    conns = m.get("connections", [])
    kinds = [c.get("kind") for c in conns]
    ck.check(kinds == run["kinds"], "%s: manifest kinds %s (%s)"
             % (run["name"], run["kinds"], kinds))
    for c in conns:
        for d in ("s2d", "d2s"):
            path = os.path.join(cap, c[d]["file"])
            ck.check(os.path.getsize(path) == int(c[d]["bytes"]),
                     "%s: %s bytes as in the manifest" % (c[d]["file"],
                                                          c[d]["bytes"]))
        ck.check(not c["closed_by"].startswith("error"),
                 "conn%d closed by %s" % (c["index"], c["closed_by"]))
    return len(conns)


def check_tools(ck, binary, cap, blob, n, run):
    """verify on the recorded streams; extract --ram rebuilds the blob."""
    files = [os.path.join(cap, "conn%d.s2d" % i) for i in range(n)]
    if run.get("d2s"):  # the return path, a stream of its own
        files.append(os.path.join(cap, "conn0.d2s"))
        ck.check(os.path.getsize(files[-1]) > 0, "conn0.d2s not empty")
    v = subprocess.run([os.path.join(binary, "migstream-verify")] + files,
                       capture_output=True, text=True, timeout=60)
    ck.check(v.returncode == 0, "%s: migstream-verify %s: exit %d %s"
             % (run["name"], " ".join(map(os.path.basename, files)),
                v.returncode, (v.stdout + v.stderr).strip()[:300]))
    ram = cap + "-ram"
    shutil.rmtree(ram, ignore_errors=True)
    x = subprocess.run([os.path.join(binary, "migstream-extract"), "--ram",
                        ram] + files[:n], capture_output=True, text=True,
                       timeout=60)
    ck.check(x.returncode == 0, "%s: migstream-extract --ram: exit %d %s"
             % (run["name"], x.returncode, x.stderr.strip()[:300]))
    try:
        with open(os.path.join(ram, "pc.ram"), "rb") as f:
            f.seek(BLOB_ADDR)
            got = f.read(BLOB_SIZE)
    except OSError as e:
        got = str(e).encode()
    ck.check(got == blob, "%s: extracted pc.ram holds the blob at 0x%x"
             % (run["name"], BLOB_ADDR))


def start_record(a, procs, addr, cap, deadline):
    """migstream-record between them; (process, its listening address)."""
    rec_log = open(cap + "-record.log", "w+")
    rec = subprocess.Popen(
        [os.path.join(a.bin, "migstream-record"), "--listen",
         "tcp:127.0.0.1:0", "--to", "tcp:%s:%s" % (addr["host"], addr["port"]),
         "-o", cap, "--idle", "1"],
        stdin=subprocess.DEVNULL, stderr=rec_log, preexec_fn=die_with_parent)
    procs.append(rec)
    while time.monotonic() < deadline:
        rec_log.seek(0)
        for line in rec_log:
            if "listening on tcp:" in line:
                return rec, line.split("listening on ", 1)[1].strip()
        time.sleep(0.05)
    return rec, None


def migrate(ck, a, procs, blob_path, run, cap):
    """Run one migration through migstream-record: (record process, the
    destination's QMP when both sides completed, else None)."""
    deadline = time.monotonic() + TIMEOUT
    sq, dq = cap + "-src.qmp", cap + "-dst.qmp"
    start(qemu_cmd(a.qemu, sq, [
        "-S", "-device",
        "loader,file=%s,addr=0x%x,force-raw=on" % (blob_path, BLOB_ADDR)]),
        cap + "-src.log", procs)
    start(qemu_cmd(a.qemu, dq, ["-incoming", "defer"]), cap + "-dst.log",
          procs)
    src, dst = Qmp(sq, deadline), Qmp(dq, deadline)
    set_caps(src, run)
    set_caps(dst, run)
    dst.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")  # a free port
    addr = dst.cmd("query-migrate")["socket-address"][0]
    rec, listen = start_record(a, procs, addr, cap, deadline)
    if not ck.check(listen is not None, "migstream-record listens"):
        return rec, None
    src.cmd("migrate", uri=listen)
    ok = wait_completed(ck, src, dst, deadline)
    return rec, dst if ok else None


def one_run(ck, a, procs, blob, blob_path, run):
    cap = os.path.join(a.keep, run["name"])
    shutil.rmtree(cap, ignore_errors=True)  # the previous run's recording
    rec, dst = migrate(ck, a, procs, blob_path, run, cap)
    if dst is not None:
        mem = cap + "-dst-mem.bin"
        dst.cmd("pmemsave", val=BLOB_ADDR, size=BLOB_SIZE, filename=mem)
        with open(mem, "rb") as f:
            ck.check(f.read() == blob, "%s: destination memory at 0x%x "
                     "holds the blob" % (run["name"], BLOB_ADDR))
    rc = wait_exit(rec, time.monotonic() + 20)
    ck.check(rc == 0, "%s: migstream-record exit 0 (got %s; see %s)"
             % (run["name"], rc, cap + "-record.log"))
    if rc is not None and os.path.exists(os.path.join(cap, "manifest.json")):
        n = check_manifest(ck, cap, run)
        check_tools(ck, a.bin, cap, blob, n, run)
    print("%s: recording kept in %s" % (run["name"], cap))


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
    os.makedirs(a.keep, exist_ok=True)
    blob = random.Random(0x51F00D).randbytes(BLOB_SIZE)  # deterministic
    blob_path = os.path.join(a.keep, "blob.bin")
    with open(blob_path, "wb") as f:
        f.write(blob)
    for run in RUNS:
        procs = []
        try:
            one_run(ck, a, procs, blob, blob_path, run)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
