"""The installed ipcbench: `cmake --install` into a prefix, and the Debian
package CPack makes, unpacked with dpkg. From either, the binary lists and
runs a case and the report tool renders its result, with nothing from the
source tree on the path."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

BUILD = Path(os.environ["IPCBENCH_BUILD_DIR"])
ROOT = Path(__file__).resolve().parents[2]


def run(cmd, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["PATH"] = "/usr/bin:/bin"
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300,
                          env=env, cwd=kw.pop("cwd", "/"), **kw)


def check_installed(bindir, tmp_path):
    """The installed binary and report tool work from `bindir`."""
    listed = run([bindir / "ipcbench", "list"])
    assert listed.returncode == 0, listed.stderr
    assert "pipe" in listed.stdout and "zmq-ipc" in listed.stdout

    result = tmp_path / "r.json"
    ran = run([bindir / "ipcbench", "run", "--mechanisms", "pipe", "--sizes", "64",
               "--min-time", "0.05", "--out", result])
    assert ran.returncode == 0, ran.stderr
    doc = json.loads(result.read_text())
    rows = [b for b in doc["benchmarks"] if b.get("mechanism") == "pipe"]
    assert rows and all(b.get("error_occurred") is not True for b in rows)

    out = tmp_path / "report"
    rep = run([bindir / "ipcbench-report", "report", result, "-o", out])
    assert rep.returncode == 0, rep.stderr
    page = (out / "report.html").read_text()
    assert "<svg" in page and "pipe" in page


def test_cmake_install_into_a_prefix(tmp_path):
    prefix = tmp_path / "prefix"
    r = run(["cmake", "--install", BUILD, "--prefix", prefix])
    assert r.returncode == 0, r.stderr
    installed = sorted(p.relative_to(prefix).as_posix() for p in prefix.rglob("*") if p.is_file())
    assert "bin/ipcbench" in installed and "bin/ipcbench-report" in installed
    pkg = "share/ipcbench/python/ipcbench_report/"
    assert pkg + "result.schema.json" in installed
    assert pkg + "cli.py" in installed
    assert any(p.startswith(pkg + "templates/") for p in installed)
    assert not any("__pycache__" in p or p.endswith(".a") for p in installed)
    # The schema is a file of its own there, not a link back into the source tree.
    schema = prefix / pkg / "result.schema.json"
    assert not schema.is_symlink() and json.loads(schema.read_text())["$schema"]
    check_installed(prefix / "bin", tmp_path)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")
def test_the_debian_package(tmp_path):
    r = run(["cpack", "-G", "DEB", "-B", tmp_path / "pkg", "--config", BUILD / "CPackConfig.cmake"],
            cwd=BUILD)
    assert r.returncode == 0, r.stdout + r.stderr
    debs = list((tmp_path / "pkg").glob("ipcbench_*.deb"))
    assert len(debs) == 1, r.stdout
    deb = debs[0]

    depends = run(["dpkg-deb", "-f", deb, "Depends"]).stdout
    for needed in ("libbenchmark", "libzmq5", "libc6", "python3-jinja2", "python3-matplotlib",
                   "python3-jsonschema", "python3-scipy"):
        assert needed in depends, depends

    contents = run(["dpkg-deb", "-c", deb]).stdout
    for path in ("./usr/bin/ipcbench", "./usr/bin/ipcbench-report",
                 "./usr/share/ipcbench/python/ipcbench_report/result.schema.json",
                 "./usr/share/doc/ipcbench/README.md"):
        assert path in contents, contents

    root = tmp_path / "root"
    assert run(["dpkg-deb", "-x", deb, root]).returncode == 0
    check_installed(root / "usr" / "bin", tmp_path)
