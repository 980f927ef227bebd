# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
"""QEMU's loader as a judge: a differential test of migstream-verify.

Each bundled QEMU capture is mutated (bit flips, byte overwrites and cuts,
skewed to the non-page structure learnt from `migstream-dump --json`), and
every mutant is fed both to a real destination QEMU and to migstream-verify.

    verify accepts, QEMU rejects  -> FAIL (verify said "valid" for a stream
                                     the real loader refuses)
    verify rejects, QEMU accepts  -> stricter (counted and shown: damage QEMU
                                     never reads, e.g. the JSON trailer)
    both accept / both reject     -> agree
    verify accepts but walked the section hit blind (only where the stream
    has no JSON trailer of its own: postcopy)
                                  -> unchecked (counted and shown)
    verify accepts, QEMU refuses for a fact the stream does not carry (an
    entry of KNOWN_GAPS, each investigated)
                                  -> known (counted and shown)

QEMU "rejects" when the load fails, the destination exits, its postcopy
pauses, or it neither completes nor fails within the timeout.

Usage: differential.py --bin BUILD_DIR --captures DIR --work DIR
           [--qemu72 BIN] [--qemu10 BIN --qemu10-data DIR] [--mutants N]
           [--seed S] [--only NAME,...]
"""
import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

from qmp import Qmp

# ---- the captures: how each was made, so a destination can load it ---------
# From the README of each capture (tests/data/captures/*/README.md and
# /work/shared/captures): machine, memory, devices, capabilities, transport.
NIC72 = ["-netdev", "user,id=n0,restrict=on", "-netdev", "user,id=n1,restrict=on"]
CAPTURES = [
    {"name": "qemu-7.2-pc-precopy", "qemu": "7.2", "files": ["main.mig"],
     "transport": "exec", "machine": "pc", "mem": 64,
     "args": NIC72 + ["-device", "virtio-net-pci,netdev=n0",
                      "-device", "e1000,netdev=n1"]},
    {"name": "qemu-7.2-pc-multifd4", "qemu": "7.2",
     "files": ["conn0.bin", "conn1.bin", "conn2.bin", "conn3.bin", "conn4.bin"],
     "transport": "socket", "machine": "pc", "mem": 128,
     "caps": {"multifd": True}, "params": {"multifd-channels": 4},
     "disk_mib": 8,
     "args": ["-netdev", "user,id=n0,restrict=on",
              "-device", "virtio-net-pci,netdev=n0",
              "-drive", "file=@DISK@,format=raw,if=none,id=d0",
              "-device", "virtio-blk-pci,drive=d0"]},
    {"name": "qemu-7.2-pc-multifd2-zlib", "qemu": "7.2",
     "files": ["conn0.bin", "conn1.bin", "conn2.bin"],
     "transport": "socket", "machine": "pc", "mem": 64,
     "caps": {"multifd": True},
     "params": {"multifd-channels": 2, "multifd-compression": "zlib"},
     "args": ["-netdev", "user,id=n0,restrict=on",
              "-device", "e1000,netdev=n0"]},
    {"name": "qemu-10.0-q35-precopy", "qemu": "10.0", "files": ["main.mig"],
     "transport": "exec", "machine": "q35", "mem": 128, "disk_mib": 8,
     "args": NIC72 + ["-device", "virtio-net-pci,netdev=n0",
                      "-device", "e1000e,netdev=n1",
                      "-drive", "file=@DISK@,format=raw,if=none,id=d0",
                      "-device", "virtio-blk-pci,drive=d0",
                      "-device", "qemu-xhci,id=xhci",
                      "-device", "usb-tablet,bus=xhci.0"]},
    {"name": "qemu-10.0-pc-multifd4-zstd", "qemu": "10.0",
     "files": ["conn0.bin", "conn1.bin", "conn2.bin", "conn3.bin", "conn4.bin"],
     "transport": "socket", "machine": "pc", "mem": 128,
     "caps": {"multifd": True},
     "params": {"multifd-channels": 4, "multifd-compression": "zstd"},
     "args": []},
    {"name": "qemu-10.0-pc-postcopy", "qemu": "10.0", "files": ["conn0.s2d"],
     "transport": "socket", "machine": "pc", "mem": 512, "disk_mib": 1,
     "caps": {"postcopy-ram": True},
     "args": ["-drive", "file=@DISK@,format=raw,if=ide"],
     # no JSON trailer in a postcopy stream: verify decodes the devices
     # with the trailer of another stream of the same machine
     "verify_args": ["--vmdesc", "@CAPTURES@/qemu-10.0-pc-multifd4-zstd/conn0.bin"]},
    {"name": "qemu-10.0-pc-mapped-ram-32m", "qemu": "10.0",
     "files": ["main.mig"], "gz": {"main.mig": "main.mig.gz"},
     "transport": "file", "machine": "pc", "mem": 32,
     "caps": {"mapped-ram": True}, "args": []},
]

