"""A load sweep's result (run --load-sweep) in the report tool: every part
of a sweep is its own case, so the steps are never taken for repetitions
of one case, and compare pairs the same step across runs."""

import json

from reportutil import DATA, doctor, load, run_script, save

from ipcbench_report import model

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
    assert keys == {"load/peak", "load/unloaded"} | steps and len(steps) >= 5
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
