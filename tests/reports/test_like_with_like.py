"""compare, merge (and so the CI gate) compare like with like.

A case in both files is paired only when every setting that changes what
its figures mean agrees (cpus, verify, engine, rate, window where it
applies, the async throughput in-flight limits); otherwise it is listed as
not compared, one line per case, and is neither improved nor regressed.
Files whose schema versions give real_time different meanings (1 vs 2) are
refused with one line and exit 2.

The version-1 tests run scripts/compare on the host-crossing run (sync and
async cases, tests/reports/data/hostcrossing.json) with its settings
changed. The version-2 tests build version-2 files from it
(reportutil.as_v2) and run the tool in this process against a schema that
accepts version 2 (the v2_schema fixture: docs/result.schema.json itself
once it describes version 2, else a copy with the two changes version 2
needs, reportutil.schema_accepting_v2)."""

import copy
import json
import re

import pytest

from reportutil import (HOSTCROSSING, IN_FLIGHT_MESSAGES, as_v2, doctor, entries, load,
                        open_loop, run_script, save, schema_accepting_v2, set_fields)

from ipcbench_report import cli, compare, model

ASYNC_CASES = [f"{m}/async/{p}/{s} (cross-cpu)" for m in ("tcp", "udp", "zmq-tcp")
               for p in ("latency", "throughput") for s in ("64 B", "4 KiB")]
ASYNC_LATENCY = [c for c in ASYNC_CASES if "/latency/" in c]
ASYNC_THROUGHPUT = [c for c in ASYNC_CASES if "/throughput/" in c]
ALL_CASES = ASYNC_CASES + [c.replace("/async/", "/sync/") for c in ASYNC_CASES]
CHANGE = ("real_time changed meaning in version 2 (latency rows: mean round trip; "
          "throughput rows: ns per delivered message)")


def base_doc():
    return load(HOSTCROSSING)


def not_compared_lines(text):
    """{case: what} of every 'CASE: not compared: ...' line."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\S+ \S+ \(cross-cpu\)): (not compared: .*)$", line)
        if m:
            assert m.group(1) not in out, f"{m.group(1)} listed twice"
            out[m.group(1)] = m.group(2)
    return out


def compare_files(tmp_path, base, new, *args):
    return run_script("compare", save(base, tmp_path / "base.json"),
                      save(new, tmp_path / "new.json"), *args)


def only_async(doc, factor):
    """doc with the async cases' figures scaled like doctor() (a regression
    there when factor > 1), the sync ones unchanged."""
    worse = doctor(doc, factor)
    doc = copy.deepcopy(doc)
    doc["benchmarks"] = [w if w["mode"] == "async" else e
                         for e, w in zip(doc["benchmarks"], worse["benchmarks"])]
    return doc


# --- version 1: settings from the rows and from ipcbench.configuration ----------

def test_same_settings_compare_as_before(tmp_path):
    proc = compare_files(tmp_path, base_doc(), base_doc())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not compared" not in proc.stdout and "Result: no regression." in proc.stdout
    assert "24 case(s) compared" in proc.stdout
    proc = compare_files(tmp_path, base_doc(), doctor(base_doc(), 1.3))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "not compared" not in proc.stdout
    assert "tcp/async/latency/64 B (cross-cpu)" in proc.stdout.split("Result: REGRESSION:")[1]


def test_window_mismatch_is_reported_not_compared(tmp_path):
    """--window 1 against 16: every async case differs (version 1: the
    closed loop's window and throughput's acknowledgement window); their
    30% regression is not judged, the sync cases are compared as usual."""
    new = set_fields(only_async(base_doc(), 1.3), "async", config={"window": 1}, window=1)
    out = tmp_path / "diff"
    proc = compare_files(tmp_path, base_doc(), new, "-o", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = not_compared_lines(proc.stdout)
    assert lines == {c: "not compared: window 16 (base) vs 1 (new)" for c in ASYNC_CASES}
    assert "pipe/async" not in proc.stdout and "REGRESSED" not in proc.stdout
    assert ("12 case(s) compared: 0 regressed, 0 improved, 12 unchanged; 0 only in base, "
            "0 only in new; 12 not compared (measured under different settings: window)."
            in proc.stdout)
    assert "Result: no regression." in proc.stdout
    md = (out / "compare.md").read_text()
    html = (out / "compare.html").read_text()
    for case in ASYNC_CASES:
        assert f"- `{case}`: **not compared: window 16 (base) vs 1 (new)**" in md
        assert f"<code>{case}</code>: <strong>not compared: window 16 (base) vs 1 (new)" in html
        assert f"| `{case}` |" not in md  # not in the table of compared metrics


def test_rate_mismatch_is_reported_not_compared(tmp_path):
    """A closed loop against an open loop: the async latency cases differ in
    rate; async throughput has no rate and is still compared."""
    proc = compare_files(tmp_path, base_doc(), open_loop(base_doc(), 20000))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not_compared_lines(proc.stdout) == {
        c: "not compared: rate closed loop (base) vs 20000 msg/s (new)" for c in ASYNC_LATENCY}
    assert "18 case(s) compared" in proc.stdout


def test_open_loops_at_two_rates_are_not_compared(tmp_path):
    proc = compare_files(tmp_path, open_loop(base_doc(), 20000), open_loop(base_doc(), 50000))
    assert not_compared_lines(proc.stdout) == {
        c: "not compared: rate 20000 msg/s (base) vs 50000 msg/s (new)" for c in ASYNC_LATENCY}


def test_verify_mismatch_from_the_configuration_compares_nothing(tmp_path):
    """Version 1 records verify only in ipcbench.configuration: --verify full
    against header changes every case, so nothing is paired: exit 2, one
    line on stderr, and every case listed once."""
    new = set_fields(doctor(base_doc(), 1.3), config={"verify": "full"})
    proc = compare_files(tmp_path, base_doc(), new)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "ipcbench-report: nothing compared: all 24 case(s) in both files were measured under "
        "different settings (verify); rerun one side with the other's settings"]
    assert not_compared_lines(proc.stdout) == {
        c: "not compared: verify header (base) vs full (new)" for c in ALL_CASES}
    assert "REGRESSED" not in proc.stdout and "no regression" not in proc.stdout
    assert "Result: nothing compared" in proc.stdout
    # the outputs are still written, and say so
    out = tmp_path / "diff"
    proc = compare_files(tmp_path, base_doc(), new, "-o", out)
    assert proc.returncode == 2
    md = (out / "compare.md").read_text()
    assert md.startswith("## ipcbench compare: **nothing compared** (different settings)")
    assert md.count("**not compared: verify header (base) vs full (new)**") == 24
    assert "Nothing compared" in (out / "compare.html").read_text()


def test_mismatch_does_not_hide_a_regression_elsewhere(tmp_path):
    """Mismatched cases are listed; the exit status is the paired cases'."""
    new = set_fields(doctor(base_doc(), 1.3), "async", config={"window": 4}, window=4)
    proc = compare_files(tmp_path, base_doc(), new)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert len(not_compared_lines(proc.stdout)) == 12
    regressed = proc.stdout.split("Result: REGRESSION:")[1]
    assert "tcp/sync/latency/64 B" in regressed and "/async/" not in regressed


