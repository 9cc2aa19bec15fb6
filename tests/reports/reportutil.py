"""Helpers shared by the report tool's tests: paths, running the entry
scripts, doctoring result files, and reading the SVGs out of a report."""

import contextlib
import copy
import io
import json
import os
import html
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
SCRIPTS = ROOT / "scripts"
REPORTS = ROOT / "reports"

if str(REPORTS) not in sys.path:
    sys.path.insert(0, str(REPORTS))

LATENCY_UP = ("p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns", "mean_ns", "min_ns",
              "max_ns", "real_time")
RATES_DOWN = ("bytes_per_second", "items_per_second", "achieved_rate")


# The entry scripts that only exec `python3 -m ipcbench_report NAME "$@"`.
IN_PROCESS = ("report", "compare", "merge")


def run_script(name, *args, timeout=300):
    """Runs scripts/NAME with args; returns a CompletedProcess (text).

    report, compare and merge run in this process, as their scripts would
    (the same main(), from the tree's root, stdout and stderr captured, the
    exit status returned): a new Python that imports matplotlib cost ~0.7 s
    a call, about half of this suite's time. Not when an argument is a
    descriptor path (/dev/..., /proc/...), whose bytes would go round the
    capture, nor with IPCBENCH_REPORT_SUBPROCESS=1 (the scripts themselves
    are run by test_merge_and_scripts and test_cli_errors)."""
    args = [str(a) for a in args]
    if (name in IN_PROCESS and os.environ.get("IPCBENCH_REPORT_SUBPROCESS") != "1"
            and not any(a.startswith(("/dev/", "/proc/")) for a in args)):
        return run_in_process(name, args)
    return run_subprocess(name, *args, timeout=timeout)


