"""docs/result.schema.json: the calibration, floor, sanity-gate and stability
fields are accepted when typed as the contract says and refused otherwise,
and files without them (every golden file) stay valid."""

import copy
import subprocess
import sys

import pytest

from reportutil import (DATA, ROOT, add_calibration, add_placement, case_entries, flag,
                        load, run_script, save, set_cv)

from ipcbench_report import model

VALIDATE = ROOT / "tests" / "tools" / "validate_result.py"
SCHEMA = ROOT / "docs" / "result.schema.json"


def errors(doc):
    """Every schema error of a document, as 'path: message' strings."""
    validator = model._validator(model.SCHEMA_PATH)
    return [f"{model._json_path(e.absolute_path)}: {e.message}"
            for e in validator.iter_errors(doc)]


def full_doc():
    """reps5 as a current suite writes it: two placements, calibration per
    placement, floors on every case, one flagged case, cv on two cases."""
    doc = add_placement(load(DATA / "reps5.json"), "same-cpu", [0, 0], 0.5)
    doc = add_calibration(doc)
    flag(doc, "shm-spin", "latency", 64, "round trip 40 ns is below the cache-line floor "
         "181 ns", placement="cross-cpu")
    set_cv(doc, "pipe", "latency", 64, 0.08, placement="cross-cpu")
    set_cv(doc, "pipe", "throughput", 64, 0.02, placement="cross-cpu")
    return doc


def first(doc, **match):
    return next(e for e in doc["benchmarks"] if all(e.get(k) == v for k, v in match.items()))


@pytest.mark.parametrize("name", ["all-mechanisms.json", "reps5.json", "interrupted.json"])
def test_golden_files_stay_valid(name):
    assert errors(load(DATA / name)) == []