def test_cpus_and_several_settings_on_one_line(tmp_path):
    new = set_fields(base_doc(), "sync", "latency", cpus=[1, 0])
    new = set_fields(new, "async", "latency", config={"window": 2, "verify": "full"}, window=2)
    proc = compare_files(tmp_path, base_doc(), new)
    lines = not_compared_lines(proc.stdout)
    assert lines["tcp/sync/latency/64 B (cross-cpu)"] == (
        "not compared: cpus [0, 1] (base) vs [1, 0] (new); verify header (base) vs full (new)")
    assert lines["udp/async/latency/4 KiB (cross-cpu)"] == (
        "not compared: verify header (base) vs full (new); window 16 (base) vs 2 (new)")


def test_a_case_that_now_fails_still_pairs(tmp_path):
    """A failed entry records less (placement unknown, no cpus, no window):
    it is the same case, now failing, not a mismatch."""
    new = base_doc()
    e = entries(new, "async", "latency")[0]
    label = f"{e['mechanism']}/async/latency/{e['message_size']} B (cross-cpu)"
    for k in list(e):
        if (k.endswith("_ns") or k.startswith(("oneway", "floor", "rate")) or "per_msg" in k
                or k in ("histogram", "oneway_histogram", "samples", "messages", "messages_lost",
                         "bytes_per_second", "items_per_second", "window")):
            del e[k]
    e.update(error_occurred=True, error_message="peer died", placement="unknown", cpus=[])
    new["ipcbench"]["failed"] = [{"name": e["name"], "error": "peer died"}]
    proc = compare_files(tmp_path, base_doc(), new)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{label}: now fails (REGRESSED)" in proc.stdout
    assert "not compared" not in proc.stdout


# --- schema versions: 1 and 2 are never paired ------------------------------------

def test_compare_refuses_schema_1_against_2(tmp_path):
    v1 = save(base_doc(), tmp_path / "baseline.json")
    v2 = save(dict(base_doc(), ipcbench=dict(base_doc()["ipcbench"], schema_version=2)),
              tmp_path / "contender.json")
    out = tmp_path / "diff"
    proc = run_script("compare", v1, v2, "-o", out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"ipcbench-report: {v1} has schema_version 1 and {v2} has 2: {CHANGE}; "
        f"rerun {v1} with a suite that writes version 2"]
    assert proc.stdout == "" and not (out / "compare.md").exists()
    proc = run_script("compare", v2, v1)  # either order; the older file is the one to rerun
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"ipcbench-report: {v2} has schema_version 2 and {v1} has 1: {CHANGE}; "
        f"rerun {v1} with a suite that writes version 2"]


