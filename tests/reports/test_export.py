"""scripts/report export (issue 20 point 3): a result in the formats CI
benchmark trackers read, checked against each format's documented shape
(data/formats/*.schema.json) and against the figures of the result itself:
every measured case once per figure, its value the median over repetitions,
its range or bounds the spread of the repetitions."""

import json

import jsonschema
import pytest

from reportutil import DATA, HOSTCROSSING, as_v2, closed_loop, load, open_loop_v2, run_script, save

from ipcbench_report import model

FORMATS = DATA / "formats"
GAB_LATENCY = "github-action-benchmark-latency.json"
GAB_THROUGHPUT = "github-action-benchmark-throughput.json"


def export(tmp_path, path, fmt, name="out"):
    out = tmp_path / name
    proc = run_script("report", "export", path, "--format", fmt, "-o", out)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def schema(name):
    return json.loads((FORMATS / name).read_text(encoding="utf-8"))


def measured(path):
    """{case name: case} of the file's measured cases, and the run."""
    from ipcbench_report import export as exporter
    run = model.load_all([path])[0]
    return {exporter.case_name(run, c): c for c in exporter.exported_cases(run)[0]}, run


def test_github_action_benchmark_matches_its_shape_and_the_figures(tmp_path):
    path = DATA / "reps5.json"
    out, _ = export(tmp_path, path, "github-action-benchmark")
    smaller = json.loads((out / GAB_LATENCY).read_text())
    bigger = json.loads((out / GAB_THROUGHPUT).read_text())
    shape = schema("github-action-benchmark.schema.json")
    jsonschema.validate(smaller, shape)
    jsonschema.validate(bigger, shape)
    cases, _ = measured(path)
    latency = {n: c for n, c in cases.items() if c.key.pattern == "latency"}
    throughput = {n: c for n, c in cases.items() if c.key.pattern == "throughput"}
    assert latency and throughput
    # One entry per case and figure, none twice, each in the file of its direction.
    assert sorted(e["name"] for e in smaller) == sorted(
        f"{n} {label}" for n in latency for label in ("p50", "p99"))
    assert sorted(e["name"] for e in bigger) == sorted(
        f"{n} {label}" for n in throughput for label in ("msg/s", "bytes/s"))
    fields = {"p50": "p50_ns", "p99": "p99_ns", "msg/s": "items_per_second",
              "bytes/s": "bytes_per_second"}
    units = {"p50": "ns", "p99": "ns", "msg/s": "msg/s", "bytes/s": "B/s"}
    for entry in smaller + bigger:
        name, label = entry["name"].rsplit(" ", 1)
        case = cases[name]
        samples = case.samples(fields[label])
        assert len(samples) == 5
        assert entry["unit"] == units[label]
        assert entry["value"] == pytest.approx(case.value(fields[label]))
        assert min(samples) <= entry["value"] <= max(samples)
        half = float(entry["range"].split(" ", 1)[1])
        assert half == pytest.approx((max(samples) - min(samples)) / 2)
        assert entry["extra"].startswith("5 repetitions")


def test_bencher_matches_the_metric_format_and_the_figures(tmp_path):
    path = DATA / "reps5.json"
    out, _ = export(tmp_path, path, "bencher")
    doc = json.loads((out / "bencher.json").read_text())
    jsonschema.validate(doc, schema("bencher-metric-format.schema.json"))
    cases, _ = measured(path)
    assert sorted(doc) == sorted(cases)
    fields = {"latency": "p50_ns", "latency-p99": "p99_ns", "throughput": "items_per_second",
              "bytes-per-second": "bytes_per_second"}
    for name, measures in doc.items():
        case = cases[name]
        want = (("latency", "latency-p99") if case.key.pattern == "latency"
                else ("throughput", "bytes-per-second"))
        assert tuple(measures) == want
        for measure, metric in measures.items():
            assert set(metric) == {"value", "lower_value", "upper_value"}
            samples = case.samples(fields[measure])
            assert metric["value"] == pytest.approx(case.value(fields[measure]))
            assert metric["lower_value"] == pytest.approx(min(samples))
            assert metric["upper_value"] == pytest.approx(max(samples))
            assert metric["lower_value"] <= metric["value"] <= metric["upper_value"]


def test_one_repetition_has_no_range_and_no_bounds(tmp_path):
    path = DATA / "all-mechanisms.json"
    out, _ = export(tmp_path, path, "github-action-benchmark")
    entries = (json.loads((out / GAB_LATENCY).read_text())
               + json.loads((out / GAB_THROUGHPUT).read_text()))
    assert entries and all("range" not in e and "extra" not in e for e in entries)
    out, _ = export(tmp_path, path, "bencher", name="bmf")
    doc = json.loads((out / "bencher.json").read_text())
    assert doc and all(set(m) == {"value"} for ms in doc.values() for m in ms.values())


def test_failed_and_skipped_cases_are_left_out_and_counted(tmp_path):
    path = DATA / "all-mechanisms.json"
    run = model.load_all([path])[0]
    unmeasured = [c for c in run.case_list(status=None) if not c.ok]
    assert unmeasured, "the fixture has failed or skipped cases"
    out, proc = export(tmp_path, path, "bencher")
    doc = json.loads((out / "bencher.json").read_text())
    names = {"/".join(n.split("/")[:4]) for n in doc}  # mechanism/mode/pattern/size
    for case in unmeasured:
        k = case.key
        assert f"{k.mechanism}/{k.mode}/{k.pattern}/{k.size}" not in names
    assert f"{len(unmeasured)} case(s) failed, skipped or flagged: not exported" in proc.stderr


def test_names_say_the_window_and_the_rate(tmp_path):
    doc = open_loop_v2(closed_loop(as_v2(), 16), 2000, mechanism="udp")
    out, _ = export(tmp_path, save(doc, tmp_path / "async.json"), "bencher")
    names = set(json.loads((out / "bencher.json").read_text()))
    assert "udp/async/latency/64/cross-cpu/rate=2000" in names
    assert "tcp/async/latency/64/cross-cpu/window=16" in names
    assert "tcp/sync/latency/64/cross-cpu" in names
    # Throughput rows carry neither: no window sets them.
    assert "tcp/async/throughput/64/cross-cpu" in names


def test_bad_format_and_bad_input_refused(tmp_path):
    proc = run_script("report", "export", DATA / "reps5.json", "--format", "csv",
                      "-o", tmp_path / "o")
    assert proc.returncode == 2 and "invalid choice: 'csv'" in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    proc = run_script("report", "export", bad, "--format", "bencher", "-o", tmp_path / "o2")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "bad.json" in proc.stderr
    assert not (tmp_path / "o2" / "bencher.json").exists()


def test_placement_is_in_the_name(tmp_path):
    doc = load(HOSTCROSSING)
    out, _ = export(tmp_path, save(doc, tmp_path / "h.json"), "bencher")
    names = json.loads((out / "bencher.json").read_text())
    assert names and all(n.split("/")[4] in ("cross-cpu", "same-cpu", "unpinned") for n in names)
