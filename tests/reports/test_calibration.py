"""Calibration, floors, the sanity gate and stability in every output: the
model, the HTML report, the Markdown summary, the CSV, compare and merge.

The golden files predate these fields, so the tests fabricate them
(reportutil.add_calibration, flag, set_cv, add_placement) exactly as the
schema describes them; the real-binary tests at the end check whatever the
built suite writes today, with or without them."""

import copy
import csv
import io
import json
import re

import pytest

from reportutil import (DATA, add_calibration, add_placement, case_entries, doctor,
                        drawn_data_groups, figure_html, figure_svg, flag, html_table, load,
                        panel_points, run_script,
                        save, set_cv, svgs)
from summaryutil import THROUGHPUT, floor_rows, headings, question, section

from ipcbench_report import cli, model, units

REASON = "round trip 40 ns is below the cache-line floor 181 ns"
CROSS = "cross-cpu"


def single_doc():
    """all-mechanisms (one repetition, cross-cpu) with calibration and
    floors; shm-spin's latency flagged at every size; pipe's latency with
    cv 0.08 at 64 B (unstable) and 0.02 at 1 KiB (stable)."""
    doc = add_calibration(load(DATA / "all-mechanisms.json"))
    for size in (64, 1024, 16384):
        flag(doc, "shm-spin", "latency", size, REASON)
    set_cv(doc, "pipe", "latency", 64, 0.08)
    set_cv(doc, "pipe", "latency", 1024, 0.02)
    return doc


def two_placements_doc():
    """reps5 run under cross-cpu and same-cpu, with calibration and floors."""
    return add_calibration(add_placement(load(DATA / "reps5.json"), "same-cpu", [0, 0], 0.5))


def render(tmp_path, doc, name="r.json", extra=()):
    path = save(doc, tmp_path / name)
    out = tmp_path / f"out-{name}"
    proc = run_script("report", path, "-o", out, *extra)
    assert proc.returncode == 0, proc.stderr
    return {k: (out / f).read_text(encoding="utf-8") for k, f in
            (("html", "report.html"), ("md", "summary.md"), ("csv", "cases.csv"))}


def load_doc(tmp_path, doc, name="m.json"):
    return model.load_all([save(doc, tmp_path / name)])[0]


def key(mech, pattern, size, place=CROSS, mode="sync"):
    return model.CaseKey(mech, mode, pattern, size, place)


# --- model ------------------------------------------------------------------

def test_model_calibration_per_placement(tmp_path):
    run = load_doc(tmp_path, two_placements_doc())
    assert list(run.calibration_placements()) == ["cross-cpu", "same-cpu"]
    assert run.calibration_for("cross-cpu")["cache_line_rtt_ns"] == 181.0
    assert run.calibration_for("same-cpu")["cache_line_rtt_ns"] is None
    assert run.calibration_for("unpinned") is None
    assert run.harness_ns == 21.5 and run.clock_read_ns == 9.1
    assert run.calibrated("cross-cpu", "payload_rtt_ns", 64) == 198.0
    assert run.calibrated("same-cpu", "payload_rtt_ns", 64) is None
    assert run.calibrated("same-cpu", "futex_rtt_ns") == 4100.0
    assert run.configured_placements() == ["cross-cpu", "same-cpu"]


def test_floor_fields_of_the_case_are_the_truth(tmp_path):
    doc = add_calibration(load(DATA / "all-mechanisms.json"))
    # the file's own (odd) figures win over anything the calibration implies
    for e in case_entries(doc, "pipe", "latency", 64):
        e.update(floor="futex_rtt", floor_value=1234.0, floor_ratio=7.5)
    # a case the suite says has no floor gets none, although the calibration
    # has a payload round trip at its size
    for e in case_entries(doc, "tcp", "latency", 64):
        e.update(floor=None, floor_value=None, floor_ratio=None, floor_note="across hosts")
    # a case without the fields (an older file) gets p50 / payload round trip
    for e in case_entries(doc, "udp", "latency", 1024):
        for k in ("floor", "floor_value", "floor_source", "floor_ratio", "floor_note"):
            e.pop(k, None)
    run = load_doc(tmp_path, doc)
    f = run.floor(run.cases[key("pipe", "latency", 64)])
    assert (f.name, f.value, f.ratio, f.origin) == ("futex_rtt", 1234.0, 7.5, "case")
    f = run.floor(run.cases[key("tcp", "latency", 64)])
    assert f.name is None and f.ratio is None and f.note == "across hosts"
    udp = run.cases[key("udp", "latency", 1024)]
    f = run.floor(udp)
    assert f.origin == "computed" and f.name == "payload_rtt"
    assert f.ratio == pytest.approx(udp.value("p50_ns") / run.calibrated(CROSS, "payload_rtt_ns",
                                                                         1024))
    tput = run.cases[key("shm-spin", "throughput", 1024)]
    f = run.floor(tput)
    assert f.name == "cross_core_copy" and f.kind == "throughput" and f.adjacent
    # re-measured before the case: the case's figure, not the calibration's
    assert f.value == pytest.approx(
        1.1 * run.calibrated(CROSS, "cross_core_copy_bytes_per_second", 1024))
    assert f.ratio == pytest.approx(f.value / tput.value("bytes_per_second"))
    assert not run.floor(run.cases[key("shm-futex", "throughput", 1024)]).adjacent


