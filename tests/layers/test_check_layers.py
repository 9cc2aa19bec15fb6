"""scripts/check-layers: passes on the tree as it is, fails on an include
that points upward or across, on a library used by the wrong layer, and on
a source that belongs to no layer."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check-layers"


def check(root):
    return subprocess.run(["/usr/bin/python3", str(SCRIPT), str(root)], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def tree(tmp_path):
    """A copy of the sources the check reads."""
    for top in ("bench", "mechanisms"):
        shutil.copytree(ROOT / top, tmp_path / top)
    return tmp_path


def add_include(path, include):
    text = path.read_text()
    first = text.index("#include")
    path.write_text(text[:first] + include + "\n" + text[first:])


def test_the_tree_passes():
    r = check(ROOT)
    assert r.returncode == 0, r.stderr
    assert "every include along an agreed edge" in r.stdout


def test_the_copy_passes(tree):
    assert check(tree).returncode == 0


def test_an_upward_include_fails(tree):
    add_include(tree / "bench/core/clock.hpp", '#include "bench/run/runner.hpp"')
    r = check(tree)
    assert r.returncode == 1
    assert "bench/core/clock.hpp:" in r.stderr
    assert "core -> run is not an agreed edge" in r.stderr


def test_the_posix_layer_includes_nothing_above_it(tree):
    add_include(tree / "mechanisms/posix/fd.hpp", '#include "mechanisms/mechanism.hpp"')
    r = check(tree)
    assert r.returncode == 1
    assert "posix -> interface" in r.stderr


def test_one_family_may_not_include_another(tree):
    add_include(tree / "mechanisms/streams/pipe.cpp", '#include "mechanisms/queues/sysv_mq.cpp"')
    r = check(tree)
    assert r.returncode == 1
    assert "adapters:streams -> adapters:queues" in r.stderr


def test_the_core_may_not_use_google_benchmark(tree):
    add_include(tree / "bench/core/histogram.hpp", "#include <benchmark/benchmark.h>")
    r = check(tree)
    assert r.returncode == 1
    assert "<benchmark/benchmark.h>: the core layer may not use that library" in r.stderr


def test_the_top_sees_everything(tree):
    add_include(tree / "bench/cli/cli.cpp", '#include "mechanisms/streams/pipe.cpp"')
    assert check(tree).returncode == 0


def test_a_source_in_no_layer_is_named(tree):
    (tree / "bench/extra").mkdir()
    (tree / "bench/extra/thing.cpp").write_text("int x;\n")
    r = check(tree)
    assert r.returncode == 2
    assert "bench/extra/thing.cpp: in no layer" in r.stderr


def test_an_include_by_a_bare_name_is_refused(tree):
    add_include(tree / "bench/run/runner.cpp", '#include "clock.hpp"')
    r = check(tree)
    assert r.returncode == 2
    assert "include by the path from the project root" in r.stderr
