"""Remote runs ('ipcbench run --remote HOST:PORT' against 'ipcbench serve'):
the schema's remote shape and its rules, local and remote cases kept apart
by the model and by compare, the "Local vs across hosts" view of a report
over a local + remote pair, remote labels in tables, plots and the CSV.

The remote files are derived from a real local run of the host-crossing
mechanisms (tests/reports/data/hostcrossing.json) by remote_fixture.py,
which rewrites the fields as the suite's remote run writes them."""

import copy
import csv
import io
import re
import subprocess
import sys

import pytest

from remote_fixture import ADDRESS, FLOOR_NOTE, ONEWAY_FIELDS, ONEWAY_NOTE, REMOTE_HOST
from reportutil import (HOSTCROSSING, ROOT, doctor, figure_svg, html_table, load, mixed_doc,
                        panel_points, remote_doc, remote_pair, run_script, save)
from summaryutil import FLOORS, ROUND_TRIP, THROUGHPUT, details, floor_rows, question

from ipcbench_report import compare, model, units

VALIDATE = ROOT / "tests" / "tools" / "validate_result.py"
SCHEMA = ROOT / "docs" / "result.schema.json"


def errors(doc):
    validator = model._validator(model.SCHEMA_PATH)
    return [f"{model._json_path(e.absolute_path)}: {e.message}"
            for e in validator.iter_errors(doc)]


def validate(tmp_path, doc, name="doc.json"):
    proc = subprocess.run([sys.executable, str(VALIDATE), str(SCHEMA),
                           str(save(doc, tmp_path / name))], capture_output=True, text=True)
    return proc.returncode, proc.stderr.strip()


def entry(doc, mode="sync", pattern="latency", size=64, mechanism="tcp", run_type="iteration"):
    return next(e for e in doc["benchmarks"] if e["mode"] == mode and e["pattern"] == pattern
                and e["message_size"] == size and e["mechanism"] == mechanism
                and e["run_type"] == run_type)


def report(tmp_path, *files):
    out = tmp_path / "out"
    proc = run_script("report", *files, "-o", out)
    assert proc.returncode == 0, proc.stderr
    return ((out / "report.html").read_text(encoding="utf-8"),
            (out / "summary.md").read_text(encoding="utf-8"),
            (out / "cases.csv").read_text(encoding="utf-8"))


# --- the schema and the validator ----------------------------------------------

def test_remote_shape_is_valid(tmp_path):
    doc = remote_doc()
    assert errors(doc) == []
    assert validate(tmp_path, doc) == (0, "")
    # the local file it came from, and files from before remote runs, too
    assert validate(tmp_path, load(HOSTCROSSING), "local.json")[0] == 0


def test_remote_fixture_has_the_contract_fields():
    doc = remote_doc()
    remote = doc["ipcbench"]["remote"]
    assert remote == {"address": ADDRESS, "protocol_version": 1, "host": REMOTE_HOST,
                      "cpus": [2]}
    for e in doc["benchmarks"]:
        assert e["across_hosts"] is True and e["remote"] == {"address": ADDRESS, "peer_cpu": 2}
        assert e["cpus"][1] == 2
        assert (e["floor"], e["floor_value"], e["floor_ratio"]) == (None, None, None)
        assert e["floor_note"] == FLOOR_NOTE
        assert not any(k in e for k in ONEWAY_FIELDS)
        if e["mode"] == "async" and e["pattern"] == "latency":
            assert e["oneway_note"] == ONEWAY_NOTE
    local = load(HOSTCROSSING)
    assert "remote" not in local["ipcbench"]
    assert not any("across_hosts" in e or "remote" in e for e in local["benchmarks"])


def test_optional_remote_shapes_are_valid(tmp_path):
    # serve unpinned: no CPUs, peer CPU unknown
    doc = remote_doc(serve_cpus=(), peer_cpu=-1)
    assert all(e["remote"]["peer_cpu"] == -1 for e in doc["benchmarks"])
    assert validate(tmp_path, doc) == (0, "")
    # the peer's CPU on the other host may have the runner's number under cross-cpu
    doc = remote_doc(serve_cpus=(0,), peer_cpu=0)
    assert entry(doc)["cpus"] == [0, 0] and entry(doc)["placement"] == "cross-cpu"
    assert validate(tmp_path, doc) == (0, "")