def test_flagged_case_is_not_a_result(tmp_path):
    run = load_doc(tmp_path, single_doc())
    case = run.cases[key("shm-spin", "latency", 64)]
    assert case.status == "flagged" and not case.ok and case.message == REASON
    assert case not in run.case_list() and case in run.flagged_cases()
    assert run.cases[key("shm-spin", "throughput", 64)].ok
    assert len(run.flagged) == 3


def test_flagged_by_the_top_level_list_alone(tmp_path):
    doc = single_doc()
    for e in doc["benchmarks"]:
        e.pop("measurement_error", None)
    run = load_doc(tmp_path, doc)
    case = run.cases[key("shm-spin", "latency", 64)]
    assert case.status == "flagged" and case.message == REASON


def test_stability_from_the_file_and_fallbacks(tmp_path):
    run = load_doc(tmp_path, single_doc())
    unstable = run.cases[key("pipe", "latency", 64)].stability()
    stable = run.cases[key("pipe", "latency", 1024)].stability()
    assert (unstable.cv, unstable.metric, unstable.unstable, unstable.source) == (
        0.08, "p50_ns", True, "file")
    assert (stable.cv, stable.unstable) == (0.02, False)
    assert run.cases[key("tcp", "latency", 64)].stability() is None  # one repetition
    assert [c.key for c in run.unstable_cases()] == [key("pipe", "latency", 64)]
    # a file without the fields: Google Benchmark's cv aggregate of the metric
    reps = model.load(DATA / "reps5.json")
    case = reps.cases[key("pipe", "throughput", 64)]
    st = case.stability()
    assert st.source == "aggregate" and st.metric == "bytes_per_second"
    assert st.cv == case.aggregates["cv"]["bytes_per_second"]
    assert st.unstable == (st.cv > 0.05)


def test_flat_calibration_does_not_crash_the_model(tmp_path):
    """Outside the schema (so load refuses it), but a reader handed one
    without validation still renders: no per-placement figures, said so."""
    from ipcbench_report import html
    doc = load(DATA / "all-mechanisms.json")
    doc["ipcbench"]["calibration"] = {"cache_line_rtt_ns": 140.0,
                                      "payload_rtt_ns": {"64": 150.0}}
    schema = tmp_path / "any.schema.json"
    schema.write_text("{}")
    run = model.load(save(doc, tmp_path / "flat.json"), schema_path=schema)
    run.label = "flat"
    assert run.calibration_placements() == {} and run.calibration_for(CROSS) is None
    assert run.floor_ratio(run.cases[key("pipe", "latency", 64)]) is None
    page = html.render_report([run])
    assert "a layout this report does not know" in page


# --- HTML -------------------------------------------------------------------

def test_calibration_tables_per_placement(tmp_path):
    page = render(tmp_path, two_placements_doc())["html"]
    assert '<section id="calibration">' in page
    cross = re.search(r'id="calibration-cross-cpu">(.*?)</div>', page, flags=re.S).group(1)
    same = re.search(r'id="calibration-same-cpu">(.*?)</div>', page, flags=re.S).group(1)
    for text in ("clock read", "9.10 ns", "harness cost per round trip", "21.5 ns",
                 "181 ns (min 152 ns)", "futex wake-up round trip", "41.3 µs", "0, 1"):
        assert text in cross, text
    sizes = html_table("<table id=\"x\">" + cross.split('class="data calibration-sizes">')[1],
                       "x")
    assert ["64 B", "198 ns", "21.0 GB/s", "1.11 GB/s"] in sizes
    assert ["1 KiB", "318 ns", "21.0 GB/s", "1.20 GB/s"] in sizes
    assert "4.10 µs" in same and "0, 0" in same
    assert "not measured" in same and "spinning floors skipped" in same
    assert "181 ns" not in same
    assert "harness 21.5 ns per round trip" in page  # run context


