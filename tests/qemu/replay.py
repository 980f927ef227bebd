# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
"""migstream-replay into a real destination QEMU 7.2.

For each case a fresh destination (machine, memory and devices of the
capture's source, from differential.CAPTURES, which follows each capture's
README) is started with -incoming defer, given the capture's capabilities
and parameters over QMP, and fed by migstream-replay:

  qemu-7.2-pc-multifd2-zlib  tcp, 3 connections; the destination must
                             complete and its guest memory at 0x1000000
                             must hold the ground truth (the bytes of
                             qemu-7.2-pc-multifd4/conn1.bin, 780,928)
  qemu-7.2-pc-multifd4       unix socket, 5 connections; must complete
  qemu-7.2-pc-precopy        -incoming exec:'migstream-replay --to exec';
                             must complete

and migstream-replay must exit 0 for the socket cases.

Usage: replay.py --bin BUILD_DIR --captures DIR --work DIR --qemu BIN
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time

from differential import CAPTURES, prepare, set_capture_options
from qmp import Qmp

TIMEOUT = 30  # seconds per case, for everything
BLOB_ADDR = 0x1000000
BLOB_CAPTURE = ("qemu-7.2-pc-multifd4", "conn1.bin")


def free_port():
    """A TCP port nobody listens on now (the kernel's choice)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_destination(qemu, cap, work):
    qmp_path = os.path.join(work, "qmp.sock")
    if os.path.exists(qmp_path):
        os.unlink(qmp_path)
    args = [a.replace("@DISK@", os.path.join(work, "disk.raw"))
            for a in cap["args"]]
    cmd = [qemu, "-machine", cap["machine"] + ",accel=tcg",
           "-m", str(cap["mem"]), "-nographic", "-nodefaults",
           "-serial", "none", "-monitor", "none", "-S",
           "-qmp", "unix:%s,server=on,wait=off" % qmp_path,
           "-incoming", "defer"] + args
    err = open(os.path.join(work, "qemu.err"), "wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    return proc, qmp_path


def wait_completed(qmp, proc, deadline):
    """'completed', 'failed', ... or 'timeout'."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return "exited %d" % proc.returncode
        status = qmp.cmd("query-migrate").get("status")
        if status in ("completed", "failed", "cancelled"):
            return status
        time.sleep(0.05)
    return "timeout"


def run_case(a, cap, transport, source=None, truth=None, label=None):
    """Replay one capture (`source`: a capture directory or an archive;
    default the bundled capture's directory) into a destination made as
    `cap` says; `truth` (address, file): the guest memory there must hold
    the file's bytes.  A list of what went wrong (empty: passed)."""
    work = os.path.join(a.work, label or cap["name"])
    os.makedirs(work, exist_ok=True)
    capdir = os.path.join(a.captures, cap["name"]) if a.captures else None
    if cap.get("files"):
        prepare(cap, capdir, work)  # the disk image, where it has one
    source = source or capdir
    replay = os.path.join(a.bin, "migstream-replay")
    deadline = time.monotonic() + TIMEOUT
    proc, qmp_path = start_destination(a.qemu, cap, work)
    problems, rep = [], None
    try:
        qmp = Qmp(qmp_path, deadline)
        set_capture_options(qmp, cap)
        if transport == "exec":
            qmp.cmd("migrate-incoming",
                    uri="exec:%s --to exec %s" % (replay, source))
        else:
            if transport == "tcp":
                uri = "tcp:127.0.0.1:%d" % free_port()
            else:
                uri = "unix:" + os.path.join(work, "mig.sock")
            qmp.cmd("migrate-incoming", uri=uri)
            rep = subprocess.Popen([replay, "--to", uri, "--wait", "20", source],
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
        status = wait_completed(qmp, proc, deadline)
        if status != "completed":
            problems.append("destination: %s" % status)
        if rep is not None:
            out, _ = rep.communicate(timeout=max(1, deadline - time.monotonic()))
            if rep.returncode != 0:
                problems.append("migstream-replay exit %d: %s" %
                                (rep.returncode, out.decode(errors="replace")))
        if status == "completed" and truth:
            problems += check_memory(qmp, work, *truth)
        qmp.close()
    except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
        problems.append("%s: %s" % (type(e).__name__, e))
    finally:
        for p in (rep, proc):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    if problems:
        with open(os.path.join(work, "qemu.err"), "rb") as fh:
            problems.append("qemu stderr: " + fh.read().decode(errors="replace"))
    return problems


def check_memory(qmp, work, addr, truth_path):
    """The guest memory at `addr` against the bytes of `truth_path`."""
    with open(truth_path, "rb") as fh:
        truth = fh.read()
    out = os.path.join(work, "mem.bin")
    qmp.cmd("pmemsave", val=addr, size=len(truth), filename=out)
    with open(out, "rb") as fh:
        got = fh.read()
    if got == truth:
        return []
    diff = next((i for i in range(min(len(got), len(truth)))
                 if got[i] != truth[i]), min(len(got), len(truth)))
    return ["guest memory at 0x%x differs from %s at byte %d (%d bytes read)"
            % (addr, truth_path, diff, len(got))]


def main():
    # a SIGTERM (the shell's trap) unwinds through run_case's finally,
    # which kills the processes of the case
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--captures", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--qemu", required=True)
    a = p.parse_args()
    by_name = {c["name"]: c for c in CAPTURES}
    cases = [("qemu-7.2-pc-multifd2-zlib", "tcp"),
             ("qemu-7.2-pc-multifd4", "unix"),
             ("qemu-7.2-pc-precopy", "exec")]
    # the zlib capture's README: the guest held the bytes of
    # qemu-7.2-pc-multifd4/conn1.bin at 0x1000000
    truth = {"qemu-7.2-pc-multifd2-zlib":
             (BLOB_ADDR, os.path.join(a.captures, *BLOB_CAPTURE))}
    failures = 0
    for name, transport in cases:
        t0 = time.monotonic()
        problems = run_case(a, by_name[name], transport,
                            truth=truth.get(name))
        print("%s %s via %s (%.1f s)" % ("FAIL" if problems else "ok", name,
                                         transport, time.monotonic() - t0))
        for pr in problems:
            print("    " + pr)
        failures += bool(problems)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