def _wrong(doc, what):
    lat = entry(doc, mode="async")
    meta = doc["ipcbench"]
    if what == "floor_ratio a number":
        entry(doc)["floor_ratio"] = 2.5
    elif what == "a named floor":
        entry(doc).update(floor="futex_rtt", floor_value=41300.0, floor_ratio=4.1)
        entry(doc).pop("floor_note")
    elif what == "floor_ratio missing":
        del entry(doc)["floor_ratio"]
    elif what == "floor_note missing":
        del entry(doc)["floor_note"]
    elif what.startswith("oneway "):
        name = what.split()[1]
        local = entry(load(HOSTCROSSING), mode="async")
        lat[name] = local[name]
    elif what == "oneway_note missing":
        del lat["oneway_note"]
    elif what == "no ipcbench.remote":
        del meta["remote"]
    elif what == "entry without remote":
        del entry(doc)["remote"]
    elif what == "remote on a local entry":
        entry(doc)["across_hosts"] = False
    elif what == "across_hosts as text":
        entry(doc)["across_hosts"] = "yes"
    elif what == "peer_cpu below -1":
        entry(doc)["remote"]["peer_cpu"] = -2
    elif what == "remote address empty":
        entry(doc)["remote"]["address"] = ""
    elif what == "remote host missing kernel":
        del meta["remote"]["host"]["kernel"]
    elif what == "remote without protocol_version":
        del meta["remote"]["protocol_version"]
    elif what == "remote cpus repeated":
        meta["remote"]["cpus"] = [2, 2]
    else:
        raise AssertionError(what)
    return doc


SCHEMA_WRONG = {
    "floor_ratio a number": "$.benchmarks[0].floor_ratio",
    "a named floor": "$.benchmarks[0]",
    "floor_ratio missing": "$.benchmarks[0]",
    "floor_note missing": "$.benchmarks[0]",
    **{f"oneway {k}": f".{k}" for k in ONEWAY_FIELDS},
    "oneway_note missing": "$.benchmarks[",
    "no ipcbench.remote": "$.ipcbench",
    "entry without remote": "$.benchmarks[0]",
    "remote on a local entry": "$.benchmarks[0]",
    "across_hosts as text": "$.benchmarks[0].across_hosts",
    "peer_cpu below -1": "$.benchmarks[0].remote.peer_cpu",
    "remote address empty": "$.benchmarks[0].remote.address",
    "remote host missing kernel": "$.ipcbench.remote.host",
    "remote without protocol_version": "$.ipcbench.remote",
    "remote cpus repeated": "$.ipcbench.remote.cpus",
}


@pytest.mark.parametrize("what", sorted(SCHEMA_WRONG))
def test_schema_refuses_wrong_remote_fields(tmp_path, what):
    doc = _wrong(remote_doc(), what)
    assert errors(doc), f"schema accepted: {what}"
    status, err = validate(tmp_path, doc)
    assert status == 1 and len(err.splitlines()) == 1, err
    assert SCHEMA_WRONG[what] in err, err


def test_report_refuses_a_remote_row_with_a_floor_ratio_in_one_line(tmp_path):
    path = save(_wrong(remote_doc(), "floor_ratio a number"), tmp_path / "wrong.json")
    proc = run_script("report", path, "-o", tmp_path / "out")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "$.benchmarks[0].floor_ratio" in lines[0], proc.stderr


def test_report_refuses_one_way_figures_across_hosts_in_one_line(tmp_path):
    path = save(_wrong(remote_doc(), "oneway oneway_p50_ns"), tmp_path / "wrong.json")
    proc = run_script("report", path, "-o", tmp_path / "out")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and ".oneway_p50_ns: must be absent" in lines[0], proc.stderr