def floor_points(page, pattern, place):
    """{(mechanism, size): hover text} of a floor figure's points."""
    return {(p[1].split(" [")[0], p[4].split(", ")[1].split(":")[0]): p[4]
            for p in panel_points(page, f"floor-{pattern}-{place}")}


def test_floor_plot_per_placement_uses_the_cases_floors(tmp_path):
    page = render(tmp_path, two_placements_doc())["html"]
    for pattern in ("latency", "throughput"):
        for place in ("cross-cpu", "same-cpu"):
            assert figure_svg(page, f"floor-{pattern}-{place}"), (pattern, place)
    lat, tput = floor_points(page, "latency", "cross-cpu"), floor_points(page, "throughput",
                                                                          "cross-cpu")
    # Each case against the floor that applies to it, named on hover: the
    # spinning one against its own payload round trip, re-measured before it.
    assert "the floor (payload round trip:" in lat[("shm-spin", "64 B")]
    assert "re-measured before the case" in lat[("shm-spin", "64 B")]
    assert "the floor (futex wake-up round trip:" in lat[("pipe", "64 B")]
    assert "re-measured" not in lat[("pipe", "64 B")]
    assert "the floor (memcpy:" in tput[("pipe", "64 B")]  # throughput ratios drawn too
    assert "the floor (cross-core copy:" in tput[("shm-spin", "64 B")]
    # same-cpu: no spinning floors, so no payload round trip or cross-core copy
    same = list(floor_points(page, "latency", "same-cpu").values()) + list(
        floor_points(page, "throughput", "same-cpu").values())
    assert same and not [t for t in same if "payload round trip" in t or "cross-core" in t]
    assert any("futex wake-up round trip" in t for t in same)
    assert any("memcpy" in t for t in same)
    assert ("shm-spin", "64 B") not in floor_points(page, "latency", "same-cpu")
    assert "same-cpu placement: spinning floors do not apply" in page
    for svg in svgs(page):
        assert drawn_data_groups(svg) >= 1
    assert "no calibration data" not in page


def test_case_table_floor_and_ratio_columns(tmp_path):
    doc = single_doc()
    page = render(tmp_path, doc)["html"]
    head = re.search(r'id="cases-table"><thead><tr>(.*?)</tr>', page).group(1)
    headers = re.findall(r">([^<]+)</th>", head)
    assert {"floor", "× floor", "cv"} <= set(headers)
    rows = html_table(page, "cases-table")
    col = {h: i for i, h in enumerate(headers)}
    pipe = next(r for r in rows if r[col["mechanism"]] == "pipe"
                and r[col["pattern"]] == "latency" and r[col["size"]] == "64 B")
    e = case_entries(doc, "pipe", "latency", 64)[0]
    assert pipe[col["floor"]] == "futex wake-up round trip 41.3 µs"
    assert pipe[col["× floor"]] == units.ratio(e["floor_ratio"])
    tput = next(r for r in rows if r[col["mechanism"]] == "shm-futex"
                and r[col["pattern"]] == "throughput" and r[col["size"]] == "1 KiB")
    assert tput[col["floor"]].startswith("cross-core copy ")
    assert not tput[col["floor"]].endswith("(adjacent)")
    assert tput[col["× floor"]].endswith("×")
    spin = next(r for r in rows if r[col["mechanism"]] == "shm-spin"
                and r[col["pattern"]] == "throughput" and r[col["size"]] == "1 KiB")
    assert spin[col["floor"]].startswith("cross-core copy ")
    assert spin[col["floor"]].endswith("(adjacent)")


