"""The model: loading, validation order, case grouping, labels."""

import pytest

from reportutil import DATA, add_calibration, doctor, load, save

from ipcbench_report import model


def test_golden_all_mechanisms_loads_into_cases():
    run = model.load(DATA / "all-mechanisms.json")
    assert run.host["hostname"]
    assert len(run.mechanisms()) == 15
    key = model.CaseKey("pipe", "sync", "latency", 64, "cross-cpu")
    case = run.cases[key]
    assert case.ok and case.repetitions == 1
    assert case.value("p50_ns") <= case.value("p99_ns")
    hist = case.histogram()
    assert hist[0][0] == 0 and hist[-1][0] == 100
    skipped = [c for c in run.cases.values() if c.status == "skipped"]
    assert skipped and all("exceeds" in c.message for c in skipped)


def test_repetitions_use_the_median_aggregate():
    run = model.load(DATA / "reps5.json")
    case = run.cases[model.CaseKey("pipe", "sync", "latency", 64, "cross-cpu")]
    assert case.repetitions == 5
    assert case.value("p50_ns") == case.aggregates["median"]["p50_ns"]
    assert len(case.samples("p50_ns")) == 5
    assert case.cv("real_time") is not None


def test_median_of_iterations_without_aggregates(tmp_path):
    doc = load(DATA / "reps5.json")
    doc["benchmarks"] = [e for e in doc["benchmarks"] if e["run_type"] == "iteration"]
    run = model.load(save(doc, tmp_path / "noagg.json"))
    case = run.cases[model.CaseKey("pipe", "sync", "latency", 64, "cross-cpu")]
    values = sorted(case.samples("p50_ns"))
    assert case.value("p50_ns") == values[2]


@pytest.mark.parametrize("text,expect", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not an ipcbench result file"),
    ('{"context": {}, "benchmarks": []}', "plain Google Benchmark file"),
    ('{"a": NaN}', "not valid JSON"),
])
def test_refuses_non_results(tmp_path, text, expect):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(model.InputError) as err:
        model.load(path)
    assert expect in str(err.value) and "\n" not in str(err.value)


def test_refuses_newer_schema_version(tmp_path):
    doc = load(DATA / "all-mechanisms.json")
    doc["ipcbench"]["schema_version"] = model.SUPPORTED_SCHEMA_VERSION + 1
    with pytest.raises(model.InputError, match=r"schema_version 3 is newer than this report "
                                               r"tool supports \(2\)"):
        model.load(save(doc, tmp_path / "v3.json"))


def test_refuses_schema_violation_with_location(tmp_path):
    doc = load(DATA / "all-mechanisms.json")
    del doc["benchmarks"][0]["p50_ns"]
    with pytest.raises(model.InputError, match=r"result schema at \$\.benchmarks\[0\]"):
        model.load(save(doc, tmp_path / "bad.json"))


def test_incomplete_needs_the_flag():
    with pytest.raises(model.InputError, match="--allow-incomplete"):
        model.load(DATA / "interrupted.json")
    run = model.load(DATA / "interrupted.json", allow_incomplete=True)
    assert not run.complete
    assert any(c.status == "failed" for c in run.cases.values())


def test_labels_use_host_then_file_name(tmp_path):
    doc = load(DATA / "all-mechanisms.json")
    a = save(doc, tmp_path / "a.json")
    b = save(doctor(doc), tmp_path / "b.json")
    other = dict(doc, ipcbench=dict(doc["ipcbench"], host=dict(doc["ipcbench"]["host"],
                                                              hostname="box2")))
    c = save(other, tmp_path / "c.json")
    runs = model.load_all([a, b, c])
    host = doc["ipcbench"]["host"]["hostname"]
    assert [r.label for r in runs] == [f"{host} · a.json", f"{host} · b.json", "box2"]


def test_calibration_floor_ratio(tmp_path):
    """Without per-case floor fields, p50 over the payload round trip
    calibrated on the case's own placement; the cache-line round trip for a
    size the calibration did not measure."""
    doc = add_calibration(load(DATA / "all-mechanisms.json"), sizes=[64, 1024])
    for e in doc["benchmarks"]:
        for k in ("floor", "floor_value", "floor_source", "floor_ratio", "floor_note"):
            e.pop(k, None)
    run = model.load(save(doc, tmp_path / "cal.json"))
    case = run.cases[model.CaseKey("pipe", "sync", "latency", 64, "cross-cpu")]
    assert run.floor_ratio(case) == pytest.approx(case.value("p50_ns") / 198.0)
    assert run.latency_floor_ns(16384) == 181.0  # falls back to the cache-line floor
    assert run.latency_floor_ns(64, "same-cpu") is None  # not calibrated there
