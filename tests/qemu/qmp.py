# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
"""A minimal QMP client for the tests that drive a real QEMU (tests/qemu/)."""

import json
import socket
import time


class Qmp:
    """A minimal QMP client (one command at a time, events skipped)."""

    def __init__(self, path, deadline):
        self.sock = None
        while time.monotonic() < deadline:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                self.sock = s
                break
            except OSError:
                s.close()
                time.sleep(0.02)
        if self.sock is None:
            raise OSError("QMP socket never came up")
        self.sock.settimeout(max(1.0, deadline - time.monotonic()))
        self.buf = b""
        self._line()  # greeting
        self.cmd("qmp_capabilities")

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("QMP closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._line()
            if "event" in reply:
                continue
            if "error" in reply:
                raise RuntimeError("%s: %s" % (name, reply["error"].get("desc")))
            return reply.get("return")

    def close(self):
        self.sock.close()