def test_flagged_case_has_its_section_and_nothing_else(tmp_path):
    page = render(tmp_path, single_doc())["html"]
    flagged = html_table(page, "flagged-table")
    assert len(flagged) == 3
    assert all(r[0].startswith("shm-spin/sync/latency/") and r[2] == REASON for r in flagged)
    assert flagged[0][3].startswith("p50 ")  # the figure, marked as not a result
    rows = html_table(page, "cases-table")
    assert not [r for r in rows if r[0] == "shm-spin" and r[2] == "latency"]
    assert [r for r in rows if r[0] == "shm-spin" and r[2] == "throughput"]
    assert len(rows) == len(model.load_all([DATA / "all-mechanisms.json"])[0].cases) - 3
    for fig in ("latency", "distribution", "cpu"):  # latency only: no shm-spin at all
        svg = figure_svg(page, fig)
        assert svg and drawn_data_groups(svg) >= 1, fig
        assert "shm-spin" not in figure_html(page, fig), fig
    assert not [k for k in floor_points(page, "latency", "cross-cpu") if k[0] == "shm-spin"]
    assert [k for k in floor_points(page, "latency", "cross-cpu") if k[0] == "shm-futex"]
    # its throughput cases are results, drawn as usual
    assert "data-throughput-shm-spin-" in figure_html(page, "throughput")
    assert [k for k in floor_points(page, "throughput", "cross-cpu") if k[0] == "shm-spin"]
    assert "3 flagged as measurement errors" in page
    assert "flagged as measurement errors by the sanity gate" in page  # the warning
    problems = page.split('id="problems"')[1]
    assert REASON not in problems


def test_unstable_marker_only_over_five_percent(tmp_path):
    page = render(tmp_path, single_doc())["html"]
    head = re.search(r'id="cases-table"><thead><tr>(.*?)</tr>', page).group(1)
    col = {h: i for i, h in enumerate(re.findall(r">([^<]+)</th>", head))}
    rows = html_table(page, "cases-table")

    def cv_cell(size):
        return next(r for r in rows if r[0] == "pipe" and r[2] == "latency"
                    and r[3] == size)[col["cv"]]
    assert cv_cell("64 B") == "8.0% ⚠ unstable"
    assert cv_cell("1 KiB") == "2.0%"
    assert sum("unstable" in r[col["cv"]] for r in rows) == 1
    body = page.split('id="cases-table"')[1].split("</table>")[0]
    assert body.count('<tr class="unstable">') == 1
    assert "1 case(s) unstable" in page


def test_calibration_skipped_is_said(tmp_path):
    doc = add_calibration(load(DATA / "all-mechanisms.json"))
    note = "no calibration (--no-calibration)"
    doc["ipcbench"].update(calibration=None, calibration_note=note)
    doc["ipcbench"]["configuration"]["calibration"] = False
    for e in doc["benchmarks"]:
        if "floor" in e:
            e.update(floor=None, floor_value=None, floor_ratio=None, floor_note=note)
    out = render(tmp_path, doc)
    measured = len(model.load(DATA / "all-mechanisms.json").case_list())
    assert f"calibration was skipped: {note}" in out["html"]
    assert f"No floor for {measured} case(s): {note}" in out["html"]
    assert 'id="fig-floor' not in out["html"]
    assert f"calibration skipped: {note}" in out["md"]


# --- Markdown ---------------------------------------------------------------

def _md_rows(md):
    """(head, {label: {header: cell}}) of the summary's round-trip table."""
    return question(md)


def test_markdown_floor_unstable_flagged_harness(tmp_path):
    doc = single_doc()
    other = "throughput 1.2 TB/s is above the memcpy ceiling"
    flag(doc, "tcp", "throughput", 1024, other)
    md = render(tmp_path, doc)["md"]
    # the floor ratios: collapsed, one row per mechanism, a cell per size
    floors = floor_rows(md)
    assert "<details><summary>Against the calibration floor</summary>\n\n|" in md
    lat = case_entries(doc, "pipe", "latency", 64)[0]["floor_ratio"]
    tput = case_entries(doc, "pipe", "throughput", 64)[0]["floor_ratio"]
    assert floors["`pipe`"]["64 B"] == f"{units.ratio(lat)} / {units.ratio(tput)}"
    assert set(floors["`pipe`"]) == {"mechanism", "64 B", "1 KiB", "16 KiB"}
    _head, rows = _md_rows(md)
    _head, tput_rows = question(md, THROUGHPUT)
    assert rows["`pipe`"]["64 B"].endswith(" ⚠")
    assert "⚠" not in rows["`pipe`"]["1 KiB"]
    assert sum("⚠" in c for t in (rows, tput_rows) for r in t.values() for c in r.values()) == 1
    assert "⚠: unstable (cv across repetitions over 5%)." in md
    # a flagged case is never a figure: shm-spin's latency (flagged at every
    # size) has no round-trip row; a flagged cell in a ranked row says so
    assert "`shm-spin`" not in rows
    assert tput_rows["`shm-spin`"]["64 B"] not in ("flagged", "–")
    assert tput_rows["`tcp`"]["1 KiB"] == "flagged" and tput_rows["`tcp`"]["64 B"] != "flagged"
    assert "flagged: a measurement error (listed at the end), not a result." in md
    assert headings(md)[-1] == "Skipped and flagged cases"
    items = [x for x in section(md, "Skipped and flagged cases").splitlines()
             if "flagged as measurement errors" in x]
    assert items == [  # in the suite's order, each reason once
        "- **flagged as measurement errors** (not results, left out of the tables): "
        f"`tcp` sync · throughput 1 KiB: {other}",
        "- **flagged as measurement errors** (not results, left out of the tables): "
        f"`shm-spin` sync · latency 64 B, 1 KiB, 16 KiB: {REASON}"]
    assert "harness cost 21.5 ns per round trip" in md


