"""A load sweep's result (run --load-sweep) in the report tool: every part
of a sweep is its own case, so the steps are never taken for repetitions
of one case, and compare pairs the same step across runs."""

import json

import re

from reportutil import (DATA, doctor, figure_html, html_table, load, panel_points, run_script,
                        save, svgs)

from ipcbench_report import model, multiples

LOAD = DATA / "load-sweep.json"


def test_each_step_is_its_own_case():
    run = model.load(LOAD)
    doc = json.loads(LOAD.read_text())
    rows = [e for e in doc["benchmarks"] if e.get("pattern") == "load"]
    assert len(run.cases) == len(rows)  # one repetition: one row per case
    keys = {c.key.pattern for c in run.cases.values() if c.key.mechanism == "pipe"
            and c.key.size == 64}
    steps = {f"load/{e['load_step']}" for e in rows if e["mechanism"] == "pipe"
             and e["message_size"] == 64 and e["load_role"] == "step"}
    assert keys == {"load/peak", "load/round-trip", "load/unloaded"} | steps and len(steps) >= 5
    for case in run.cases.values():
        assert len(case.entries) == 1, case.key


def test_report_and_compare_take_a_sweep(tmp_path):
    out = tmp_path / "out"
    proc = run_script("report", LOAD, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.html").stat().st_size > 0
    slower = save(doctor(load(LOAD), 1.5), tmp_path / "slower.json")
    proc = run_script("compare", LOAD, slower, "-o", tmp_path / "cmp")
    assert proc.returncode == 1, proc.stderr  # slower everywhere: regressions
    text = (tmp_path / "cmp" / "compare.md").read_text(encoding="utf-8")
    # Each step by its round trips, the peak by its echo rate, all regressed.
    assert "pipe/async/load/50%/64 B" in text and "pipe/async/load/peak/64 B" in text
    assert "peak echo rate" in text and "p99" in text
    rows = json.loads(LOAD.read_text())["benchmarks"]
    assert f"{len(rows)} regressed, 0 improved" in proc.stdout + text


def test_report_shows_the_curves_and_the_capacity_table(tmp_path):
    out = tmp_path / "out"
    proc = run_script("report", LOAD, "-o", out)
    assert proc.returncode == 0, proc.stderr
    page = (out / "report.html").read_text(encoding="utf-8")
    sweeps = json.loads(LOAD.read_text())["ipcbench"]["load_sweeps"]
    table = html_table(page, "load-table")
    assert len(table) == len(sweeps)
    # Per size, ranked by capacity (a sweep with none last).
    for size_text in ("64 B", "1 KiB"):
        rows = [r for r in table if r[1] == size_text]
        ranked = [r[0] for r in rows]
        want = sorted((s for s in sweeps if {64: "64 B", 1024: "1 KiB"}[s["message_size"]]
                       == size_text), key=lambda s: -(s["capacity_rate"] or -1))
        assert ranked == [s["mechanism"] for s in want]
        for r, s in zip(rows, want):
            assert (r[3] == "none") == (s["capacity_rate"] is None)
    for size in (64, 1024):
        fig = figure_html(page, f"load-{size}")
        assert fig is not None
        panels = [set(re.findall(r'data-series="([^"]+)"', svg)) for svg in svgs(fig)]
        assert len(panels) == 2 and all(1 <= len(p) <= multiples.MAX_SERIES for p in panels)
        # The capacity point is ringed for the sweeps that have one.
        for s in sweeps:
            if s["message_size"] == size:
                ringed = f"data-capacity-{s['mechanism']}-" in fig
                assert ringed == (s["capacity_rate"] is not None), s
        texts = [p[4] for p in panel_points(page, f"load-{size}")]
        assert texts and all("offered" in t and "echoed" in t and "p99" in t for t in texts)
        # Each curve starts at its unloaded figure, in both panels.
        here = [s for s in sweeps if s["message_size"] == size]
        assert sum(", unloaded: offered" in t for t in texts) == 2 * len(here)


def test_the_sweep_file_keeps_the_cross_field_rules():
    """A calibrated sweep's rows are round trips: floor_ratio is p50 over the
    floor, as for latency (the validator once held them to bandwidth)."""
    import subprocess
    from reportutil import ROOT
    proc = subprocess.run(["/usr/bin/python3", str(ROOT / "tests/tools/validate_result.py"),
                           str(ROOT / "docs/result.schema.json"), str(LOAD)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(LOAD.read_text())
    assert doc["ipcbench"]["calibration"] and any("floor_ratio" in e for e in doc["benchmarks"])