# ---- what no check of the stream can see ----------------------------------
# Refusals of QEMU's that depend on facts the stream does not carry: each is
# reported as "known" (counted and shown, not a failure), and each was
# investigated.  Match: the kind of structure mutated, QEMU's message (a
# regex), and a predicate on the capture's JSON trailer and the match.
KNOWN_GAPS = [
    # An old-style device (no VMSD: slirp) has no "version" in the JSON
    # trailer, so a changed section version_id contradicts nothing in the
    # stream; QEMU compares it with its own handler's version.
    ("section_header", r"unsupported version \d+ for '([^']+)'",
     lambda old_style, m: m.group(1) in old_style,
     "old-style device: its version is in no JSON trailer"),
    # A device value QEMU's field loaders or post_load refuse (a PCI irq
    # state of 4, a runstate name "runniNg"): verify checks each device's
    # layout against the JSON trailer (fields, subsections, footer), not
    # what its values mean to the device model.
    ("device_state", r"Failed to load \S+|error while loading state for "
     r"instance 0x[0-9a-f]+ of device '(?!ram')",
     lambda old_style, m: True,
     "a device value QEMU's device model refuses"),
    # fw_cfg's acpi_mr subsection carries the ACPI blobs' sizes, which QEMU
    # applies with qemu_ram_resize() in post_load: a size over the RAM
    # block's max_length (not in the stream; used_length is) aborts the load.
    ("device_state", r"Size too large: (/rom@etc/[a-z/-]+)",
     lambda old_style, m: True,
     "fw_cfg acpi_mr size above the RAM block's max_length (not in the stream)"),
]


def known_gap(cap, kind, qemu_msg):
    """The reason a QEMU refusal is beyond any stream check, or None."""
    for gap_kind, regex, pred, why in KNOWN_GAPS:
        m = re.search(regex, qemu_msg)
        if gap_kind == kind and m and pred(cap["_old_style"], m):
            return why
    return None


# ---- the mutation skew: weight of each kind of byte range -------------------
# Non-page structure is where a verifier's checks live; page bytes are opaque
# to both sides (QEMU loads any page content), so they get little weight.
WEIGHTS = {
    "stream_header": 2,   # magic, version, configuration section
    "section_header": 6,  # section type, id, idstr, instance, version
    "device_state": 8,    # the VMState bytes of a non-RAM section
    "footer": 3,          # QEMU_VM_SECTION_FOOTER + section id
    "ram_struct": 5,      # RAM block list, EOS/flush markers, page headers
    "command": 3,         # QEMU_VM_COMMAND records
    "eof": 1,             # the QEMU_VM_EOF byte
    "vmdesc": 2,          # the JSON trailer QEMU's loader never reads
    "multifd_header": 6,  # MultiFDInit_t + MultiFDPacket_t + offsets
    "page_data": 1,       # page bytes, compressed payloads
}