def _relate(doc, what):
    if what == "address differs":
        entry(doc)["remote"]["address"] = "198.18.0.2:7070"
    elif what == "peer_cpu not cpus[1]":
        entry(doc)["remote"]["peer_cpu"] = 3
        doc["ipcbench"]["remote"]["cpus"] = [2, 3]
    elif what == "peer_cpu not among serve's cpus":
        for e in doc["benchmarks"]:
            e["remote"]["peer_cpu"] = 3
            e["cpus"][1] = 3
    elif what == "a local entry in a remote run":
        e = entry(doc)
        del e["across_hosts"], e["remote"]
    else:
        raise AssertionError(what)
    return doc


RELATIONS = {
    "address differs": "remote.address: '198.18.0.2:7070' is not ipcbench.remote.address",
    "peer_cpu not cpus[1]": "remote.peer_cpu: 3 is not the entry's peer CPU",
    "peer_cpu not among serve's cpus": "is not among the CPUs serve was given",
    "a local entry in a remote run": "across_hosts: is missing or false in a remote run",
}


@pytest.mark.parametrize("what", sorted(RELATIONS))
def test_validator_refuses_inconsistent_remote_fields(tmp_path, what):
    doc = _relate(remote_doc(), what)
    if what != "a local entry in a remote run":
        assert errors(doc) == [], "the schema alone accepts it: the relation rules refuse it"
    status, err = validate(tmp_path, doc)
    assert status == 1 and len(err.splitlines()) == 1, err
    assert RELATIONS[what] in err, err


# --- the model ---------------------------------------------------------------

def test_model_keeps_local_and_remote_cases_apart(tmp_path):
    local, cross = model.load_all(remote_pair(tmp_path))
    assert local.remote is None and local.remote_address == "" and local.remote_host == {}
    assert cross.remote_address == ADDRESS and cross.remote_host["hostname"] == "serve-b"
    assert cross.remote_cpus == [2] and cross.remote_host_label() == f"serve-b ({ADDRESS})"
    assert {k.where for k in local.cases} == {"local"}
    assert {k.where for k in cross.cases} == {"remote"}
    assert not set(local.cases) & set(cross.cases)
    case = cross.cases[model.CaseKey("tcp", "sync", "latency", 64, "cross-cpu", "remote")]
    assert case.across_hosts and case.remote_address == ADDRESS and case.peer_cpu == 2
    assert case.key.label() == "tcp/sync/latency/64 B (cross-cpu, remote)"
    assert case.key.series() == "tcp (remote)"
    assert case.key.local_twin() in local.cases
    assert cross.floor(case).name is None and cross.floor(case).note == FLOOR_NOTE
    lat = cross.cases[model.CaseKey("tcp", "async", "latency", 64, "cross-cpu", "remote")]
    assert lat.oneway("oneway_p50_ns") is None and lat.oneway_note == ONEWAY_NOTE
    # a local key's label is as before
    assert model.CaseKey("tcp", "sync", "latency", 64, "cross-cpu").label() == (
        "tcp/sync/latency/64 B (cross-cpu)")


def test_one_file_with_both_keeps_both(tmp_path):
    run = model.load(save(mixed_doc(), tmp_path / "mixed.json"))
    assert len(run.cases) == 2 * len(model.load(HOSTCROSSING).cases)
    assert run.wheres() == ["local", "remote"]
    pairs = model.local_vs_remote([run])
    assert len(pairs) == 24 and all(p.local_run is run and p.remote_run is run for p in pairs)


def test_local_vs_remote_pairs_and_ratio(tmp_path):
    runs = model.load_all(remote_pair(tmp_path))
    pairs = model.local_vs_remote(runs)
    assert len(pairs) == 24  # 3 mechanisms x 2 modes x 2 patterns x 2 sizes
    assert not model.local_vs_remote(runs[:1]) and not model.local_vs_remote(runs[1:])
    local, cross = load(HOSTCROSSING), remote_doc()
    for p in pairs:
        k = p.remote.key
        fld = "p50_ns" if k.pattern == "latency" else "bytes_per_second"
        assert p.metric == fld
        lv = entry(local, k.mode, k.pattern, k.size, k.mechanism)[fld]
        rv = entry(cross, k.mode, k.pattern, k.size, k.mechanism)[fld]
        assert (p.local_value, p.remote_value) == (lv, rv)
        assert p.ratio == pytest.approx(rv / lv)