def test_markdown_without_floors_has_no_floor_block(tmp_path):
    md = render(tmp_path, load(DATA / "all-mechanisms.json"))["md"]
    assert "Against the calibration floor" not in md and "<details>" not in md


def test_markdown_rows_per_placement(tmp_path):
    md = render(tmp_path, two_placements_doc())["md"]
    _head, rows = _md_rows(md)
    assert {"`pipe` cross-cpu", "`pipe` same-cpu", "`shm-spin` same-cpu"} <= set(rows)
    assert "same-cpu: futex round trip 4.10 µs" in md


# --- CSV --------------------------------------------------------------------

def test_csv_judgement_columns(tmp_path):
    text = render(tmp_path, single_doc())["csv"]
    reader = csv.DictReader(io.StringIO(text))
    for column in ("floor", "floor_value", "floor_source", "floor_ratio", "floor_note", "cv",
                   "cv_metric",
                   "unstable", "measurement_error"):
        assert column in reader.fieldnames, column
    rows = list(reader)

    def row(mech, pattern, size):
        return next(r for r in rows if r["mechanism"] == mech and r["pattern"] == pattern
                    and r["message_size"] == str(size))
    pipe = row("pipe", "latency", 64)
    assert (pipe["floor"], float(pipe["floor_value"]), pipe["cv"], pipe["cv_metric"],
            pipe["unstable"], pipe["measurement_error"], pipe["status"]) == (
        "futex_rtt", 41300.0, "0.08", "p50_ns", "true", "", "ok")
    assert float(pipe["floor_ratio"]) == pytest.approx(float(pipe["p50_ns"]) / 41300.0)
    assert row("pipe", "latency", 1024)["unstable"] == "false"
    assert pipe["floor_source"] == "calibration"
    assert row("shm-spin", "throughput", 64)["floor_source"] == "adjacent"
    assert row("tcp", "latency", 64)["cv"] == "" and row("tcp", "latency", 64)["unstable"] == ""
    spin = row("shm-spin", "latency", 64)
    assert spin["status"] == "flagged" and spin["measurement_error"] == REASON
    skipped = row("posix-mq", "latency", 16384)
    assert skipped["status"] == "skipped" and skipped["floor"] == ""


# --- compare ----------------------------------------------------------------

def test_compare_flagged_is_neither_regression_nor_improvement(tmp_path):
    base = add_calibration(load(DATA / "all-mechanisms.json"))
    new = doctor(base, 1.3)
    flag(new, "shm-spin", "latency", 64, REASON)
    out = tmp_path / "diff"
    proc = run_script("compare", save(base, tmp_path / "b.json"),
                      save(new, tmp_path / "n.json"), "-o", out)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the other cases regressed
    label = "shm-spin/sync/latency/64 B (cross-cpu)"
    verdict = next(x for x in proc.stdout.splitlines() if x.startswith("Result:"))
    assert "pipe/sync/latency/64 B (cross-cpu)" in verdict and label not in verdict
    assert f"{label}: flagged as a measurement error, not compared (new: {REASON})" \
        in proc.stdout
    assert not re.search(rf"^{re.escape(label)}\s+p50", proc.stdout, flags=re.M)
    assert "1 flagged as measurement errors (not compared)" in proc.stdout
    md = (out / "compare.md").read_text()
    assert f"`{label}`: **flagged as a measurement error**" in md
    assert f"| `{label}` |" not in md
    assert 'class="flagged"' in (out / "compare.html").read_text()