def byte_ranges(dump_lines, sizes):
    """Classify the bytes of each file: [(file_index, start, end, kind)]."""
    ranges = []
    sections = {}  # (file, section offset) -> end of its header
    for d in dump_lines:
        f = d.get("_file", 0)
        kind, off, ln = d.get("kind"), d.get("offset"), d.get("length", 0)
        if kind == "stream" and d.get("format") == "qemu-main":
            ranges.append((f, off, off + ln, "stream_header"))
        elif kind == "configuration":
            ranges.append((f, off, off + ln, "stream_header"))
        elif kind == "section":
            ranges.append((f, off, off + ln, "section_header"))
            sections[(f, off)] = (off + ln, d.get("idstr"))
        elif kind == "footer":
            ranges.append((f, off, off + 5, "footer"))
            hdr_end, name = sections.get((f, d.get("section_offset")), (None, ""))
            if hdr_end is not None and name != "ram" and off > hdr_end:
                ranges.append((f, hdr_end, off, "device_state"))
        elif kind in ("ram_block", "ram_marker"):
            ranges.append((f, off, off + ln, "ram_struct"))
        elif kind == "mapped_ram":  # MappedRamHeader, then the page bitmap
            ranges.append((f, off, off + ln, "ram_struct"))
            bm = d.get("bitmap_offset", 0)
            bm_size = int(d.get("bitmap_size", "0"))  # a string (spec/json.md)
            ranges.append((f, bm, bm + bm_size, "ram_struct"))
        elif kind == "ram_page" and ln > 0:
            # a normal page is its header (none in a mapped-ram slot) then
            # 4096 data bytes; a zero page (header + fill byte) is structure
            if ln >= 4096:
                ranges.append((f, off, off + ln - 4096, "ram_struct"))
                ranges.append((f, off + ln - 4096, off + ln, "page_data"))
            else:
                ranges.append((f, off, off + ln, "ram_struct"))
        elif kind == "command":  # with its payload (discard ranges, ...)
            ranges.append((f, off, off + ln, "command"))
        elif kind == "eof":
            ranges.append((f, off, off + ln, "eof"))
        elif kind == "vmdesc":
            ranges.append((f, off, off + ln, "vmdesc"))
        elif kind == "channel":
            ranges.append((f, off, off + ln, "multifd_header"))
        elif kind == "multifd_packet":
            ranges.append((f, off, off + ln, "multifd_header"))
            pl = d.get("payload_size", 0)
            if pl:
                ranges.append((f, off + ln, off + ln + pl, "page_data"))
    return [r for r in ranges if r[2] > r[1] and r[2] <= sizes[r[0]]]


def pick_mutation(rng, ranges):
    """One mutation: (file index, offset, op, value, kind)."""
    by_kind = {}
    for r in ranges:
        by_kind.setdefault(r[3], []).append(r)
    kinds = sorted(by_kind)
    kind = rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0]
    # a range of this kind, chosen in proportion to its size (capped, so one
    # large device section does not crowd out the small ones)
    rs = by_kind[kind]
    f, start, end, _ = rng.choices(rs, weights=[min(r[2] - r[1], 64) for r in rs])[0]
    off = rng.randrange(start, end)
    op = rng.choices(["flip", "byte", "cut"], weights=[6, 3, 1])[0]
    if op == "flip":
        value = 1 << rng.randrange(8)
    elif op == "byte":
        value = rng.choice([0x00, 0xff, rng.randrange(256)])
    else:
        value = 0
    return f, off, op, value, kind


def write_mutant(src_paths, dst_paths, mutation):
    f, off, op, value, _ = mutation
    for i, (src, dst) in enumerate(zip(src_paths, dst_paths)):
        subprocess.run(["cp", "--sparse=always", src, dst], check=True)
        if i != f:
            continue
        with open(dst, "r+b") as fh:
            if op == "cut":
                fh.truncate(off)
                continue
            fh.seek(off)
            old = fh.read(1)[0]
            new = old ^ value if op == "flip" else value
            if new == old:  # an overwrite that changes nothing: flip instead
                new = old ^ 0x01
            fh.seek(off)
            fh.write(bytes([new]))


# ---- the judge: a destination QEMU --------------------------------------------
def feed_channels(sock_path, paths, deadline):
    """Connect the main channel, then each multifd channel, and send each
    file on its own thread (QEMU's main thread waits for the channels)."""
    def send(path, connected):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(max(1.0, deadline - time.monotonic()))
            s.connect(sock_path)
            conns.append(s)
            connected.set()
            with open(path, "rb") as fh:
                s.sendall(fh.read())
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # QEMU closed the channel: it rejected the stream
        connected.set()

    conns = []
    for p in paths:
        connected = threading.Event()
        threading.Thread(target=send, args=(p, connected), daemon=True).start()
        # QEMU 7.2 takes the first connection for the main channel
        connected.wait(max(0.1, deadline - time.monotonic()))
    return conns