# --- the report ----------------------------------------------------------------

def test_report_sets_local_and_remote_side_by_side(tmp_path):
    local, cross = remote_pair(tmp_path)
    html, md, _csv = report(tmp_path, local, cross)
    rows = html_table(html, "local-remote-table")
    assert len(rows) == 24
    head = re.search(r'id="local-remote-table".*?</thead>', html, flags=re.S).group(0)
    heads = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th\b.*?</th>", head)]
    assert heads == ["mechanism", "mode", "pattern", "size", "placement", "metric", "local",
                     "across hosts", "remote / local", "remote host"]
    local_doc, cross_doc = load(local), load(cross)
    lat = next(r for r in rows if r[:4] == ["tcp", "sync", "latency", "64 B"])
    p50_local = entry(local_doc)["p50_ns"]
    p50_remote = entry(cross_doc)["p50_ns"]
    assert lat[5] == "p50" and lat[9] == f"serve-b ({ADDRESS})"
    assert lat[8] == f"{p50_remote / p50_local:.2f}×" == "2.50×"
    tput = next(r for r in rows if r[:4] == ["udp", "async", "throughput", "4 KiB"])
    bps_l = entry(local_doc, "async", "throughput", 4096, "udp")["bytes_per_second"]
    bps_r = entry(cross_doc, "async", "throughput", 4096, "udp")["bytes_per_second"]
    assert tput[5] == "throughput" and tput[8] == f"{bps_r / bps_l:.2f}×" == "0.62×"
    # the section comes first, and the toc links to it
    assert 'href="#local-remote"' in html
    assert html.index('id="local-remote"') < html.index('id="calibration"')
    # Markdown: the same table, the same ratio
    assert "### Local vs across hosts" in md
    md_row = next(line for line in md.splitlines()
                  if line.startswith("| `tcp` | sync | latency | 64 B |"))
    assert "| 2.50× |" in md_row and f"serve-b ({ADDRESS})" in md_row


def test_report_names_the_remote_host_next_to_the_local_one(tmp_path):
    html, md, _csv = report(tmp_path, *remote_pair(tmp_path))
    context = re.search(r'<section id="context">.*?</section>', html, flags=re.S).group(0)
    local_host = load(HOSTCROSSING)["ipcbench"]["host"]
    assert local_host["cpu_model"] in context and local_host["kernel"] in context
    assert 'class="remote-host"' in context
    assert REMOTE_HOST["cpu_model"] in context and REMOTE_HOST["kernel"] in context
    assert ADDRESS in context
    assert f"peer on **serve-b** (`ipcbench serve` at {ADDRESS})" in md
    assert REMOTE_HOST["cpu_model"] in md and REMOTE_HOST["kernel"] in md


def test_remote_cases_are_labelled_in_the_summary(tmp_path):
    _html, md, _csv = report(tmp_path, *remote_pair(tmp_path))
    for heading in (ROUND_TRIP, THROUGHPUT):
        rows = question(md, heading)[1]
        assert {"`tcp` sync", "`tcp` (remote) sync"} <= set(rows), heading
    assert "(remote): measured across hosts (the peer on the remote host)." in md
    assert "No floor applies across hosts" in details(md, FLOORS)
    assert not any("(remote)" in label for label in floor_rows(md))


def test_remote_cases_are_labelled_in_tables_and_plots(tmp_path):
    html, _md, _csv = report(tmp_path, *remote_pair(tmp_path))
    page = re.search(r'id="cases-table".*?</thead>', html, flags=re.S).group(0)
    heads = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th\b.*?</th>", page)]
    where = heads.index("where")
    rows = html_table(html, "cases-table")
    assert {r[where] for r in rows} == {"local", f"remote: serve-b ({ADDRESS})"}
    for fig in ("latency", "throughput", "distribution", "cpu"):
        legend = {p[1].split(": ")[-1] for p in panel_points(html, fig)}  # without the file
        assert "tcp (remote)" in legend, fig
        assert "tcp" in legend, fig  # the local series is there too
    # no floor is drawn or tabulated for a remote case
    assert figure_svg(html, "floor-latency-0-cross-cpu")
    assert figure_svg(html, "floor-latency-1-cross-cpu") is None
    assert not [p for p in panel_points(html, "floor-latency-0-cross-cpu") if "remote" in p[1]]
    floor_col = heads.index("× floor")
    assert all(r[floor_col] == "" for r in rows if r[where] != "local")