def test_compare_flagged_base_is_not_an_improvement(tmp_path):
    base = add_calibration(load(DATA / "all-mechanisms.json"))
    flag(base, "pipe", "latency", 64, REASON)
    new = doctor(copy.deepcopy(base), 1 / 1.3)
    for e in new["benchmarks"]:
        e.pop("measurement_error", None)
    new["ipcbench"]["flagged"] = []
    proc = run_script("compare", save(base, tmp_path / "b.json"), save(new, tmp_path / "n.json"))
    assert proc.returncode == 0, proc.stdout
    assert "pipe/sync/latency/64 B (cross-cpu): flagged as a measurement error" in proc.stdout
    assert not re.search(r"^pipe/sync/latency/64 B \(cross-cpu\)\s+p50", proc.stdout, flags=re.M)
    from ipcbench_report import compare
    runs = model.load_all([tmp_path / "b.json", tmp_path / "n.json"])
    result = compare.compare_runs(*runs)
    assert "pipe/sync/latency/64 B (cross-cpu)" not in result.improved
    assert "pipe/sync/latency/1 KiB (cross-cpu)" in result.improved


# --- merge ------------------------------------------------------------------

def test_merge_unions_flagged_and_drops_per_round_cv(tmp_path):
    a = add_calibration(load(DATA / "reps5.json"))
    set_cv(a, "pipe", "latency", 64, 0.2)
    b = copy.deepcopy(a)
    flag(a, "shm-spin", "latency", 64, REASON)
    flag(b, "pipe", "throughput", 1024, "throughput above the memcpy bandwidth")
    out = tmp_path / "merged.json"
    assert cli.main(["merge", "-o", str(out), str(save(a, tmp_path / "a.json")),
                     str(save(b, tmp_path / "b.json"))]) == 0
    merged = json.loads(out.read_text())
    assert {f["name"] for f in merged["ipcbench"]["flagged"]} == {
        "shm-spin/sync/latency/64/manual_time", "pipe/sync/throughput/1024/manual_time"}
    assert not any("cv" in e or "unstable" in e for e in merged["benchmarks"])
    run = model.load(out)
    st = run.cases[key("pipe", "latency", 64)].stability()
    assert st.source == "samples" and st.metric == "p50_ns"
    assert run.cases[key("shm-spin", "latency", 64)].status == "flagged"
    assert run.cases[key("pipe", "throughput", 1024)].status == "flagged"


# --- the real suite -----------------------------------------------------------

def test_real_run_calibration_shown_when_present(tmp_path, real_result):
    doc = load(real_result)
    page = render(tmp_path, doc)["html"]
    meta = doc["ipcbench"]
    if meta.get("calibration"):
        for place in meta["calibration"]["placements"]:
            assert f'id="calibration-{place}"' in page
        assert "harness cost per round trip" in page
    elif "calibration" in meta:
        assert "calibration was skipped" in page
    else:
        assert "no calibration in this file" in page
    flagged = {f["name"] for f in meta.get("flagged", [])}
    assert len(html_table(page, "flagged-table")) == len(flagged)
    if any("floor" in e for e in doc["benchmarks"]):
        assert "× floor" in page


def test_real_run_two_placements(tmp_path, real_result_placements):
    doc = load(real_result_placements)
    run = model.load(real_result_placements)
    places = {e["placement"] for e in doc["benchmarks"]} - {"unknown"}
    assert places == {"cross-cpu", "same-cpu"}
    for e in doc["benchmarks"]:
        if e["placement"] == "same-cpu":
            assert len(e["cpus"]) == 2 and e["cpus"][0] == e["cpus"][1], e["name"]
        if e["placement"] == "cross-cpu":
            assert len(e["cpus"]) == 2 and e["cpus"][0] != e["cpus"][1], e["name"]
    out = render(tmp_path, doc)
    _head, rows = _md_rows(out["md"])
    assert any(r.endswith("same-cpu") for r in rows) and any(r.endswith("cross-cpu")
                                                             for r in rows)
    if any(e.get("floor_ratio") is not None for e in doc["benchmarks"]):
        assert any(r.endswith("same-cpu") or r.endswith("cross-cpu") for r in floor_rows(
            out["md"]))
    if doc["ipcbench"].get("calibration"):
        for place in places:
            assert run.calibration_for(place) is not None, place
            assert f'id="calibration-{place}"' in out["html"]
    for case in run.case_list():
        if any("cv" in e for e in case.entries):
            assert case.stability().source == "file"
    for case in run.case_list():
        f = run.floor(case)
        if f is not None and f.name and any("floor_source" in e for e in case.entries):
            assert f.measured in ("calibration", "adjacent")
