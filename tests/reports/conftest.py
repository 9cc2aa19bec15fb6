"""Fixtures for the report tool's tests.

The real-result fixtures run the suite's own binary (IPCBENCH_BINARY, set by
ctest) on a tiny suite, so the reports are tested on what the suite writes
today, not only on the checked-in golden files."""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import reportutil
from ipcbench_report import model

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(autouse=True, scope="session")
def schema_passes_remembered():
    """The report tool checks every file it loads against the schema
    (model._check_schema: ~0.1 s per full result under jsonschema), and these
    tests load the same few files hundreds of times: a quarter of the suite's
    CPU. The check is a function of the schema file and the document, so a
    document that passed once passes again: a pass is remembered by the
    schema's path and a digest of the document; a failure never is (it is
    checked, and its message built, every time)."""
    check = model._check_schema  # pylint: disable=protected-access
    passed = set()

    def remembered(path, data, schema_path):
        try:
            key = (str(schema_path), hashlib.blake2b(
                json.dumps(data, sort_keys=True, allow_nan=True).encode()).digest())
        except (RecursionError, TypeError, ValueError):
            return check(path, data, schema_path)
        if key in passed:
            return None
        check(path, data, schema_path)
        passed.add(key)
        return None

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model, "_check_schema", remembered)
        yield


def _binary():
    path = os.environ.get("IPCBENCH_BINARY", "")
    if not path:
        pytest.skip("IPCBENCH_BINARY is not set (ctest sets it to the built ipcbench); "
                    "the tests on a freshly produced result file need the binary")
    if not os.access(path, os.X_OK):
        pytest.skip(f"IPCBENCH_BINARY={path} is not an executable file")
    return path


def _once(tmp_path_factory, name, produce):
    """produce(directory) -> a path or a tuple of paths, run once per test
    session even with several xdist workers (each runs the session fixtures
    itself): the first worker produces under a lock in the session's shared
    folder, the others wait for it and reuse the files. The real runs are
    most of the report tests' CPU time, so running each once shortens CI."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return produce(tmp_path_factory.mktemp(name))
    shared = tmp_path_factory.getbasetemp().parent / "shared"
    shared.mkdir(exist_ok=True)
    done = shared / f"{name}.paths.json"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if done.is_file():
            paths = [Path(p) for p in json.loads(done.read_text())]
            return paths[0] if len(paths) == 1 else tuple(paths)
        directory = shared / name
        shutil.rmtree(directory, ignore_errors=True)  # a failed attempt's
        directory.mkdir()
        made = produce(directory)
        paths = [made] if isinstance(made, Path) else list(made)
        done.write_text(json.dumps([str(p) for p in paths]))
        return made


def _run_into(directory, name, *args):
    out = directory / f"{name}.json"
    proc = subprocess.run([_binary(), "run", *args, "--out", str(out)], capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode in (0, 1), f"ipcbench run failed ({proc.returncode}): {proc.stderr}"
    assert out.is_file(), f"ipcbench wrote no result file: {proc.stderr}"
    return out


def _run_suite(tmp_path_factory, name, *args):
    return _once(tmp_path_factory, name, lambda directory: _run_into(directory, name, *args))


@pytest.fixture(scope="session")
def real_result(tmp_path_factory):
    """A result file the suite produced during this test run."""
    return _run_suite(tmp_path_factory, "real", "--mechanisms", "pipe,uds-stream,tcp",
                      "--sizes", "64,1KiB", "--min-time", "0.02")


@pytest.fixture(scope="session")
def real_result_reps(tmp_path_factory):
    """A real result with 5 repetitions per case (the significance path)."""
    return _run_suite(tmp_path_factory, "reps", "--mechanisms", "pipe,tcp", "--sizes", "64",
                      "--min-time", "0.01", "--repetitions", "5")


@pytest.fixture(scope="session")
def real_result_placements(tmp_path_factory):
    """A real result over two placements with repetitions (calibration,
    floors and cv when the suite writes them). Skips when the built suite
    has no --placement yet or the machine has fewer than two CPUs."""
    binary = _binary()
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: a cross-cpu placement needs two")

    def produce(directory):
        out = directory / "placements.json"
        proc = subprocess.run([binary, "run", "--placement", "cross-cpu,same-cpu",
                               "--mechanisms", "pipe,shm-spin", "--sizes", "64",
                               "--min-time", "0.01", "--repetitions", "2", "--out", str(out)],
                              capture_output=True, text=True, timeout=240)
        if proc.returncode == 2 and "placement" in proc.stderr:
            pytest.skip(f"this ipcbench has no --placement yet: {proc.stderr.strip()[:200]}")
        assert proc.returncode in (0, 1), f"ipcbench run failed ({proc.returncode}): {proc.stderr}"
        assert out.is_file(), f"ipcbench wrote no result file: {proc.stderr}"
        return out

    return _once(tmp_path_factory, "placements", produce)


@pytest.fixture(scope="session")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium); "
                    "the browser tests need Debian's Chromium")
    return str(CHROMIUM)


@pytest.fixture
def golden(tmp_path):
    """Copies of the checked-in golden result files, safe to modify."""
    def copy(name):
        dst = tmp_path / name
        shutil.copy(reportutil.DATA / name, dst)
        return dst
    return copy


@pytest.fixture(scope="session")
def browser_result(request):
    """What the browser tests open: a freshly produced result when the binary
    is available, else the golden all-mechanism file (the browser checks
    must not depend on the binary)."""
    if os.environ.get("IPCBENCH_BINARY"):
        return request.getfixturevalue("real_result")
    return reportutil.DATA / "all-mechanisms.json"


@pytest.fixture(scope="session")
def real_remote_pair(tmp_path_factory):
    """(local, remote) result files the suite produced: 'ipcbench serve' on
    loopback and 'ipcbench run --remote' against it (the host-crossing
    mechanisms). Skips when the built suite has no 'serve' yet."""
    import socket
    import time
    binary = _binary()
    if subprocess.run([binary, "serve", "--help"], capture_output=True).returncode != 0:
        pytest.skip("this ipcbench has no 'serve' yet")

    def produce(base):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = base / "serve.log"
        with open(log, "w") as out:
            serve = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}"],
                                     stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while "listening on" not in log.read_text() and serve.poll() is None:
                if time.monotonic() > deadline:
                    pytest.fail(f"ipcbench serve did not listen: {log.read_text()[-500:]}")
                time.sleep(0.05)
            assert serve.poll() is None, f"ipcbench serve exited: {log.read_text()[-500:]}"
            args = ("--mechanisms", "tcp,udp,zmq-tcp", "--sizes", "64", "--min-time", "0.02")
            local = _run_into(base, "remote-local", *args)
            remote = _run_into(base, "remote-cross", "--remote", f"127.0.0.1:{port}", *args)
        finally:
            serve.terminate()
            try:
                serve.wait(timeout=10)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
        return local, remote

    return _once(tmp_path_factory, "remote", produce)