def test_one_way_columns_show_the_reason_across_hosts(tmp_path):
    html, _md, _csv = report(tmp_path, *remote_pair(tmp_path))
    page = re.search(r'id="cases-table".*?</thead>', html, flags=re.S).group(0)
    heads = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th\b.*?</th>", page)]
    col, where = heads.index("one-way p50 / p99"), heads.index("where")
    rows = html_table(html, "cases-table")
    remote_async = [r for r in rows if r[where] != "local" and r[2:4] == ["async", "latency"]]
    local_async = [r for r in rows if r[where] == "local" and r[2:4] == ["async", "latency"]]
    assert len(remote_async) == len(local_async) == 6
    assert all(r[col] == ONEWAY_NOTE for r in remote_async)
    assert all(re.fullmatch(r"[\d.]+ (ns|µs|ms) / [\d.]+ (ns|µs|ms)", r[col])
               for r in local_async)
    assert all(r[col] == "" for r in rows if r[2:4] != ["async", "latency"])


def test_csv_has_where_columns(tmp_path):
    _html, _md, text = report(tmp_path, *remote_pair(tmp_path))
    rows = list(csv.DictReader(io.StringIO(text)))
    header = text.splitlines()[0].split(",")
    assert header[-2:] == ["across_hosts", "remote_address"]
    local = [r for r in rows if r["file"] == "local.json"]
    remote = [r for r in rows if r["file"] == "cross.json"]
    assert local and remote and len(local) == len(remote)
    assert all(r["across_hosts"] == "false" and r["remote_address"] == "" for r in local)
    assert all(r["across_hosts"] == "true" and r["remote_address"] == ADDRESS for r in remote)
    assert all(r["floor_ratio"] == "" and r["floor_note"] == FLOOR_NOTE for r in remote)


def test_no_side_by_side_without_both(tmp_path):
    local, cross = remote_pair(tmp_path)
    for files in ((local,), (cross,)):
        html, md, _csv = report(tmp_path, *files)
        assert 'id="local-remote-table"' not in html and "Local vs across hosts" not in md
    # a local report is as before: no where or one-way-note columns for remote rows
    html, _md, _csv = report(tmp_path, local)
    page = re.search(r'id="cases-table".*?</thead>', html, flags=re.S).group(0)
    assert ">where<" not in page and 'class="remote-host"' not in html


def test_report_renders_a_remote_run_alone(tmp_path):
    html, md, _csv = report(tmp_path, remote_pair(tmp_path)[1])
    assert "across hosts: the calibration" in html  # the floor notes name the reason
    assert "one-way latency of the async cases across hosts" in md
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(set(ids)) == len(ids), "duplicate element ids"


# --- compare and merge -----------------------------------------------------------

def test_compare_never_pairs_local_with_remote(tmp_path):
    local, cross = remote_pair(tmp_path)
    base, new = model.load_all([local, cross])
    result = compare.compare_runs(base, new)
    assert result.changes == [] and result.status_changes == []
    assert len(result.only_base) == len(result.only_new) == 24
    assert any("never compared with one measured across hosts" in n for n in result.notes)
    proc = run_script("compare", local, cross)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 case(s) compared" in proc.stdout
    assert "only in new" in proc.stdout and "(cross-cpu, remote)" in proc.stdout