def test_full_new_document_is_valid(tmp_path):
    doc = full_doc()
    assert errors(doc) == []
    proc = subprocess.run([sys.executable, str(VALIDATE), str(SCHEMA),
                           str(save(doc, tmp_path / "full.json"))],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_optional_shapes_are_valid():
    doc = full_doc()
    # unpinned: cpus as read back, or none
    e = copy.deepcopy(first(doc, run_type="iteration", placement="cross-cpu"))
    e.update(placement="unpinned", cpus=[])
    doc["benchmarks"].append(e)
    doc["ipcbench"]["calibration"]["placements"]["unpinned"] = dict(
        doc["ipcbench"]["calibration"]["placements"]["cross-cpu"], cpus=[])
    assert errors(doc) == []
    # calibration skipped
    doc = full_doc()
    doc["ipcbench"]["configuration"]["calibration"] = False
    doc["ipcbench"]["calibration"] = None
    doc["ipcbench"]["calibration_note"] = "no calibration (--no-calibration)"
    for e in doc["benchmarks"]:
        if "floor" in e:
            e.update(floor=None, floor_value=None, floor_ratio=None,
                     floor_note="no calibration (--no-calibration)")
    assert errors(doc) == []


def _mutate(doc, what):
    """Applies one wrong change to a valid document."""
    lat = first(doc, run_type="iteration", pattern="latency", placement="cross-cpu",
                mechanism="pipe")
    tput = first(doc, run_type="iteration", pattern="throughput", placement="cross-cpu",
                 mechanism="pipe")
    meta, cal = doc["ipcbench"], doc["ipcbench"]["calibration"]
    cross = cal["placements"]["cross-cpu"]
    if what == "floor banana":
        lat["floor"] = "banana"
    elif what == "placement sideways":
        lat["placement"] = "sideways"
    elif what == "floor_ratio as text":
        lat["floor_ratio"] = "1.4"
    elif what == "floor_value negative":
        lat["floor_value"] = -5.0
    elif what == "named floor without its figure":
        del lat["floor_value"]
    elif what == "named floor without a ratio":
        del lat["floor_ratio"]
    elif what == "no floor without a note":
        lat.update(floor=None, floor_value=None, floor_ratio=None)
        lat.pop("floor_note", None)
    elif what == "no floor but a ratio":
        lat.update(floor=None, floor_value=None, floor_ratio=2.0, floor_note="none")
    elif what == "latency against a bandwidth floor":
        lat["floor"] = "memcpy"
    elif what == "throughput against a round-trip floor":
        tput["floor"] = "futex_rtt"
    elif what == "cv_metric unknown":
        lat.update(cv=0.01, cv_metric="p99_ns", unstable=False)
    elif what == "throughput cv of p50":
        tput.update(cv=0.01, cv_metric="p50_ns", unstable=False)
    elif what == "cv negative":
        lat.update(cv=-0.1, cv_metric="p50_ns", unstable=False)
    elif what == "cv without unstable":
        lat.update(cv=0.01, cv_metric="p50_ns")
        lat.pop("unstable", None)
    elif what == "unstable as text":
        lat.update(cv=0.08, cv_metric="p50_ns", unstable="yes")
    elif what == "measurement_error not text":
        lat["measurement_error"] = True
    elif what == "measurement_error empty":
        lat["measurement_error"] = ""
    elif what == "measurement_error on a skipped entry":
        lat.update(skipped=True, skip_message="too big", measurement_error="x")
    elif what == "cross-cpu with one cpu":
        lat["cpus"] = [0]
    elif what == "unpinned with one cpu":
        lat.update(placement="unpinned", cpus=[1])
    elif what == "configuration placements sideways":
        meta["configuration"]["placements"] = ["sideways"]
    elif what == "configuration placements repeated":
        meta["configuration"]["placements"] = ["cross-cpu", "cross-cpu"]
    elif what == "configuration calibration as text":
        meta["configuration"]["calibration"] = "yes"
    elif what == "no-calibration with figures":
        meta["configuration"]["calibration"] = False
    elif what == "calibration null without a note":
        meta["calibration"] = None
        meta.pop("calibration_note", None)
        meta["configuration"]["calibration"] = False
    elif what == "calibration placement sideways":
        cal["placements"]["sideways"] = copy.deepcopy(cross)
    elif what == "calibration without placements":
        del cal["placements"]
    elif what == "harness_ns as text":
        cal["harness_ns"] = "21 ns"
    elif what == "payload size key not a number":
        cross["payload_rtt_ns"]["abc"] = 10.0
    elif what == "payload figure zero":
        cross["payload_rtt_ns"]["64"] = 0
    elif what == "same-cpu with a cache-line figure":
        cal["placements"]["same-cpu"]["cache_line_rtt_ns"] = 120.0
    elif what == "same-cpu with cross-core copy":
        cal["placements"]["same-cpu"]["cross_core_copy_bytes_per_second"] = {"64": 1e9}
    elif what == "futex figure null":
        cross["futex_rtt_ns"] = None
    elif what == "notes not strings":
        cross["notes"] = [1]
    elif what == "calibration placement missing a key":
        del cross["memcpy_bytes_per_second"]
    elif what == "flagged without reason":
        meta["flagged"] = [{"name": "x/sync/latency/64/manual_time"}]
    elif what == "flagged not a list":
        meta["flagged"] = {"name": "x", "reason": "y"}
    elif what == "floor_source unknown":
        lat["floor_source"] = "guessed"
    elif what == "floor_source without a floor":
        for k in ("floor", "floor_value", "floor_ratio", "floor_note"):
            lat.pop(k, None)
        lat["floor_source"] = "calibration"
    elif what == "flat calibration":
        meta["calibration"] = {"cache_line_rtt_ns": 140.0, "payload_rtt_ns": {"64": 150.0}}
    else:
        raise AssertionError(what)
    return doc


WRONG = [
    "floor banana", "placement sideways", "floor_ratio as text", "floor_value negative",
    "named floor without its figure", "named floor without a ratio",
    "no floor without a note", "no floor but a ratio", "latency against a bandwidth floor",
    "throughput against a round-trip floor", "cv_metric unknown", "throughput cv of p50",
    "cv negative", "cv without unstable", "unstable as text", "measurement_error not text",
    "measurement_error empty", "measurement_error on a skipped entry",
    "cross-cpu with one cpu", "unpinned with one cpu", "configuration placements sideways",
    "configuration placements repeated", "configuration calibration as text",
    "no-calibration with figures", "calibration null without a note",
    "calibration placement sideways", "calibration without placements", "harness_ns as text",
    "payload size key not a number", "payload figure zero",
    "same-cpu with a cache-line figure", "same-cpu with cross-core copy", "futex figure null",
    "notes not strings", "calibration placement missing a key", "flagged without reason",
    "flagged not a list", "flat calibration", "floor_source unknown",
    "floor_source without a floor",
]


@pytest.mark.parametrize("what", WRONG)
def test_wrong_types_are_refused(what):
    # full_doc() itself is valid (test_full_new_document_is_valid), so the
    # mutation is what the schema refuses.
    assert errors(_mutate(full_doc(), what)), f"schema accepted: {what}"


@pytest.mark.parametrize("what,where", [
    ("floor banana", "$.benchmarks["),
    ("placement sideways", "$.benchmarks["),
    ("calibration placement sideways", "$.ipcbench.calibration.placements"),
])
def test_report_refuses_wrong_types_with_one_line(tmp_path, what, where):
    path = save(_mutate(full_doc(), what), tmp_path / "wrong.json")
    proc = run_script("report", path, "-o", tmp_path / "out")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not match the result schema" in lines[0], proc.stderr
    assert where in lines[0], lines[0]


def test_flat_calibration_is_refused_not_a_crash(tmp_path):
    """The early flat calibration layout is not part of the contract: the
    tool says so in one line instead of failing with a traceback."""
    doc = load(DATA / "all-mechanisms.json")
    doc["ipcbench"]["calibration"] = {"cache_line_rtt_ns": 140.0,
                                      "payload_rtt_ns": {"64": 150.0}}
    proc = run_script("report", save(doc, tmp_path / "flat.json"), "-o", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "$.ipcbench.calibration" in proc.stderr


def test_case_entries_helper_finds_both_placements():
    doc = full_doc()
    assert {e["placement"] for e in case_entries(doc, "pipe", "latency", 64)} == {
        "cross-cpu", "same-cpu"}


def validate(tmp_path, doc, name="doc.json"):
    """Runs tests/tools/validate_result.py (the schema, then the rules
    relating fields) on a document: (exit status, stderr)."""
    proc = subprocess.run([sys.executable, str(VALIDATE), str(SCHEMA),
                           str(save(doc, tmp_path / name))], capture_output=True, text=True)
    return proc.returncode, proc.stderr.strip()


def _relate(doc, what):
    lat = first(doc, run_type="iteration", pattern="latency", placement="cross-cpu",
                mechanism="pipe")
    same = first(doc, run_type="iteration", pattern="latency", placement="same-cpu",
                 mechanism="pipe")
    meta = doc["ipcbench"]
    if what == "unstable but cv 0.02":
        lat.update(cv=0.02, cv_metric="p50_ns", unstable=True)
    elif what == "stable but cv 0.08":
        lat.update(cv=0.08, cv_metric="p50_ns", unstable=False)
    elif what == "same-cpu on two CPUs":
        same["cpus"] = [0, 1]
    elif what == "cross-cpu on one CPU":
        lat["cpus"] = [1, 1]
    elif what == "placement not run":
        meta["configuration"]["placements"] = ["cross-cpu"]
    elif what == "flagged case not listed":
        meta["flagged"] = []
    elif what == "listed case not flagged":
        meta["flagged"].append({"name": lat["run_name"], "reason": "why"})
    elif what == "flagged reason differs":
        meta["flagged"][0]["reason"] = "another reason"
    elif what == "floor_value not the calibration's":
        lat["floor_value"] = lat["floor_value"] * 2
        lat["floor_ratio"] = lat["p50_ns"] / lat["floor_value"]
    elif what == "floor_ratio not p50 / floor":
        lat["floor_ratio"] = lat["floor_ratio"] * 1.5
    elif what == "floor without a calibration figure":
        del meta["calibration"]["placements"]["same-cpu"]
        meta["configuration"]["placements"] = ["cross-cpu", "same-cpu"]
    else:
        raise AssertionError(what)
    return doc


RELATIONS = {
    "unstable but cv 0.02": "unstable", "stable but cv 0.08": "unstable",
    "same-cpu on two CPUs": "cpus", "cross-cpu on one CPU": "cpus",
    "placement not run": "placement", "flagged case not listed": "measurement_error",
    "listed case not flagged": "$.ipcbench.flagged[1]",
    "flagged reason differs": "$.ipcbench.flagged[0].reason",
    "floor_value not the calibration's": "floor_value",
    "floor_ratio not p50 / floor": "floor_ratio",
    "floor without a calibration figure": "has no figure in ipcbench.calibration",
}


def test_validator_accepts_consistent_documents(tmp_path):
    assert validate(tmp_path, full_doc()) == (0, "")
    for name in ("all-mechanisms.json", "reps5.json", "interrupted.json"):
        assert validate(tmp_path, load(DATA / name), name)[0] == 0, name


@pytest.mark.parametrize("what", sorted(RELATIONS))
def test_validator_refuses_inconsistent_fields(tmp_path, what):
    doc = _relate(full_doc(), what)
    assert errors(doc) == [], "the schema alone accepts it: the relation rules refuse it"
    status, err = validate(tmp_path, doc)
    assert status == 1 and len(err.splitlines()) == 1, err
    assert RELATIONS[what] in err, err


def test_real_result_keeps_the_contract(tmp_path, real_result, real_result_reps):
    for path in (real_result, real_result_reps):
        status, err = validate(tmp_path, load(path), path.name)
        assert status == 0, err


def test_real_placements_result_keeps_the_contract(tmp_path, real_result_placements):
    status, err = validate(tmp_path, load(real_result_placements))
    assert status == 0, err
