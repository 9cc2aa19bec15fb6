"""scripts/report history (issue 20 point 4): runs kept in an SQLite file,
a trend page over revisions, and the lasting-step detector on synthetic
series whose steps are known."""

import os
import random
import re
import sqlite3

import pytest

from reportutil import DATA, html_table, load, run_script, save

from ipcbench_report import history

STEP_CASE = ("pipe", "sync", "latency", 64)


def runs_with_a_step(tmp_path, n=8, step_at=5, factor=1.3):
    """n copies of a one-repetition run, each its own revision and date;
    pipe's sync 64 B p50 is `factor` times higher from run `step_at` (0-based) on,
    with a little noise so the series is not flat."""
    rng = random.Random(7)
    paths = []
    for i in range(n):
        doc = load(DATA / "all-mechanisms.json")
        doc["ipcbench"]["git_revision"] = f"rev{i:02d}"
        doc["context"]["date"] = f"2026-12-{i + 1:02d}T10:00:00+00:00"
        for e in doc["benchmarks"]:
            if (e.get("mechanism"), e.get("mode"), e.get("pattern"), e.get("message_size")) \
                    == STEP_CASE and "p50_ns" in e:
                e["p50_ns"] *= (factor if i >= step_at else 1.0) * (1 + rng.uniform(-0.01, 0.01))
        paths.append(save(doc, tmp_path / f"run{i}.json"))
    return paths


def add(db, path):
    return run_script("report", "history", "add", path, "--db", db)


def show(db, out):
    proc = run_script("report", "history", "show", "--db", db, "-o", out)
    assert proc.returncode == 0, proc.stderr
    return (out / "history.html").read_text(encoding="utf-8")


def counts(db):
    with sqlite3.connect(db) as con:
        return tuple(con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                     for t in ("runs", "figures"))


def test_adding_the_same_run_again_changes_nothing(tmp_path):
    db = tmp_path / "h.sqlite"
    proc = add(db, DATA / "reps5.json")
    assert proc.returncode == 0, proc.stderr
    first = counts(db)
    assert first[0] == 1 and first[1] > 0
    again = add(db, DATA / "reps5.json")
    assert again.returncode == 0 and "nothing changed" in again.stderr
    assert counts(db) == first


def test_a_single_run_renders_a_trend_page(tmp_path):
    db = tmp_path / "h.sqlite"
    assert add(db, DATA / "reps5.json").returncode == 0
    page = show(db, tmp_path / "out")
    assert len(html_table(page, "runs-table")) == 1
    assert "a step needs at least 5 runs" in page
    assert page.count('<figure class="plot"') >= 1 and "<svg" in page


def test_three_files_render_a_trend_page_with_their_revisions(tmp_path):
    db = tmp_path / "h.sqlite"
    for path in runs_with_a_step(tmp_path, n=3, step_at=3):
        assert add(db, path).returncode == 0
    page = show(db, tmp_path / "out")
    rows = html_table(page, "runs-table")
    assert [r[2] for r in rows] == ["rev00", "rev01", "rev02"]
    assert 'id="fig-trend-0"' in page


def test_a_known_step_is_found_at_its_revision_and_nothing_else(tmp_path):
    db = tmp_path / "h.sqlite"
    paths = runs_with_a_step(tmp_path)
    for path in reversed(paths):  # added out of order: the date orders them
        assert add(db, path).returncode == 0
    page = show(db, tmp_path / "out")
    steps = html_table(page, "steps-table")
    assert len(steps) == 1, steps
    host, name, figure, revision, _date, _before, _after, change, verdict = steps[0]
    assert name == "pipe/sync/latency/64/cross-cpu" and figure == "p50 round trip"
    assert revision == "rev05" and verdict == "worse"
    assert change.startswith("+2") or change.startswith("+3"), change
    assert 'id="data-step-' in page  # marked in the plot too


def test_bad_databases_are_refused_with_one_line(tmp_path):
    missing = run_script("report", "history", "show", "--db", tmp_path / "none.sqlite",
                         "-o", tmp_path / "o")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "no history database" in missing.stderr
    text = tmp_path / "text.sqlite"
    text.write_text("not a database, " * 100)
    proc = add(text, DATA / "reps5.json")
    assert proc.returncode == 2 and "not an SQLite database" in proc.stderr
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE t (x)")
    proc = add(other, DATA / "reps5.json")
    assert proc.returncode == 2 and "not an ipcbench history database" in proc.stderr
    assert not (tmp_path / "o" / "history.html").exists()


def test_a_database_path_that_is_not_a_regular_file_is_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/null", tmp_path):
        proc = add(path, DATA / "reps5.json")
        assert proc.returncode == 2 and "not a regular file" in proc.stderr, (path, proc.stderr)
    target = tmp_path / "real.sqlite"
    link = tmp_path / "link.sqlite"
    assert add(target, DATA / "reps5.json").returncode == 0
    link.symlink_to(target)
    again = add(link, DATA / "reps5.json")  # through the symlink: the same database
    assert again.returncode == 0 and "nothing changed" in again.stderr
    assert link.is_symlink()


def noisy(values, spread, seed):
    rng = random.Random(seed)
    return [v * (1 + rng.uniform(-spread, spread)) for v in values]


def test_detector_finds_a_known_step():
    steps = history.find_steps(noisy([100] * 10 + [130] * 10, 0.02, 1))
    assert [s.index for s in steps] == [10]
    assert steps[0].before == pytest.approx(100, rel=0.03)
    assert steps[0].after == pytest.approx(130, rel=0.03)


@pytest.mark.parametrize("seed", range(20))
def test_detector_finds_nothing_in_noise(seed):
    assert history.find_steps(noisy([100] * 40, 0.05, seed)) == []


def test_detector_ignores_a_spike_and_a_change_too_short_to_last():
    spike = [100.0] * 10
    spike[5] = 200.0
    assert history.find_steps(spike) == []
    assert history.find_steps([100.0] * 10 + [150.0, 150.0]) == []
    assert [s.index for s in history.find_steps([100.0] * 10 + [150.0] * 3)] == [10]


def test_detector_finds_two_steps_with_their_segments_medians():
    steps = history.find_steps([100.0] * 5 + [120.0] * 5 + [90.0] * 5)
    assert [(s.index, s.before, s.after) for s in steps] == [(5, 100, 120), (10, 120, 90)]


def test_detector_needs_a_change_above_the_minimum():
    assert history.find_steps([100.0] * 10 + [103.0] * 10) == []  # 3% < 5%


def test_method_is_stated_on_the_page(tmp_path):
    db = tmp_path / "h.sqlite"
    assert add(db, DATA / "reps5.json").returncode == 0
    page = show(db, tmp_path / "out")
    assert re.search(r"binary segmentation", page)
