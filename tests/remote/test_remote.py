"""`ipcbench serve` and `run --remote` over a real link (issue 8).

Server in namespace A (198.18.0.1), clients in namespace B (198.18.0.2),
joined by a veth pair; see conftest.py. Every process is bounded in time.
"""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import (CLIENT_ADDR, HERE, OTHER_ADDR, PYTHON, SERVER_ADDR, Server, binary,
                      client_argv, load, netns_pids)

SIZES = {"64": 64, "4KiB": 4096}
GOOD_RUN = ("--mechanisms", "tcp", "--modes", "sync", "--patterns", "latency", "--sizes", "64",
            "--min-time", "0.01", "--no-calibration")


def crossing_mechanisms():
    out = subprocess.run([binary(), "list", "--json"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return {m["name"]: m["max_message"] for m in json.loads(out) if m["crosses_hosts"]}


def one_line_error(stderr, prefix="ipcbench: error: "):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith(prefix), lines[0]
    return lines[0]


def assert_serves_good_client(pair, server, tmp_path):
    """After anything: the same server process runs one short case for a
    good client, and stays up."""
    assert server.alive(), "serve died:\n" + "\n".join(server.lines()[-20:])
    out = tmp_path / "good.json"
    rc, _, err, _ = pair.run(client_argv(pair, server, *GOOD_RUN, out=out), timeout=60)
    assert rc == 0, f"good client failed ({rc}):\n{err[-3000:]}"
    doc = load(out)
    rows = doc["benchmarks"]
    assert len(rows) == 1 and not rows[0].get("error_occurred"), rows
    assert rows[0]["across_hosts"] is True and rows[0]["p50_ns"] > 0
    assert doc["ipcbench"]["failed"] == []
    assert server.alive()


def assert_only_server_left(pair, server, bound_s=5.0):
    """Namespace A holds the server alone (its peers are gone), B nothing."""
    deadline = time.monotonic() + bound_s
    while True:
        a, b = netns_pids(pair.a), netns_pids(pair.b)
        if a == {server.pid} and not b:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"left in the namespaces: A {sorted(a)} (serve is {server.pid}), "
                        f"B {sorted(b)}")
        time.sleep(0.05)


# --- the token and the listening address -------------------------------------


def test_token_file_readable_by_others_is_refused(pair, tmp_path):
    loose = tmp_path / "token-0644"
    loose.write_text(pair.token_file.read_text())
    loose.chmod(0o644)
    for argv in (pair.in_a(binary(), "serve", "--listen", f"{SERVER_ADDR}:7071",
                           "--token-file", loose),
                 pair.in_b(binary(), "run", "--remote", f"{SERVER_ADDR}:7070",
                           "--token-file", loose, "--mechanisms", "tcp")):
        rc, _, err, _ = pair.run(argv, timeout=30)
        assert rc == 2, err
        line = one_line_error(err)
        assert "mode 0644" in line and f"chmod 600 {loose}" in line, line


def test_serve_off_loopback_needs_a_token(pair, tmp_path):
    rc, _, err, _ = pair.run(pair.in_a(binary(), "serve", "--listen", f"{SERVER_ADDR}:7071"),
                             timeout=30)
    assert rc == 2, err
    line = one_line_error(err)
    assert "needs a shared token" in line and "--token-file" in line and "--insecure" in line


def test_real_client_with_wrong_or_missing_token_is_refused(pair, server, tmp_path):
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token\n")
    wrong.chmod(0o600)
    for token_args, reason in ((["--token-file", wrong], "wrong token"), ([], "missing token")):
        mark = server.mark()
        argv = pair.in_b(binary(), "run", "--remote", server.address, *token_args, *GOOD_RUN)
        rc, _, err, secs = pair.run(argv, timeout=30)
        assert rc == 1, (rc, err)
        line = one_line_error(err, prefix="ipcbench: ")
        assert reason in line and server.address in line, line
        assert secs < 10
        server.wait_for(f"closed: {reason}", mark, 5)
    assert_serves_good_client(pair, server, tmp_path)


# --- every host-crossing mechanism across the link ----------------------------


def test_every_crossing_mechanism_sync_and_async_across_the_link(pair, server, tmp_path):
    mechanisms = crossing_mechanisms()
    assert {"tcp", "udp", "zmq-tcp"} <= set(mechanisms), mechanisms
    out = tmp_path / "cross.json"
    mark = server.mark()
    argv = client_argv(pair, server, "--mechanisms", ",".join(mechanisms), "--modes",
                       "sync,async", "--patterns", "latency,throughput", "--sizes",
                       ",".join(SIZES), "--min-time", "0.05", "--verify", "full", out=out)
    rc, _, err, _ = pair.run(argv, timeout=150)
    assert rc == 0, err[-4000:]
    doc = load(out)
    meta = doc["ipcbench"]
    assert meta["complete"] is True and meta["failed"] == [] and meta["flagged"] == []
    assert meta["configuration"]["verify"] == "full"
    remote = meta["remote"]
    assert remote["address"] == server.address
    assert isinstance(remote["host"], dict) and remote["host"].get("kernel")
    assert remote["cpus"] == [server.cpu]

    rows = {}
    for b in doc["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        key = (b["mechanism"], b["mode"], b["pattern"], b["message_size"])
        assert key not in rows, f"two rows for {key}"
        rows[key] = b
    expected_cases = 0
    for m, limit in mechanisms.items():
        for mode in ("sync", "async"):
            for pattern in ("latency", "throughput"):
                for size in SIZES.values():
                    key = (m, mode, pattern, size)
                    assert key in rows, f"no row for {key}"
                    b = rows[key]
                    if size > limit:
                        assert b.get("skipped") is True, b
                        continue
                    expected_cases += 1
                    assert not b.get("error_occurred") and not b.get("skipped"), b
                    assert b["across_hosts"] is True
                    assert b["remote"]["address"] == server.address
                    assert b["remote"]["peer_cpu"] == server.cpu
                    assert b["floor_ratio"] is None and b["floor_note"], b
                    assert b["messages"] > 0
                    if pattern == "latency":
                        assert b["samples"] > 0 and b["p50_ns"] > 0, b
                    else:
                        assert b["bytes_per_second"] > 0, b
                    if mode == "async" and pattern == "latency":
                        numbers = [k for k in b if k.startswith("oneway_") and k != "oneway_note"]
                        assert not numbers, f"one-way figures across hosts: {numbers}"
                        assert b["oneway_note"], b
    # Every case's peer checked every payload (--verify full: a wrong byte
    # ends it with a non-zero status) and left on the client's goodbye.
    lines = server.lines()[mark:]
    cases = [line for line in lines if re.search(r": case \d+: ", line)]
    ends = [line for line in lines if line.endswith(": peer exited with status 0")]
    assert len(cases) == expected_cases, "\n".join(lines)
    assert len(ends) == expected_cases, "\n".join(lines)
    for m in mechanisms:
        assert any(f": {m}, max " in line for line in cases), m
    assert_only_server_left(pair, server)


# --- bad clients: each ends its own connection, the server goes on -----------

# case -> (reason the client is told, or None; the reason serve logs)
ABANDONED = r"peer killed by the server \(case abandoned\)"
BAD_CLIENTS = {
    "wrong-token": ("wrong token", "closed: wrong token"),
    "missing-token": ("missing token", "closed: missing token"),
    "no-token-field": ("missing 'token'", "closed: hello: missing 'token'"),
    "version-99": ("version", "closed: protocol version mismatch: .* the client 99"),
    "garbage": ("not JSON", "closed: control message is not JSON"),
    "http": ("oversized", r"closed: oversized control message \(1195725856 bytes"),
    "oversized-7fffffff": ("oversized", r"closed: oversized control message \(2147483647 bytes"),
    "oversized-70000": ("oversized", r"closed: oversized control message \(70000 bytes"),
    "length-0": ("length 0", r"closed: empty control message \(length 0\)"),
    "not-object": ("not a JSON object", "closed: control message is not a JSON object"),
    "no-type": ("no string 'type'", "closed: control message has no string 'type'"),
    "hello-unknown-field": ("unexpected field 'colour'", "closed: hello: unexpected field 'colour'"),
    "setup-before-hello": ("expected hello", "closed: expected hello, got 'setup'"),
    "hello-twice": ("unexpected 'hello'", "closed: unexpected 'hello' between cases"),
    "teardown-without-setup": ("unexpected 'teardown'",
                               "closed: unexpected 'teardown' between cases"),
    "setup-pipe": ("'pipe' is not one that crosses hosts",
                   "closed: setup: mechanism 'pipe' is not one that crosses hosts"),
    "setup-oversized": ("'max_message' out of range", "closed: setup: 'max_message' out of range"),
    "setup-cpu": ("is not one this server offers", "closed: setup: CPU .* is not one this server offers"),
    "setup-unknown-field": ("unexpected field 'colour'", "closed: setup: unexpected field 'colour'"),
    "silent": ("handshake timeout", "closed: no hello within the handshake timeout"),
    "half-message": ("handshake timeout", "closed: no hello within the handshake timeout"),
    "setup-twice": ("unexpected 'setup' during a case",
                    "closed: unexpected 'setup' during a case; " + ABANDONED),
    "disconnect-mid-case": (None, "closed: disconnected mid-case; " + ABANDONED),
}


def bad_client(pair, server, case, *extra, timeout=30):
    argv = pair.in_b(PYTHON, HERE / "bad_client.py", case, server.address, pair.token_file,
                     *extra)
    rc, out, err, _ = pair.run(argv, timeout=timeout)
    assert rc == 0, f"bad_client {case} broke ({rc}):\n{err}"
    return json.loads(out)


@pytest.mark.parametrize("case", list(BAD_CLIENTS))
def test_bad_client_then_a_good_one(pair, server, tmp_path, case):
    told, logged = BAD_CLIENTS[case]
    mark = server.mark()
    cpu = min(set(range(os.cpu_count() or 1)) - {server.cpu} or {4095})
    got = bad_client(pair, server, case, "--cpu", cpu)
    if told is not None:
        assert got["eof"] is True, got
        assert [m["type"] for m in got["received"]] == ["error"], got
        assert told in got["received"][0]["reason"], got
    if case in ("silent", "half-message"):
        assert 0.8 < got["elapsed_s"] < 5, got  # --handshake-timeout 1
    line = server.wait_for(logged, mark, 10)
    assert line.startswith("ipcbench serve ") and f": {CLIENT_ADDR}: " in line, line
    if "ready" in got:  # the case's peer was killed and reaped
        assert got["ready"]["peer_pid"] not in netns_pids(pair.a)
    assert_only_server_left(pair, server)
    assert_serves_good_client(pair, server, tmp_path)


def test_second_client_while_one_is_served_is_told_busy(pair, server, tmp_path):
    mark = server.mark()
    got = bad_client(pair, server, "busy")
    second = got["second"]
    assert [m["type"] for m in second["received"]] == ["busy"], got
    assert "busy" in second["received"][0]["reason"] and second["eof"] is True
    server.wait_for(rf"{CLIENT_ADDR}: refused: busy with {CLIENT_ADDR}", mark, 5)
    server.wait_for(r"bye after 0 case\(s\)", mark, 5)  # the first client was served on
    assert_only_server_left(pair, server)
    assert_serves_good_client(pair, server, tmp_path)


@pytest.mark.parametrize("mechanism", ["tcp", "zmq-tcp"])
def test_data_port_refuses_another_address(pair, server, tmp_path, mechanism):
    """While a case is set up, a connection to the peer's data port from
    another address of the client's host does not reach the peer."""
    mark = server.mark()
    got = bad_client(pair, server, f"data-from-other:{mechanism}", "--source", OTHER_ADDR)
    assert got["intruder"] == {"closed": True, "bytes": 0}, got
    assert "done" in got and got["eof"] is True, got
    server.wait_for(r"bye after 1 case\(s\)", mark, 5)
    assert_only_server_left(pair, server)
    assert_serves_good_client(pair, server, tmp_path)


# --- a real client killed mid-case ---------------------------------------------


@pytest.mark.parametrize("mechanism", ["tcp", "udp", "zmq-tcp"])
def test_client_killed_mid_case(pair, server, tmp_path, mechanism):
    mark = server.mark()
    argv = client_argv(pair, server, "--mechanisms", mechanism, "--modes", "sync", "--patterns",
                       "throughput", "--sizes", "64", "--min-time", "5", "--no-calibration",
                       out=tmp_path / "killed.json")
    client = pair.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        server.wait_for(rf": case \d+: {mechanism}, ", mark, 15)
        time.sleep(0.3)  # into the case's trials
        assert client.poll() is None, "the client ended before it could be killed"
        client.send_signal(signal.SIGKILL)
    finally:
        client.kill()
        client.communicate(timeout=10)
    # The peer sees its data connection end too: either it left first (and
    # serve logged how) or serve killed it when the control connection ended.
    line = server.wait_for(r"closed: disconnected mid-case", mark, 5)
    if not re.search("; " + ABANDONED + "$", line):
        assert line.endswith("closed: disconnected mid-case"), line
        assert any(re.search(r": peer (exited with status|was killed by signal) \d+", x)
                   for x in server.lines()[mark:]), server.lines()[mark:]
    assert_only_server_left(pair, server)
    assert not (tmp_path / "killed.json").exists()
    # The next run sweeps what the killed one left (its run directory).
    assert_serves_good_client(pair, server, tmp_path)
    left = [p for p in os.listdir("/tmp") if p.startswith(f"ipcbench.{client.pid}.")]
    assert not left, f"the killed client's objects were not swept: {left}"


# --- the server killed mid-case -----------------------------------------------


@pytest.mark.parametrize("mechanism", ["tcp", "udp", "zmq-tcp"])
def test_server_killed_mid_case(pair, server, tmp_path, mechanism):
    timeout_s = 3
    doomed = Server(pair, 7071, "--cpus", server.cpu)
    out = tmp_path / "server-killed.json"
    argv = client_argv(pair, doomed, "--mechanisms", mechanism, "--modes", "sync,async",
                       "--patterns", "latency,throughput", "--sizes", "64", "--min-time", "5",
                       "--timeout", timeout_s, "--no-calibration", out=out)
    client = pair.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        doomed.wait_for(rf": case 1: {mechanism}, ", 0, 15)
        time.sleep(0.5)
        assert client.poll() is None, "the client ended before the server was killed"
        doomed.proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        _, err = client.communicate(timeout=timeout_s + 30)
        took = time.monotonic() - killed_at
    finally:
        client.kill()
        doomed.stop()
    assert doomed.proc.returncode == -signal.SIGKILL
    # The case that ran fails within --timeout; the later ones at once.
    assert took < timeout_s + 2, f"{took:.1f} s after the server was killed:\n{err}"
    assert client.returncode == 1, err
    doc = load(out)
    failed = {f["name"].removesuffix("/manual_time"): f["error"] for f in doc["ipcbench"]["failed"]}
    names = [f"{mechanism}/{mode}/{pattern}/64" for mode in ("sync", "async")
             for pattern in ("latency", "throughput")]
    assert sorted(failed) == sorted(names), failed
    first = failed[names[0]]
    assert "control connection" in first, first
    for name in names[1:]:
        assert re.search(rf"cannot connect to {re.escape(doomed.address)}: Connection refused",
                         failed[name]), failed[name]
        assert "the server reported" not in failed[name], failed[name]  # not the old case's verdict
    # stderr lists each failed case on one line with its reason.
    listed = [line for line in err.splitlines() if line.startswith(f"  {mechanism}/")]
    assert len(listed) == len(names), err
    # The killed server's peer died with it; nothing else is left.
    assert_only_server_left(pair, server)
    assert_serves_good_client(pair, server, tmp_path)
