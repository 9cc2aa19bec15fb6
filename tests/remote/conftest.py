"""Fixtures for the tests of `ipcbench serve` / `run --remote` (issue 8).

Two network namespaces of our own, joined by a veth pair, stand in for two
hosts: A (the server, 198.18.0.1) and B (the client, 198.18.0.2, plus
198.18.0.3 as "another address" of the client host). Addresses come from the
benchmarking range 198.18.0.0/15; no traffic leaves the namespaces.

Needs root (`ip netns add`); without it, or where the kernel refuses network
namespaces, every test here skips and says why.

The namespaces are removed at the end of the session, also when a test
fails; first every process still in them is listed (that is a failure: the
tests must leave nothing behind) and killed. Objects that runs create are
named after the pid of their owner (/tmp/ipcbench.<pid>.*,
/dev/shm/ipcbench.<pid>.*, "ipcbench peer" processes): scripts/leftovers is
compared before and after, and anything new that belongs to a process these
tests started is a failure. (Other ipcbench runs may be going on on the same
machine; their objects are not ours and are only reported.)
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"
SERVER_ADDR = "198.18.0.1"
CLIENT_ADDR = "198.18.0.2"
OTHER_ADDR = "198.18.0.3"  # a second address of the client's namespace
PORT = 7070
NAME_RE = re.compile(r"^ipcb-(\d+)-[ab]$")


def _ip():
    for candidate in (shutil.which("ip"), "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


IP = _ip()


def binary():
    path = os.environ.get("IPCBENCH_BINARY", "")
    if not path:
        pytest.skip("IPCBENCH_BINARY is not set (ctest sets it to the built ipcbench)")
    if not os.access(path, os.X_OK):
        pytest.skip(f"IPCBENCH_BINARY={path} is not an executable file")
    return path


def ip(*args, check=True):
    return subprocess.run([IP, *args], capture_output=True, text=True, timeout=20, check=check)


def netns_pids(name):
    r = ip("netns", "pids", name, check=False)
    return {int(p) for p in r.stdout.split()} if r.returncode == 0 else set()


def leftovers():
    r = subprocess.run([str(ROOT / "scripts" / "leftovers")], capture_output=True, text=True,
                       timeout=60)
    return set(r.stdout.splitlines())


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_all_in(name, bound_s=5.0):
    """SIGKILLs every process in namespace `name`; returns what was there."""
    found = netns_pids(name)
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + bound_s
    while netns_pids(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _describe(pids):
    out = []
    for pid in sorted(pids):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmd = "?"
        out.append(f"{pid}: {cmd.strip()}")
    return out


def _sweep_stale_namespaces():
    """Namespaces of an earlier session of these tests that was killed
    (ipcb-<pid>-a/b of a pid that no longer runs): removed, with whatever
    still runs in them."""
    r = ip("netns", "list", check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = NAME_RE.match(name)
        if m and not _alive(int(m.group(1))):
            _kill_all_in(name)
            ip("netns", "del", name, check=False)


class Pair:
    """The two namespaces, the token, and every process these tests started
    (so leftovers can be attributed)."""

    def __init__(self, a, b, workdir):
        self.a, self.b = a, b
        self.workdir = workdir
        self.token_file = workdir / "token"
        self.owner_dir = workdir / "owners"
        self.started = set()  # pids of processes we started (clients, servers)
        self.peers = set()  # pids of the servers' peers (from their logs)
        self.env = dict(os.environ)
        self.env.pop("IPCBENCH_TOKEN", None)
        # Owner records of our runs in a directory of our own: a client we
        # SIGKILL leaves its record there, and the next run sweeps it.
        self.env["IPCBENCH_OWNER_DIR"] = str(self.owner_dir)

    def in_a(self, *argv):
        return [IP, "netns", "exec", self.a, *map(str, argv)]

    def in_b(self, *argv):
        return [IP, "netns", "exec", self.b, *map(str, argv)]

    def popen(self, argv, **kw):
        # `ip netns exec` execs the command itself: the pid is the command's.
        p = subprocess.Popen(argv, env=kw.pop("env", self.env), **kw)
        self.started.add(p.pid)
        return p

    def run(self, argv, timeout, **kw):
        """Runs to the end (bounded by `timeout`); returns (rc, stdout, stderr, seconds)."""
        start = time.monotonic()
        p = self.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate(timeout=10)
            pytest.fail(f"{argv} did not finish within {timeout} s:\n{err[-3000:]}")
        return p.returncode, out, err, time.monotonic() - start

    def ours(self, line):
        """Whether a scripts/leftovers line names an object or process of ours."""
        pids = self.started | self.peers
        m = re.search(r"ipcbench\.(\d+)\.", line) or re.match(r"process (\d+) ", line)
        return bool(m) and int(m.group(1)) in pids


@pytest.fixture(scope="session")
def pair(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root: the tests create two network namespaces (ip netns add); "
                    "CI runs them as root")
    if IP is None:
        pytest.skip("iproute2's 'ip' is not installed (apt-get install iproute2)")
    binary()
    _sweep_stale_namespaces()
    tag = os.getpid()
    a, b = f"ipcb-{tag}-a", f"ipcb-{tag}-b"
    va, vb = f"ipcb{tag}a", f"ipcb{tag}b"  # interface names: at most 15 characters
    workdir = tmp_path_factory.mktemp("remote")
    workdir.chmod(0o700)
    before = leftovers()
    r = ip("netns", "add", a, check=False)
    if r.returncode != 0:
        pytest.skip(f"this machine does not allow network namespaces: ip netns add: "
                    f"{r.stderr.strip()}")
    p = Pair(a, b, workdir)
    try:
        ip("netns", "add", b)
        ip("link", "add", va, "netns", a, "type", "veth", "peer", "name", vb, "netns", b)
        ip("-n", a, "addr", "add", f"{SERVER_ADDR}/24", "dev", va)
        ip("-n", b, "addr", "add", f"{CLIENT_ADDR}/24", "dev", vb)
        ip("-n", b, "addr", "add", f"{OTHER_ADDR}/24", "dev", vb)
        for ns, dev in ((a, va), (b, vb)):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", dev, "up")
        p.token_file.write_text("ipcbench-test-" + os.urandom(16).hex() + "\n")
        p.token_file.chmod(0o600)
        yield p
    finally:
        # Whatever still runs in the namespaces now was left behind (the
        # server fixtures have stopped their servers by now).
        left = {ns: _describe(netns_pids(ns)) for ns in (a, b)}
        for ns in (a, b):
            _kill_all_in(ns)
            ip("netns", "del", ns, check=False)
        remaining = [ns for ns in (a, b) if ns in ip("netns", "list", check=False).stdout]
        # The runs of a killed client were swept by the next run; anything
        # else of ours still recorded is cleaned now and reported.
        records = sorted(x.name for x in p.owner_dir.glob("*.owner")) if p.owner_dir.exists() else []
        if records:
            subprocess.run([binary(), "clean"], env=p.env, capture_output=True, timeout=30)
        after = leftovers()
        new = sorted(after - before)
        ours = [line for line in new if p.ours(line)]
        others = [line for line in new if not p.ours(line)]
        if others:
            print("leftovers not of these tests (other runs on this machine):", *others, sep="\n  ")
        assert not remaining, f"namespaces not removed: {remaining}"
        assert not any(left.values()), f"processes left in the namespaces: {left}"
        assert not records, f"owner records left by our runs: {records}"
        assert not ours, "IPC objects or peers left behind:\n" + "\n".join(ours)


class Server:
    """One `ipcbench serve` in namespace A, its stderr in a log file."""

    def __init__(self, pair, port, *extra):
        self.pair = pair
        self.port = port
        self.address = f"{SERVER_ADDR}:{port}"
        self.log_path = pair.workdir / f"serve-{port}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")
        argv = pair.in_a(binary(), "serve", "--listen", self.address, "--token-file",
                         pair.token_file, *extra)
        self.proc = pair.popen(argv, stdout=subprocess.DEVNULL, stderr=self._log)
        self.wait_for(r"listening on", 0, 10)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def lines(self):
        text = self.log_path.read_text(errors="replace")
        lines = text.splitlines()
        for line in lines:
            for m in re.finditer(r"peer (\d+) on", line):
                self.pair.peers.add(int(m.group(1)))
        return lines

    def mark(self):
        return len(self.lines())

    def wait_for(self, pattern, since, timeout):
        """The first log line from line `since` on that matches `pattern`."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            for line in self.lines()[since:]:
                if rx.search(line):
                    return line
            if time.monotonic() > deadline:
                pytest.fail(f"serve logged no line matching {pattern!r} within {timeout} s:\n"
                            + "\n".join(self.lines()[since:]))
            if self.proc.poll() is not None and not rx.search("\n".join(self.lines()[since:])):
                pytest.fail(f"serve exited ({self.proc.returncode}) before logging "
                            f"{pattern!r}:\n" + "\n".join(self.lines()))
            time.sleep(0.05)

    def stop(self):
        """SIGTERM; returns the exit status (SIGKILL after 5 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        self.lines()
        return self.proc.returncode


@pytest.fixture(scope="session")
def server(pair):
    """The server all bad clients meet, with a short handshake timeout; its
    peers on the last CPU we may use."""
    cpu = max(os.sched_getaffinity(0))
    s = Server(pair, PORT, "--cpus", cpu, "--handshake-timeout", "1")
    s.cpu = cpu
    yield s
    alive = s.alive()
    rc = s.stop()
    assert alive, f"serve died during the tests ({s.proc.returncode}):\n" + "\n".join(s.lines()[-20:])
    assert rc == 0, f"serve did not stop cleanly on SIGTERM ({rc})"
    bad = [line for line in s.lines() if not line.startswith("ipcbench serve ")]
    assert not bad, "serve's log has lines that are not its one-line events:\n" + "\n".join(bad)


def client_argv(pair, server, *args, out=None):
    argv = pair.in_b(binary(), "run", "--remote", server.address, "--token-file",
                     pair.token_file, *args)
    if out is not None:
        argv += ["--out", str(out)]
    return argv


def load(path):
    with open(path) as f:
        return json.load(f)