def test_compare_in_one_file_with_both_pairs_like_with_like(tmp_path):
    base = save(mixed_doc(), tmp_path / "base.json")
    doc = mixed_doc()
    worse = doctor({"benchmarks": [e for e in doc["benchmarks"] if e.get("across_hosts")]},
                   1.3)["benchmarks"]
    doc["benchmarks"] = [e for e in doc["benchmarks"] if not e.get("across_hosts")] + worse
    new = save(doc, tmp_path / "new.json")
    result = compare.compare_runs(*model.load_all([base, new]))
    assert result.only_base == [] and result.only_new == []
    assert result.regressed and all(label.endswith("remote)") for label in result.regressed)
    assert not any(label.endswith("(cross-cpu)") for label in result.regressed)


def test_a_failed_remote_case_is_not_paired_with_the_local_one(tmp_path):
    """Failed cases record placement 'unknown' and are paired regardless of
    placement: never regardless of where."""
    local, _ = remote_pair(tmp_path)
    doc = remote_doc()
    e = entry(doc)
    failed = {k: e[k] for k in ("name", "run_name", "run_type", "repetitions",
                                "repetition_index", "threads", "mechanism", "mode", "pattern",
                                "message_size", "across_hosts", "remote")}
    failed.update(iterations=0, real_time=0, cpu_time=0, time_unit="ns", placement="unknown",
                  cpus=[], error_occurred=True, error_message="serve went away")
    doc["benchmarks"] = [failed]
    doc["ipcbench"]["failed"] = [{"name": e["run_name"], "error": "serve went away"}]
    cross = save(doc, tmp_path / "failed.json")
    result = compare.compare_runs(*model.load_all([local, cross]))
    assert result.status_changes == [] and len(result.only_new) == 1
    assert result.only_new[0].status == "failed"


def test_compare_remote_runs_regression_found(tmp_path):
    _, cross = remote_pair(tmp_path)
    worse = save(doctor(load(cross), 1.3), tmp_path / "worse.json")
    proc = run_script("compare", cross, worse)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r"tcp/sync/latency/64 B \(cross-cpu, remote\)\s+p50 .*\+30\.0%", proc.stdout)
    assert f"peer across hosts: serve-b ({ADDRESS})" in proc.stdout


def test_compare_refuses_different_remote_hosts(tmp_path):
    _, cross = remote_pair(tmp_path)
    other = remote_doc(host=dict(REMOTE_HOST, hostname="serve-c", cpu_model="Ampere Altra"))
    other = save(other, tmp_path / "other.json")
    proc = run_script("compare", cross, other)
    assert proc.returncode == 2
    assert "different remote host" in proc.stderr and len(proc.stderr.splitlines()) == 1
    proc = run_script("compare", cross, other, "--cross-host")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "different remote hosts" in proc.stdout + proc.stderr


def test_merge_refuses_local_with_remote_and_keeps_remote(tmp_path):
    local, cross = remote_pair(tmp_path)
    out = tmp_path / "merged.json"
    proc = run_script("compare", local, local)  # sanity: the pair itself is fine
    assert proc.returncode == 0
    for files in ((local, cross), (cross, local)):
        proc = subprocess.run([sys.executable, "-m", "ipcbench_report", "merge", *map(str, files),
                               "-o", str(out)], capture_output=True, text=True,
                              cwd=ROOT, env={"PYTHONPATH": str(ROOT / "reports")})
        assert proc.returncode == 2 and "local and across-hosts" in proc.stderr, proc.stderr
    again = save(copy.deepcopy(load(cross)), tmp_path / "cross2.json")
    proc = subprocess.run([sys.executable, "-m", "ipcbench_report", "merge", str(cross),
                           str(again), "-o", str(out)], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT / "reports")})
    assert proc.returncode == 0, proc.stderr
    merged = load(out)
    assert merged["ipcbench"]["remote"]["address"] == ADDRESS
    assert all(e["across_hosts"] for e in merged["benchmarks"])
    assert validate(tmp_path, merged, "merged-check.json")[0] == 0


