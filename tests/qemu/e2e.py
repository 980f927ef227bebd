# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
"""Record, archive, replay: issue 13's whole path with real QEMU 7.2.

  1. record.py: a 2-channel multifd migration between two QEMU processes
     through migstream-record (a 1 MiB blob at 0x1000000 in the source);
  2. migstream-archive packs the recording into one file;
  3. migstream-replay sends the ARCHIVE (not the files) over TCP into a new
     destination (pc, 64 MiB, multifd with 2 channels): it must complete
     and its guest memory at 0x1000000 must hold the blob;
  4. the same for the bundled qemu-7.2-pc-multifd2-zlib capture, archived
     and replayed over a unix socket into a destination with multifd zlib:
     its guest memory must hold its README's ground truth.

Usage: e2e.py --bin BUILD_DIR --captures DIR --work DIR --qemu BIN
"""
import argparse
import os
import signal
import subprocess
import sys
import time

from differential import CAPTURES
from replay import BLOB_ADDR, BLOB_CAPTURE, run_case

# The destination of record.py's first migration (its RUNS[0]).
RECORDED = {"name": "recorded", "machine": "pc", "mem": 64,
            "caps": {"multifd": True}, "params": {"multifd-channels": 2},
            "args": []}


def step(what, cmd, timeout):
    """Run a command; a problem line or None."""
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    print("%s %s (%.1f s)" % ("ok  " if p.returncode == 0 else "FAIL", what,
                             time.monotonic() - t0), flush=True)
    if p.returncode != 0:
        return "%s: exit %d: %s" % (what, p.returncode,
                                    p.stdout.decode(errors="replace")[-2000:])
    return None


def replay_archive(a, cap, archive, transport, truth):
    t0 = time.monotonic()
    problems = run_case(a, cap, transport, source=archive, truth=truth,
                        label="replay-" + os.path.basename(archive))
    print("%s replay of %s via %s (%.1f s)" % (
        "FAIL" if problems else "ok  ", os.path.basename(archive), transport,
        time.monotonic() - t0), flush=True)
    return problems


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser()
    for opt in ("--bin", "--captures", "--work", "--qemu"):
        p.add_argument(opt, required=True)
    a = p.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    archiver = os.path.join(a.bin, "migstream-archive")
    keep = os.path.join(a.work, "rec")
    rec_archive = os.path.join(a.work, "recorded.mig")
    zlib_name = "qemu-7.2-pc-multifd2-zlib"
    zlib_archive = os.path.join(a.work, zlib_name + ".mig")
    problems = []
    for what, cmd, timeout in [
            ("record a 2-channel multifd migration",
             [sys.executable, os.path.join(here, "record.py"), "--bin", a.bin,
              "--qemu", a.qemu, "--keep", keep], 120),
            ("archive the recording",
             [archiver, "-o", rec_archive, os.path.join(keep, "capture")], 60),
            ("archive the bundled " + zlib_name,
             [archiver, "-o", zlib_archive,
              os.path.join(a.captures, zlib_name)], 60)]:
        problem = step(what, cmd, timeout)
        if problem:
            problems.append(problem)
            break
    if not problems:
        problems += replay_archive(
            a, RECORDED, rec_archive, "tcp",
            (BLOB_ADDR, os.path.join(keep, "blob.bin")))
        by_name = {c["name"]: c for c in CAPTURES}
        problems += replay_archive(
            a, by_name[zlib_name], zlib_archive, "unix",
            (BLOB_ADDR, os.path.join(a.captures, *BLOB_CAPTURE)))
    for pr in problems:
        print("    " + pr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