def test_merge_refuses_schema_1_with_2(tmp_path, capsys):
    v1 = save(base_doc(), tmp_path / "round-1.json")
    v2 = save(as_v2(), tmp_path / "round-2.json")
    out = tmp_path / "merged.json"
    assert cli.main(["merge", "-o", str(out), str(v1), str(v2)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"ipcbench-report: {v1} has schema_version 1 and {v2} has 2: {CHANGE}; "
        f"rerun {v1} with a suite that writes version 2"]
    assert not out.exists()


def test_meaning_change_between_versions():
    assert model.meaning_change(1, 2) == CHANGE == model.meaning_change(2, 1)
    assert model.meaning_change(1, 1) is None and model.meaning_change(2, 2) is None


# --- merge: only one experiment is pooled ------------------------------------------

def test_merge_refuses_a_case_under_different_settings(tmp_path, capsys):
    a = save(base_doc(), tmp_path / "a.json")
    b = save(set_fields(base_doc(), "async", config={"window": 1}, window=1), tmp_path / "b.json")
    out = tmp_path / "merged.json"
    assert cli.main(["merge", "-o", str(out), str(a), str(b)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"ipcbench-report: {b}: tcp/async/latency/64 B (cross-cpu): not merged: window 16 "
        f"({a}) vs 1 ({b}); pooling the two would mix two experiments (11 more case(s) differ)"]
    assert not out.exists()
    assert cli.main(["merge", "-o", str(out), str(a), str(a)]) == 0  # same settings: pooled


# --- version 2: the settings on every row ------------------------------------------

@pytest.fixture
def v2_schema(tmp_path, monkeypatch):
    """The result schema, accepting version 2: docs/result.schema.json when it
    already does, else a copy with the changes version 2 needs (see
    reportutil.schema_accepting_v2), put in model.SCHEMA_PATH's place."""
    schema, changes = schema_accepting_v2(json.loads(model.SCHEMA_PATH.read_text()))
    if changes:
        path = tmp_path / "result.schema.v2.json"
        path.write_text(json.dumps(schema))
        monkeypatch.setattr(model, "SCHEMA_PATH", path)
    return changes


def run_compare(capsys, tmp_path, base, new):
    code = cli.main(["compare", str(save(base, tmp_path / "base.json")),
                     str(save(new, tmp_path / "new.json"))])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_v2_single_file_is_read(v2_schema, tmp_path):
    run = model.load(save(as_v2(), tmp_path / "v2.json"))
    assert run.schema_version == 2
    case = run.cases[model.CaseKey("tcp", "async", "throughput", 64, "cross-cpu")]
    assert run.settings(case) == {
        "cpus": [0, 1], "verify": "header", "engine": "default",
        "in_flight_limit_messages": IN_FLIGHT_MESSAGES, "in_flight_limit_bytes": 65536}
    closed = run.cases[model.CaseKey("tcp", "async", "latency", 64, "cross-cpu")]
    assert run.settings(closed)["window"] == 16 and run.settings(closed)["rate"] is None
    assert cli.main(["report", str(tmp_path / "v2.json"), "-o", str(tmp_path / "out")]) == 0


def test_v2_same_settings_compare_as_before(v2_schema, tmp_path, capsys):
    code, out, _ = run_compare(capsys, tmp_path, as_v2(), as_v2())
    assert code == 0 and "Result: no regression." in out and "not compared" not in out
    code, out, _ = run_compare(capsys, tmp_path, as_v2(), doctor(as_v2(), 1.3))
    assert code == 1 and "Result: REGRESSION" in out and "not compared" not in out


def test_v2_window_and_open_loop(v2_schema, tmp_path, capsys):
    closed_1 = set_fields(as_v2(), "async", "latency", config={"window": 1}, window=1)
    code, out, _ = run_compare(capsys, tmp_path, as_v2(), closed_1)
    assert code == 0
    assert not_compared_lines(out) == {c: "not compared: window 16 (base) vs 1 (new)"
                                       for c in ASYNC_LATENCY}
    # the open loop has no window (null): only the rate differs
    code, out, _ = run_compare(capsys, tmp_path, as_v2(), open_loop(as_v2(), 20000))
    assert not_compared_lines(out) == {
        c: "not compared: rate closed loop (base) vs 20000 msg/s (new)" for c in ASYNC_LATENCY}
    # two open loops at one rate are the same experiment, whatever --window was
    code, out, _ = run_compare(capsys, tmp_path, open_loop(as_v2()),
                               set_fields(open_loop(as_v2()), config={"window": 1}))
    assert code == 0 and "not compared" not in out


def test_v2_in_flight_limits(v2_schema, tmp_path, capsys):
    new = set_fields(as_v2(), "async", "throughput", in_flight_limit_messages=64,
                     in_flight_limit_bytes=1 << 20)
    code, out, _ = run_compare(capsys, tmp_path, as_v2(), new)
    assert code == 0
    assert not_compared_lines(out) == {
        c: (f"not compared: in_flight_limit_messages {IN_FLIGHT_MESSAGES} (base) vs 64 (new); "
            "in_flight_limit_bytes 64 KiB (base) vs 1 MiB (new)") for c in ASYNC_THROUGHPUT}


def test_v2_failed_case_without_limits_still_pairs(v2_schema, tmp_path, capsys):
    """The in-flight limits are the case's own (the row's), never the
    configuration's requested cap: a failed async throughput row has none,
    and is the same case, now failing."""
    new = set_fields(as_v2(), config={"in_flight_limit_bytes": 8 << 20})
    e = entries(new, "async", "throughput")[0]
    label = f"{e['mechanism']}/async/throughput/{e['message_size']} B (cross-cpu)"
    for k in list(e):
        if (k.endswith("_ns") or k.startswith(("in_flight", "floor")) or "per_msg" in k
                or k in ("messages", "messages_lost", "bytes_per_second", "items_per_second")):
            del e[k]
    e.update(error_occurred=True, error_message="peer died", placement="unknown", cpus=[])
    new["ipcbench"]["failed"] = [{"name": e["name"], "error": "peer died"}]
    code, out, _ = run_compare(capsys, tmp_path, as_v2(), new)
    assert code == 1, out
    assert f"{label}: now fails (REGRESSED)" in out and "not compared" not in out


def test_v2_row_verify_and_engine(v2_schema, tmp_path, capsys):
    """verify on the row wins over the configuration; an engine not written
    is the default one, poll, so rows that say poll are the same cases."""
    new = as_v2()
    for e in entries(new, "sync", "throughput"):
        if e["mechanism"] == "udp":
            e["verify"] = "full"
    for e in entries(new, "async"):
        e["engine"] = "poll"
    code, out, _ = run_compare(capsys, tmp_path, as_v2(), new)
    assert code == 0
    assert not_compared_lines(out) == {
        f"udp/sync/throughput/{s} (cross-cpu)": "not compared: verify header (base) vs full (new)"
        for s in ("64 B", "4 KiB")}


def test_v2_another_engine_is_another_case(v2_schema, tmp_path, capsys):
    """A case on io_uring is not the poll case under other settings but
    another case (one file may hold both): never paired, never pooled."""
    other = set_fields(as_v2(), "async", "throughput", engine="io_uring")
    code, out, _ = run_compare(capsys, tmp_path, as_v2(), other)
    assert code == 0
    assert not_compared_lines(out) == {}
    n = len(ASYNC_THROUGHPUT)
    assert f"{n} only in base, {n} only in new" in out
    both = as_v2()
    both["benchmarks"] += [dict(e, engine="io_uring") for e in entries(as_v2(), "async")]
    run = model.load(save(both, tmp_path / "both.json"))
    engines = {k.engine for k in run.cases if k.mode == "async"}
    assert engines == {"default", "io_uring"}
    assert all(len(c.iterations) <= 1 for c in run.cases.values())


def test_v2_merge_pools_same_settings(v2_schema, tmp_path):
    a = save(as_v2(), tmp_path / "a.json")
    b = save(doctor(as_v2(), 1.1), tmp_path / "b.json")
    out = tmp_path / "merged.json"
    assert cli.main(["merge", "-o", str(out), str(a), str(b)]) == 0
    run = model.load(out)
    assert run.schema_version == 2
    case = run.cases[model.CaseKey("tcp", "async", "throughput", 64, "cross-cpu")]
    assert case.repetitions == 2
    assert run.settings(case)["in_flight_limit_messages"] == IN_FLIGHT_MESSAGES


def test_comparison_lists_mismatches_for_every_output():
    """The Comparison object the outputs are rendered from (console,
    Markdown, HTML) carries the mismatches and the exit status rule."""
    base = model.load(HOSTCROSSING)
    new = copy.copy(base)
    new.raw = set_fields(base.raw, config={"verify": "full"})
    result = compare.compare_runs(base, new)
    assert len(result.mismatched) == 24 and result.paired == 0
    assert result.nothing_paired and result.exit_code == 2
    assert result.mismatched_settings() == ["verify"]