def test_a_remote_run_that_never_reached_serve_is_read(tmp_path):
    """serve unreachable: no protocol version, no host, every case failed;
    the report still lists the failures and says the peer is unknown."""
    doc = remote_doc()
    failed = []
    for e in doc["benchmarks"]:
        for k in [k for k in e if k not in ("name", "run_name", "run_type", "repetitions",
                                            "repetition_index", "threads", "mechanism", "mode",
                                            "pattern", "message_size", "across_hosts",
                                            "remote", "family_index",
                                            "per_family_instance_index")]:
            del e[k]
        e.update(iterations=0, real_time=0, cpu_time=0, time_unit="ns", placement="unknown",
                 cpus=[], error_occurred=True, error_message="cannot reach serve")
        e["remote"]["peer_cpu"] = -1
        failed.append({"name": e["run_name"], "error": "cannot reach serve"})
    doc["ipcbench"]["failed"] = failed
    doc["ipcbench"]["remote"].update(protocol_version=None, host=None, cpus=[])
    assert validate(tmp_path, doc) == (0, "")
    html, md, _csv = report(tmp_path, save(doc, tmp_path / "unreached.json"))
    assert "the run never got serve&#x27;s answer" in html and "cannot reach serve" in html
    assert "host unknown" in md


RATIO_SORT_PROBE = """<script>(function () {
  var t = document.getElementById('local-remote-table'), ths = t.tHead.rows[0].cells, col = -1;
  for (var i = 0; i < ths.length; i++) { if (ths[i].textContent === 'remote / local') { col = i; } }
  ths[col].click();
  var asc = Array.prototype.map.call(t.tBodies[0].rows, function (r) {
      return r.cells[col].getAttribute('data-v'); });
  var out = document.createElement('pre'); out.id = 'probe';
  out.textContent = JSON.stringify({ready: t.getAttribute('data-sortable'), asc: asc,
      errors: window.__errors});
  document.body.appendChild(out); })();</script>"""


def test_side_by_side_table_in_chromium(tmp_path, chromium):
    """The pair's report opens without errors and its side-by-side table sorts."""
    import json

    from test_chromium import ERROR_TRAP, chromium_run, console_errors
    out = tmp_path / "out"
    assert run_script("report", *remote_pair(tmp_path), "-o", out).returncode == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    page = page.replace("<head>", "<head>" + ERROR_TRAP, 1)
    page = page.replace("</body>", RATIO_SORT_PROBE + "</body>", 1)
    probe = tmp_path / "probe.html"
    probe.write_text(page, encoding="utf-8")
    proc = chromium_run(chromium, tmp_path, "--dump-dom", probe.as_uri())
    match = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, flags=re.S)
    assert match, f"probe did not run: {proc.stderr[-2000:]}"
    result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["errors"] == [] and result["ready"] == "ready"
    ratios = [float(v) for v in result["asc"]]
    assert len(ratios) == 24 and ratios == sorted(ratios)
    assert ratios[0] == pytest.approx(1 / 1.6) and ratios[-1] == pytest.approx(2.5, rel=1e-3)
    assert not console_errors(proc.stderr), console_errors(proc.stderr)


def test_real_remote_run_keeps_the_contract(tmp_path, real_remote_pair):
    """What the built suite writes with 'run --remote' (serve on loopback):
    valid, remote throughout, and set beside the local run in a report."""
    local, remote = real_remote_pair
    doc = load(remote)
    assert validate(tmp_path, doc, "remote.json") == (0, "")
    assert doc["ipcbench"]["remote"]["address"].startswith("127.0.0.1:")
    assert all(e.get("across_hosts") is True for e in doc["benchmarks"])
    html, md, text = report(tmp_path, local, remote)
    rows = html_table(html, "local-remote-table")
    pairs = model.local_vs_remote(model.load_all([local, remote]))
    assert rows and len(rows) == len(pairs)
    for row, p in zip(rows, pairs):
        assert row[:4] == [p.remote.key.mechanism, p.remote.key.mode, p.remote.key.pattern,
                           "64 B"]
        assert row[8] == units.ratio(p.remote_value / p.local_value)
    assert "### Local vs across hosts" in md
    assert "true" in {r["across_hosts"] for r in csv.DictReader(io.StringIO(text))}
    result = compare.compare_runs(*model.load_all([local, remote]))
    assert result.changes == [] and result.status_changes == []