def set_capture_options(qmp, cap):
    """The capture source's migration capabilities and parameters, on a
    destination started with -incoming defer."""
    if cap.get("caps"):
        qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": k, "state": v} for k, v in cap["caps"].items()])
    if cap.get("params"):
        qmp.cmd("migrate-set-parameters", **cap["params"])


def judge_qemu(cap, qemu, paths, work, timeout):
    """Load the stream into a destination QEMU: ('accept'|'reject'|'timeout',
    the last line QEMU printed)."""
    qmp_path = os.path.join(work, "qmp.sock")
    mig_path = os.path.join(work, "mig.sock")
    for p in (qmp_path, mig_path):
        if os.path.exists(p):
            os.unlink(p)
    args = [a.replace("@DISK@", os.path.join(work, "disk.raw")) for a in cap["args"]]
    cmd = qemu["cmd"] + ["-machine", cap["machine"] + ",accel=tcg",
                         "-m", str(cap["mem"]), "-nographic", "-nodefaults",
                         "-serial", "none", "-monitor", "none", "-S",
                         "-qmp", "unix:%s,server=on,wait=off" % qmp_path,
                         "-incoming", "defer"] + args
    err_path = os.path.join(work, "qemu.err")
    deadline = time.monotonic() + timeout
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err,
                                env=qemu["env"])
    verdict = "timeout"
    qmp = None
    try:
        qmp = Qmp(qmp_path, deadline)
        set_capture_options(qmp, cap)
        if cap["transport"] == "exec":
            qmp.cmd("migrate-incoming", uri="exec:cat '%s'" % paths[0])
        elif cap["transport"] == "file":
            qmp.cmd("migrate-incoming", uri="file:%s" % paths[0])
        else:
            qmp.cmd("migrate-incoming", uri="unix:%s" % mig_path)
            feed_channels(mig_path, paths, deadline)
        while time.monotonic() < deadline:
            status = qmp.cmd("query-migrate").get("status")
            if status == "completed":
                verdict = "accept"
                break
            # a postcopy destination that loses its stream pauses, waiting
            # for a recovery that never comes: refused too
            if status in ("failed", "cancelled", "postcopy-paused"):
                verdict = "reject"
                break
            time.sleep(0.05)
    except (OSError, RuntimeError, ValueError):
        # QEMU exits on a failed load (exit-on-error), closing QMP
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        if proc.poll() is not None:
            verdict = "reject"
    finally:
        if qmp is not None:
            qmp.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    with open(err_path, "rb") as fh:
        lines = [l.replace("qemu-system-x86_64: ", "")
                 for l in fh.read().decode(errors="replace").splitlines()
                 if "has no peer" not in l]
    return verdict, " | ".join(lines[:2])


