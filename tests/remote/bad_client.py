#!/usr/bin/python3
"""Misbehaving clients of `ipcbench serve`, one per case (tests/remote).

Usage: bad_client.py CASE HOST:PORT TOKEN_FILE [--source ADDR] [--cpu N]

Speaks the control protocol's framing (bench/control/control.hpp: a 4-byte
big-endian length, then one JSON object with a string "type") and breaks it
in the way CASE says. Prints one JSON object on stdout: what came back
("received": the decoded messages in order, "eof": whether the server closed
the connection, "elapsed_s": seconds from the last thing sent to the close)
plus what the case checked on the side. Every wait is bounded.
"""

import argparse
import json
import socket
import struct
import time

CONNECT_TIMEOUT = 3.0
VERSION = 3  # control::kVersion (bench/control/control.hpp)


def frame(body):
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    return struct.pack(">I", len(body)) + body


def hello(token, **extra):
    m = {"type": "hello", "version": VERSION, "token": token}
    m.update(extra)
    return frame(m)


def setup(mechanism="tcp", max_message=512, verify="header", cpu=-1, **extra):
    m = {"type": "setup", "mechanism": mechanism, "max_message": max_message,
         "verify": verify, "cpu": cpu}
    m.update(extra)
    return frame(m)


class Conn:
    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT)
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def message(self, timeout):
        """The next whole message, or None on end-of-file or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return json.loads(body)
            if self.eof or not self._fill(deadline):
                return None

    def expect(self, kind, timeout=5.0):
        m = self.message(timeout)
        if m is None or m.get("type") != kind:
            raise SystemExit(f"bad_client: expected '{kind}', got {m!r}")
        return m

    def drain(self, timeout):
        """Every message until end-of-file (or `timeout`)."""
        start = time.monotonic()
        out = []
        while True:
            left = timeout - (time.monotonic() - start)
            m = self.message(max(left, 0.0))
            if m is None:
                break
            out.append(m)
        return out, self.eof, time.monotonic() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("address")
    ap.add_argument("token_file")
    ap.add_argument("--source", help="another address of this host (data-from-other)")
    ap.add_argument("--cpu", type=int, default=0, help="a CPU the server does not offer")
    args = ap.parse_args()
    case, address, other_source = args.case, args.address, args.source
    with open(args.token_file) as f:
        token = f.readline().strip()
    extra = {}
    wait = 5.0
    c = Conn(address)

    def greeted():
        c.send(hello(token))
        c.expect("welcome")

    if case == "wrong-token":
        c.send(hello(token + "x"))
    elif case == "missing-token":
        c.send(hello(""))
    elif case == "no-token-field":
        c.send(frame({"type": "hello", "version": VERSION}))
    elif case == "version-99":
        c.send(frame({"type": "hello", "version": 99, "token": token}))
    elif case == "garbage":
        c.send(frame(b"\x00\xff\xfe this is not json"))
    elif case == "http":
        c.send(b"GET / HTTP/1.1\r\nHost: 198.18.0.1\r\n\r\n")
    elif case == "oversized-7fffffff":
        c.send(b"\x7f\xff\xff\xff" + b"x" * 100)
    elif case == "oversized-70000":
        c.send(struct.pack(">I", 70000) + b"{" + b" " * 1000)
    elif case == "length-0":
        c.send(b"\x00\x00\x00\x00")
    elif case == "not-object":
        c.send(frame(b"[1, 2, 3]"))
    elif case == "no-type":
        c.send(frame({"version": VERSION, "token": token}))
    elif case == "hello-unknown-field":
        c.send(hello(token, colour="blue"))
    elif case == "setup-before-hello":
        c.send(setup())
    elif case == "hello-twice":
        greeted()
        c.send(hello(token))
    elif case == "teardown-without-setup":
        greeted()
        c.send(frame({"type": "teardown"}))
    elif case == "setup-pipe":
        greeted()
        c.send(setup(mechanism="pipe"))
    elif case == "setup-oversized":
        greeted()
        c.send(setup(max_message=1 << 40))
    elif case == "setup-cpu":
        greeted()
        c.send(setup(cpu=args.cpu))
    elif case == "setup-unknown-field":
        greeted()
        c.send(setup(colour="blue"))
    elif case == "silent":
        wait = 10.0
    elif case == "half-message":
        c.send(struct.pack(">I", 64) + b'{"type"')
        wait = 10.0
    elif case == "setup-twice":
        greeted()
        c.send(setup())
        extra["ready"] = c.expect("ready")
        c.send(setup())
    elif case == "disconnect-mid-case":
        greeted()
        c.send(setup())
        extra["ready"] = c.expect("ready")
        c.sock.close()
        print(json.dumps({"received": [], "eof": None, "elapsed_s": 0, **extra}))
        return
    elif case == "busy":
        greeted()
        second = Conn(address)
        second.send(hello(token))
        got, eof, elapsed = second.drain(5.0)
        extra["second"] = {"received": got, "eof": eof, "elapsed_s": elapsed}
        c.send(frame({"type": "bye"}))
    elif case.startswith("data-from-other:"):
        # While a case is set up, a connection to the peer's data port from
        # another address of this host must not reach the peer.
        mechanism = case.split(":", 1)[1]
        greeted()
        c.send(setup(mechanism=mechanism))
        ready = c.expect("ready")
        extra["ready"] = ready
        host, port = ready["address"].removeprefix("tcp://").rsplit(":", 1)
        intruder = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT,
                                            source_address=(other_source, 0))
        intruder.settimeout(3.0)
        data = b""
        try:
            while len(data) < 4096:
                chunk = intruder.recv(4096)
                if not chunk:
                    break
                data += chunk
            extra["intruder"] = {"closed": True, "bytes": len(data)}
        except ConnectionResetError:
            extra["intruder"] = {"closed": True, "bytes": len(data)}
        except socket.timeout:
            extra["intruder"] = {"closed": False, "bytes": len(data)}
        intruder.close()
        c.send(frame({"type": "teardown"}))
        extra["done"] = c.expect("done", timeout=10.0)
        c.send(frame({"type": "bye"}))
    else:
        raise SystemExit(f"bad_client: unknown case '{case}'")

    got, eof, elapsed = c.drain(wait)
    print(json.dumps({"received": got, "eof": eof, "elapsed_s": elapsed, **extra}))


if __name__ == "__main__":
    main()