def run_subprocess(name, *args, timeout=300):
    """Runs scripts/NAME with args in a process of its own."""
    return subprocess.run([str(SCRIPTS / name), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def run_in_process(name, args):
    from ipcbench_report import cli  # pylint: disable=import-outside-toplevel
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                # scripts/report runs 'export ...' and 'history ...' as commands.
                routed = name == "report" and args[:1] in (["export"], ["history"])
                argv = args if routed else [name, *args]
                code = cli.main(argv)
            except SystemExit as e:  # argparse refusing the arguments
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess([str(SCRIPTS / name), *args], code, out.getvalue(),
                                       err.getvalue())


def load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save(doc, path):
    Path(path).write_text(json.dumps(doc), encoding="utf-8")
    return Path(path)


def doctor(doc, factor=1.3):
    """A copy of a result with every measured latency (and time per message)
    multiplied by factor and every rate divided by it: an injected regression
    (factor > 1) on every case and every repetition."""
    doc = copy.deepcopy(doc)
    for e in doc["benchmarks"]:
        if e.get("skipped") or e.get("error_occurred"):
            continue
        if e["run_type"] == "aggregate" and e.get("aggregate_name") == "cv":
            continue  # a ratio: scaling every sample leaves it unchanged
        for k in LATENCY_UP:
            if k in e:
                e[k] = e[k] * factor
        for k in RATES_DOWN:
            if k in e:
                e[k] = e[k] / factor
    return doc


def svgs(html):
    """The inline plot <svg> elements of a page, as strings (not the legend
    entries' swatches)."""
    return re.findall(r'<svg\b(?![^>]*class="swatch").*?</svg>', html, flags=re.S)


def _local(tag):
    return tag.rsplit("}", 1)[-1]


def drawn_data_groups(svg):
    """How many of an SVG's data groups (gid 'data-...') really draw
    something: a path with at least one segment, or a placed marker."""
    root = ET.fromstring(svg)
    count = 0
    for g in root.iter():
        if not g.get("id", "").startswith("data-"):
            continue
        for el in g.iter():
            tag, d = _local(el.tag), el.get("d", "")
            if tag == "use" or (tag == "path" and re.search(r"[LlCcZzHhVv]", d)):
                count += 1
                break
    return count


# --- Fabricating the calibration, floor, flag and stability fields ------------
# The golden files predate them; these helpers add them as the suite writes
# them (docs/result.schema.json), so the tests do not depend on a binary that
# writes them yet.

SPINNING = ("shm-spin",)          # latency floor: the payload round trip
SHARED_MEMORY = ("shm-spin", "shm-futex", "boost-shm")   # throughput floor: cross-core copy
# Mechanisms whose spinning floors the suite re-measures right before the
# case (floor_source 'adjacent'); the fabricated figure is 10% above the
# calibration's, so a test can tell the two apart.
ADJACENT = ("shm-spin",)
ADJACENT_FACTOR = 1.1


def calibration(placements=("cross-cpu",), sizes=(64, 1024, 16384), cpus=None):
    """An ipcbench.calibration object in the per-placement shape, with
    figures that are easy to recognise in a rendered report."""
    cpus = cpus or {"cross-cpu": [0, 1], "same-cpu": [0, 0], "unpinned": []}
    out = {"clock_read_ns": 9.1, "harness_ns": 21.5, "duration_s": 2.3, "placements": {}}
    for place in placements:
        same = place == "same-cpu"
        out["placements"][place] = {
            "cpus": cpus[place],
            "cache_line_rtt_ns": None if same else 181.0,
            "cache_line_rtt_min_ns": None if same else 152.0,
            "payload_rtt_ns": None if same else {str(s): 190.0 + s / 8 for s in sizes},
            "futex_rtt_ns": 4100.0 if same else 41300.0,
            "memcpy_bytes_per_second": {str(s): 2.1e10 + s * 1e4 for s in sizes},
            "cross_core_copy_bytes_per_second": (
                None if same else {str(s): 1.1e9 + s * 1e5 for s in sizes}),
            "notes": (["same-cpu: spinning floors skipped: both processes share one CPU"]
                      if same else []),
        }
    return out


def case_entries(doc, mechanism, pattern, size, placement=None, mode="sync"):
    """Every entry (iterations and aggregates) of one case."""
    return [e for e in doc["benchmarks"]
            if e["mechanism"] == mechanism and e["pattern"] == pattern
            and e["message_size"] == size and e["mode"] == mode
            and (placement is None or e["placement"] == placement)]


def floor_for(entry):
    """The floor name the suite would pick for an entry's mechanism and pattern."""
    if entry["pattern"] == "latency":
        return "payload_rtt" if entry["mechanism"] in SPINNING else "futex_rtt"
    return "cross_core_copy" if entry["mechanism"] in SHARED_MEMORY else "memcpy"


def _floor_value(cal, entry, name):
    place = cal["placements"].get(entry["placement"]) or {}
    key = {"payload_rtt": "payload_rtt_ns", "futex_rtt": "futex_rtt_ns",
           "cross_core_copy": "cross_core_copy_bytes_per_second",
           "memcpy": "memcpy_bytes_per_second"}[name]
    v = place.get(key)
    return v.get(str(entry["message_size"])) if isinstance(v, dict) else v


def set_floor(entry, name, value, note="no floor applies"):
    """Puts floor, floor_value and floor_ratio on one entry (the ratio from
    its own figures, as the suite computes it); name None: floor_note instead."""
    if name is None or value is None:
        entry.update(floor=None, floor_value=None, floor_ratio=None, floor_note=note)
        return entry
    if entry["pattern"] == "latency":
        ratio = entry["p50_ns"] / value if "p50_ns" in entry else None
    else:
        bps = entry.get("bytes_per_second")
        ratio = value / bps if bps else None
    if ratio is None:
        entry.update(floor=None, floor_value=None, floor_ratio=None,
                     floor_note="not measured")
    else:
        entry.update(floor=name, floor_value=value, floor_ratio=ratio)
        entry.pop("floor_note", None)
    return entry


def add_calibration(doc, placements=None, sizes=None):
    """A copy of doc as a suite with calibration writes it: calibration per
    placement, configuration.placements/calibration, an empty flagged list,
    and every measured entry's floor fields."""
    doc = copy.deepcopy(doc)
    placements = placements or sorted({e["placement"] for e in doc["benchmarks"]
                                       if e["placement"] != "unknown"})
    sizes = sizes or doc["ipcbench"]["configuration"]["sizes"]
    cal = calibration(placements, sizes)
    meta = doc["ipcbench"]
    meta["calibration"] = cal
    meta["configuration"]["placements"] = list(placements)
    meta["configuration"]["calibration"] = True
    meta.setdefault("flagged", [])
    for e in doc["benchmarks"]:
        if e.get("skipped") or e.get("error_occurred"):
            continue
        name = floor_for(e)
        value = _floor_value(cal, e, name)
        adjacent = value and e["mechanism"] in ADJACENT and name in ("payload_rtt",
                                                                        "cross_core_copy")
        if adjacent:
            value *= ADJACENT_FACTOR
        set_floor(e, name if value else None, value,
                  note=f"{e['placement']} placement: spinning floors do not apply")
        if value:
            e["floor_source"] = "adjacent" if adjacent else "calibration"
        if value and e["run_type"] == "aggregate" and e.get("aggregate_name") in ("stddev", "cv"):
            e["floor_ratio"] = None  # a spread has no ratio to a floor
    return doc


def flag(doc, mechanism, pattern, size, reason, placement=None):
    """Marks a case as the sanity gate does: measurement_error on every
    entry, and the case in ipcbench.flagged. Returns the doc."""
    entries = case_entries(doc, mechanism, pattern, size, placement)
    assert entries, f"no case {mechanism}/{pattern}/{size}"
    for e in entries:
        e["measurement_error"] = reason
    doc["ipcbench"].setdefault("flagged", []).append(
        {"name": entries[0]["run_name"], "reason": reason})
    return doc


def set_cv(doc, mechanism, pattern, size, cv, placement=None):
    """Gives a case the stability fields of a run with repetitions."""
    for e in case_entries(doc, mechanism, pattern, size, placement):
        e.update(cv=cv, cv_metric="p50_ns" if pattern == "latency" else "bytes_per_second",
                 unstable=cv > 0.05)
    return doc


def add_placement(doc, placement, cpus, factor=1.0):
    """A copy of doc whose every case also ran under another placement
    (names gain the placement suffix, as with several --placement values);
    the new cases' figures are the old ones scaled like doctor()."""
    doc = copy.deepcopy(doc)
    first = sorted({e["placement"] for e in doc["benchmarks"] if e["placement"] != "unknown"})
    extra = doctor({"benchmarks": doc["benchmarks"]}, factor)["benchmarks"]

    def suffix(entry, place):
        for k in ("name", "run_name"):
            entry[k] = entry[k].replace("/manual_time", f"/{place}/manual_time", 1)

    for e in doc["benchmarks"]:
        suffix(e, e["placement"] if e["placement"] != "unknown" else first[0])
    for e in extra:
        suffix(e, placement)
        if e["placement"] != "unknown":
            e["placement"], e["cpus"] = placement, list(cpus)
    doc["benchmarks"] += extra
    doc["ipcbench"]["configuration"]["placements"] = first + [placement]
    return doc


def html_table(page, table_id):
    """The body rows of the HTML table with that id, as lists of cell texts
    (tags stripped, entities decoded); [] when the table is absent."""
    import html as _html
    m = re.search(rf'<table[^>]*id="{re.escape(table_id)}".*?</table>', page, flags=re.S)
    if not m:
        return []
    body = m.group(0).split("<tbody>", 1)[-1]
    rows = re.findall(r"<tr\b[^>]*>(.*?)</tr>", body, flags=re.S)
    return [[_html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
             for c in re.findall(r"<td\b[^>]*>(.*?)</td>", r, flags=re.S)] for r in rows]


def figure_html(page, fig_id):
    """The HTML of the figure with id 'fig-<fig_id>' (its panels, legends
    and caption), or None."""
    m = re.search(rf'<figure class="plot" id="fig-{re.escape(fig_id)}">(.*?)</figcaption>',
                  page, flags=re.S)
    return m.group(1) if m else None


def panel_points(page, fig_id):
    """The hover points of every panel of a small-multiples figure:
    [(panel title, series legend label, x, y, text)]."""
    fig = figure_html(page, fig_id)
    out = []
    for m in re.finditer(r'<div class="panel" data-points="([^"]*)">(.*?)</ul></div>', fig or "",
                         flags=re.S):
        body = m.group(2)
        title = re.search(r'aria-label="[^"]*: ([^"]*)"', body).group(1)
        legend = dict(re.findall(r'<button type="button" data-series="([^"]+)"[^>]*>'
                                 r'<svg class="swatch".*?</svg>([^<]*)</button>', body,
                                 flags=re.S))
        for sid, x, y, text in json.loads(html.unescape(m.group(1))):
            out.append((html.unescape(title), html.unescape(legend[sid]), x, y, text))
    return out


def figure_svg(page, fig_id):
    """The inline SVG of the figure with id 'fig-<fig_id>', or None."""
    m = re.search(rf'<figure class="plot" id="fig-{re.escape(fig_id)}">(.*?)</figure>', page,
                  flags=re.S)
    found = svgs(m.group(1)) if m else []
    return found[0] if found else None


# --- Remote runs ('ipcbench run --remote HOST:PORT') ----------------------------
# HOSTCROSSING is a real local run of the host-crossing mechanisms (tcp, udp,
# zmq-tcp; sync and async; 64 B and 4 KiB; calibrated); remote_fixture
# derives the remote run's file from it, as the suite will write it.
HOSTCROSSING = DATA / "hostcrossing.json"


def remote_doc(doc=None, **kwargs):
    """A remote-shaped copy of doc (default: the host-crossing run); see
    remote_fixture.remote_shaped for the keyword arguments."""
    from remote_fixture import remote_shaped
    return remote_shaped(load(HOSTCROSSING) if doc is None else doc, **kwargs)


def remote_pair(tmp_path, **kwargs):
    """(local.json, cross.json) in tmp_path: the host-crossing run and the
    remote run derived from it."""
    local = save(load(HOSTCROSSING), tmp_path / "local.json")
    return local, save(remote_doc(**kwargs), tmp_path / "cross.json")


def mixed_doc(doc=None):
    """One file with the local cases and their remote twins (ipcbench.remote
    set): not what the suite writes (a remote run is remote throughout), but
    the schema allows it and the reader must keep the two apart."""
    local = load(HOSTCROSSING) if doc is None else copy.deepcopy(doc)
    remote = remote_doc(local)
    remote["benchmarks"] = local["benchmarks"] + remote["benchmarks"]
    return remote


# --- Schema version 2 and the settings compare keys on ---------------------------
# Version 2 changes what real_time means (latency rows: the mean round trip;
# throughput rows: ns per delivered message) and writes the settings on every
# row: verify everywhere; window null in the open loop and on async
# throughput, whose flow control is in_flight_limit_messages/_bytes.

def entries(doc, mode=None, pattern=None):
    """Every entry of doc of that mode and pattern (None: any)."""
    return [e for e in doc["benchmarks"] if (mode is None or e["mode"] == mode)
            and (pattern is None or e["pattern"] == pattern)]


def set_fields(doc, mode=None, pattern=None, config=None, **fields):
    """A copy of doc with fields set on every entry of that mode and pattern
    and, with config, those keys set in ipcbench.configuration."""
    doc = copy.deepcopy(doc)
    for e in entries(doc, mode, pattern):
        e.update(fields)
    doc["ipcbench"]["configuration"].update(config or {})
    return doc


def open_loop(doc, rate=20000):
    """A copy of doc whose async latency cases ran in the open loop at rate
    (rate_kept_up, as the suite writes it for an open loop)."""
    doc = set_fields(doc, "async", "latency", config={"rate": rate}, rate=rate,
                     rate_kept_up=True)
    if doc["ipcbench"]["schema_version"] >= 2:
        for e in entries(doc, "async", "latency"):
            e["window"] = None  # version 2: no window in the open loop
    return doc


IN_FLIGHT_MESSAGES, IN_FLIGHT_BYTES = 32, 65536


def as_v2(doc=None):
    """A copy of a version-1 result (default: the host-crossing run) as the
    suite writes version 2: schema_version 2, verify on every row, latency
    real_time the mean round trip, window null where it does not apply
    (open loop, async throughput) and the in-flight limits on async
    throughput rows."""
    doc = copy.deepcopy(load(HOSTCROSSING) if doc is None else doc)
    meta = doc["ipcbench"]
    meta["schema_version"] = 2
    verify = meta["configuration"]["verify"]
    for e in doc["benchmarks"]:
        e["verify"] = verify
        if e["pattern"] == "latency" and "mean_ns" in e:
            e["real_time"] = e["mean_ns"]
        if e["mode"] != "async":
            continue
        if e["pattern"] == "latency":
            if e.get("rate") is not None:
                e["window"] = None
        else:
            e["window"] = None
            e["in_flight_limit_messages"] = IN_FLIGHT_MESSAGES
            e["in_flight_limit_bytes"] = IN_FLIGHT_BYTES
    return doc


def schema_accepting_v2(schema):
    """A copy of the result schema changed as little as version 2 needs, for
    as long as docs/result.schema.json describes version 1 only:
    ipcbench.schema_version 1 or 2 (it says const 1) and an entry's window
    null (version 2 writes null in the open loop and on async throughput).
    Returns (schema, changes); no changes once the schema has them."""
    schema = copy.deepcopy(schema)
    changes = []

    def walk(node, where):
        if isinstance(node, dict):
            props = node.get("properties")
            props = props if isinstance(props, dict) else {}
            version = props.get("schema_version")
            if isinstance(version, dict):
                accepted = version.get("enum", [version["const"]] if "const" in version
                                       else None)
                if accepted is not None and 2 not in accepted:
                    version.pop("const", None)
                    version["enum"] = sorted(set(accepted) | {2})
                    changes.append(f"{where}.properties.schema_version: {accepted} -> "
                                   f"{version['enum']}")
            window = props.get("window") if not where.endswith(".configuration") else None
            if isinstance(window, dict) and window.get("type") == "integer":
                window["type"] = ["integer", "null"]
                changes.append(f"{where}.properties.window: integer -> [integer, null]")
            for k, v in node.items():
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(schema, "$")
    return schema, changes


# --- Schema version 2: how async figures were measured (issue 15 point 11) -------
# A version-2 row says how the runner waited (wait), how async latency kept
# messages in flight (window and includes_queueing in the closed loop; rate,
# lateness and sender_behind in the open loop) and what limited a stream
# (in_flight_limit_*, flow_stall_fraction, channel_full_fraction).

def closed_loop(doc, window=1, mechanism=None, size=None):
    """A copy of a version-2 doc whose async latency cases (of mechanism
    and size, None: all) ran in a closed loop of window messages, as the
    suite writes it: rate null, includes_queueing above 1, max_in_flight."""
    doc = copy.deepcopy(doc)
    for e in entries(doc, "async", "latency"):
        if (mechanism is None or e["mechanism"] == mechanism) and (
                size is None or e["message_size"] == size):
            e.update(window=window, rate=None, includes_queueing=window > 1,
                     max_in_flight=window)
            for k in ("lateness_p50_ns", "lateness_p99_ns", "lateness_max_ns",
                      "sender_behind", "rate_kept_up"):
                e.pop(k, None)
    return doc


def open_loop_v2(doc, rate=2000, mechanism=None, sender_behind=False):
    """A copy of a version-2 doc whose async latency cases (of mechanism,
    None: all) ran in the open loop at rate: window null, the sender's
    lateness and sender_behind (rate_kept_up false when behind)."""
    doc = copy.deepcopy(doc)
    period = 1e9 / rate
    for e in entries(doc, "async", "latency"):
        if mechanism is None or e["mechanism"] == mechanism:
            e.pop("includes_queueing", None)
            e.update(rate=rate, window=None, max_in_flight=3, rate_kept_up=not sender_behind,
                     sender_behind=sender_behind, lateness_p50_ns=800.0,
                     lateness_p99_ns=2 * period if sender_behind else 4000.0,
                     lateness_max_ns=3 * period if sender_behind else 9000.0)
    return doc


def set_wait(doc, sync="block", async_wait="spin", mechanism=None):
    """A copy of doc with wait on every row (of mechanism, None: all): sync
    rows wait as sync, async rows as async_wait."""
    doc = copy.deepcopy(doc)
    for e in doc["benchmarks"]:
        if mechanism is None or e["mechanism"] == mechanism:
            e["wait"] = sync if e["mode"] == "sync" else async_wait
    return doc


def set_stream(doc, mechanism, flow_stall=0.0, channel_full=0.0, mode="async"):
    """A copy of doc whose throughput rows of mechanism (and mode) carry
    the flow-control shares of the span: flow_stall (the harness's credits
    held the sender) and channel_full (the mechanism's buffer was full)."""
    doc = copy.deepcopy(doc)
    for e in entries(doc, mode, "throughput"):
        if e["mechanism"] == mechanism:
            e.setdefault("in_flight_limit_messages", IN_FLIGHT_MESSAGES)
            e.setdefault("in_flight_limit_bytes", IN_FLIGHT_BYTES)
            e.update(in_flight_limit_source="harness", flow_stall_fraction=flow_stall,
                     channel_full_fraction=channel_full)
    return doc