def judge_verify(bindir, paths, cap):
    # verify is told what it can be told of the destination: its machine
    # type (QEMU refuses a stream of another one, which no stream check sees)
    r = subprocess.run([os.path.join(bindir, "migstream-verify"),
                        "--expect-machine", cap["_machine"]] +
                       cap.get("verify_args", []) + paths, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    msg = [l.replace(os.path.dirname(paths[0]) + "/", "")
           for l in r.stdout.decode(errors="replace").strip().splitlines()]
    if r.returncode == 0:
        return "accept", " | ".join(msg[:1])
    if r.returncode == 1:
        return "reject", (msg[0] if msg else "")
    return "error", (msg[0] if msg else "exit %d" % r.returncode)


def not_checked(verify_msg):
    """How many sections verify says it did not decode ("not checked: K of
    N sections not decoded: ...")."""
    m = re.search(r"not checked: (\d+) of \d+ sections", verify_msg)
    return int(m.group(1)) if m else 0


# ---- driver --------------------------------------------------------------------
def prepare(cap, capdir, work):
    """The capture's files in WORK (gzip'ed sparse files expanded)."""
    src = []
    for name in cap["files"]:
        gz = cap.get("gz", {}).get(name)
        if gz:
            out = os.path.join(work, "orig-" + name)
            with open(out, "wb") as fh:
                p1 = subprocess.Popen(["gzip", "-dc", os.path.join(capdir, gz)],
                                      stdout=subprocess.PIPE)
                subprocess.run(["dd", "conv=sparse", "bs=64k", "status=none"],
                               stdin=p1.stdout, stdout=fh, check=True)
                p1.wait()
            src.append(out)
        else:
            src.append(os.path.join(capdir, name))
    if cap.get("disk_mib"):
        with open(os.path.join(work, "disk.raw"), "wb") as fh:
            fh.truncate(cap["disk_mib"] << 20)
    return src


def run_dump(bindir, src, dump_args):
    """migstream-dump --json of the files: its lines, each with _file, the
    index of the file it is about."""
    out = subprocess.run([os.path.join(bindir, "migstream-dump"), "--json",
                          "--pages", "--records", "--quiet"] + dump_args + src,
                         stdout=subprocess.PIPE).stdout
    names = [os.path.basename(p) for p in src]
    lines = []
    for l in out.decode(errors="replace").splitlines():
        d = json.loads(l)
        base = os.path.basename(d.get("file", ""))
        d["_file"] = names.index(base) if base in names else 0
        lines.append(d)
    return lines


def blind_sections(dump_lines):
    """[(file, start, end)] of the sections (header to footer) the reader
    walked blind, in part or whole."""
    blind, header, seen = [], {}, set()
    for d in dump_lines:
        f, kind = d["_file"], d.get("kind")
        if kind == "section":
            header[f] = d["offset"]
        elif kind == "undecoded" and f in header:
            seen.add(f)
        elif kind == "footer" and f in seen:
            blind.append((f, header[f], d["offset"] + 5))
            seen.discard(f)
    return blind


def structure(bindir, src, dump_args):
    """The byte ranges of the capture, its machine type and old-style
    devices."""
    lines = run_dump(bindir, src, dump_args)
    sizes = [os.path.getsize(p) for p in src]
    machine = [d["machine"] for d in lines if d.get("kind") == "configuration"]
    return byte_ranges(lines, sizes), machine[0], old_style_devices(src, lines)


def old_style_devices(src, dump_lines):
    """Names of the devices the main stream's JSON trailer lists without a
    version (old-style, no VMSD)."""
    for d in dump_lines:
        if d.get("kind") == "vmdesc" and d.get("_file", 0) == 0:
            with open(src[0], "rb") as fh:
                fh.seek(d["offset"] + d["length"] - d["json_length"])
                devices = json.loads(fh.read(d["json_length"]))["devices"]
            return {e.get("name") for e in devices if "version" not in e}
    return set()  # no trailer (postcopy)


def destinations(a):
    """The destination QEMUs by the version of the captures they load."""
    qemus = {}
    if a.qemu72:
        qemus["7.2"] = {"cmd": [a.qemu72], "env": dict(os.environ)}
    if a.qemu10:
        env = dict(os.environ)
        cmd = [a.qemu10]
        if a.qemu10_data:  # unpacked by scripts/fetch-qemu10.sh
            env["QEMU_MODULE_DIR"] = os.path.join(
                a.qemu10_data, "usr/lib/x86_64-linux-gnu/qemu")
            cmd += ["-L", os.path.join(a.qemu10_data, "usr/share/qemu"),
                    "-L", os.path.join(a.qemu10_data, "usr/share/seabios")]
        qemus["10.0"] = {"cmd": cmd, "env": env}
    return qemus


def control(a, cap, qemu):
    """Prepare the capture; the unmutated capture must load in QEMU and
    verify, else nothing its mutants show would mean anything."""
    work = os.path.join(a.work, cap["name"])
    os.makedirs(work, exist_ok=True)
    cap["verify_args"] = [v.replace("@CAPTURES@", a.captures)
                          for v in cap.get("verify_args", [])]
    src = prepare(cap, os.path.join(a.captures, cap["name"]), work)
    cap["_src"] = src
    cap["_ranges"], cap["_machine"], cap["_old_style"] = structure(
        a.bin, src, cap["verify_args"])
    q, qmsg = judge_qemu(cap, qemu, src, work, 4 * a.timeout)
    v, vmsg = judge_verify(a.bin, src, cap)
    cap["_not_checked"] = not_checked(vmsg)
    print("%-28s original: qemu %s, verify %s" % (cap["name"], q, v))
    if q == "accept" and v == "accept":
        return True
    print("FAIL %s: the unmutated capture must be accepted by both "
          "(qemu: %s %s; verify: %s %s)" % (cap["name"], q, qmsg, v, vmsg))
    return False


def judge_mutant(a, n, cap, qemu, rng):
    """Make mutant n, judge it both ways, print the outcome.  Returns
    (mutated structure, qemu verdict, verify verdict, failed)."""
    mut = pick_mutation(rng, cap["_ranges"])
    work = os.path.join(a.work, cap["name"])
    dst = [os.path.join(work, "mut-" + f) for f in cap["files"]]
    write_mutant(cap["_src"], dst, mut)
    q, qmsg = judge_qemu(cap, qemu, dst, work, a.timeout)
    v, vmsg = judge_verify(a.bin, dst, cap)
    if q == "timeout" and v == "accept":
        # a slow machine, or QEMU waiting for bytes that never come: give
        # it four times as long before calling it a refusal
        q, qmsg = judge_qemu(cap, qemu, dst, work, 4 * a.timeout)
    f, off, op, value, kind = mut
    if v == "accept" and cap["_not_checked"]:
        # only with a borrowed trailer (postcopy): verify accepted, but said
        # it did not check the section the mutation hit
        if any(bf == f and start <= off < end for bf, start, end in
               blind_sections(run_dump(a.bin, dst, cap["verify_args"]))):
            v = "unchecked"
    what = "#%d %s %s@%#x %s%s [%s]" % (
        n, cap["name"], cap["files"][f], off, op,
        "" if op == "cut" else "(%#04x)" % value, kind)
    failed = v == "accept" and q != "accept" or v == "error"
    why = known_gap(cap, kind, qmsg) if failed and v == "accept" else None
    if why:
        v, failed = "known", False
        print("known %s: verify accepts, qemu %s: %s (%s)" %
              (what, q, qmsg, why))
    elif failed:
        print("FAIL %s: verify %s%s, qemu %s: %s" %
              (what, v, " (%s)" % vmsg if vmsg else "", q, qmsg))
        keep = os.path.join(a.work, "fail-%d" % n)
        os.makedirs(keep, exist_ok=True)
        for p in dst:
            shutil.copy(p, keep)
    elif v == "unchecked":
        print("unchecked %s: verify: %s; qemu %s: %s" % (what, vmsg, q, qmsg))
    elif v != q:
        print("stricter %s: verify rejects (%s); qemu %s" % (what, vmsg, q))
    else:
        print("agree %s: both %s%s" % (what, v, "" if v == "accept" else
                                       " (qemu: %s | verify: %s)" % (qmsg, vmsg)))
    return kind, q, v, failed


def print_matrix(matrix):
    print("\nverdicts (capture, mutated structure, qemu, verify: count):")
    for key in sorted(matrix):
        print("  %-28s %-15s qemu %-7s verify %-9s %d" % (key + (matrix[key],)))
    tot = {}
    for (_, _, q, v), c in matrix.items():
        tot[(q, v)] = tot.get((q, v), 0) + c
    print("totals: " + ", ".join("qemu %s/verify %s: %d" % (k + (c,))
                                 for k, c in sorted(tot.items())))
    return sum(tot.values())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--captures", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--qemu72")
    ap.add_argument("--qemu10")
    ap.add_argument("--qemu10-data")
    ap.add_argument("--mutants", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=8)
    ap.add_argument("--only", default="")
    a = ap.parse_args()

    qemus = destinations(a)
    only = set(filter(None, a.only.split(",")))
    caps = []
    for c in CAPTURES:
        if only and c["name"] not in only:
            continue
        if c["qemu"] not in qemus:
            print("SKIP %s: no QEMU %s destination" % (c["name"], c["qemu"]))
            continue
        caps.append(c)
    if not caps:
        print("no capture has a QEMU to judge it")
        return 77

    failures = 0
    good = []
    for cap in caps:
        if control(a, cap, qemus[cap["qemu"]]):
            good.append(cap)
        else:
            failures += 1
    rng = random.Random(a.seed)
    matrix = {}
    for n in range(a.mutants if good else 0):
        cap = good[n % len(good)]  # round-robin over the captures
        kind, q, v, failed = judge_mutant(a, n, cap, qemus[cap["qemu"]], rng)
        key = (cap["name"], kind, q, v)
        matrix[key] = matrix.get(key, 0) + 1
        failures += failed
    total = print_matrix(matrix)
    print("%d mutants, %d failures" % (total, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
