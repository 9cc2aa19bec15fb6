"""The HTML report and the compare page, rendered from Jinja2 templates.

One self-contained file: the CSS and the sort script are inlined from
templates/, every plot is an inline <svg>, so the page can be attached to a
CI run, mailed, or opened years later without a network.

The templates are package data in templates/ beside this module: base.html
(the page: head, header, footer, the inlined style.css and sortable.js),
report.html and compare.html (extend it), macros.html (notes, key/value
tables, figures, sortable tables, the run context), report_sections.html
(the body of each report section, one macro per section kind) and
compare_sections.html. This module builds plain data for them: lists and
dicts of values and already-formatted numbers. Autoescape is on, so every
value (mechanism and host names, notes, errors: anything a result file
holds) is escaped on output; the only markup handed to a template is a
plot's inline SVG from plots.py, as markupsafe.Markup. StrictUndefined: a
field a template names that the data lacks fails the render.
"""

import math
from html import escape
from pathlib import Path

import jinja2
from markupsafe import Markup

from . import model, multiples, plots, ranking, units

TEMPLATES = Path(__file__).resolve().parent / "templates"
HEAT_CMAP = plots.matplotlib.colormaps["YlOrRd"]
DEFAULT_SIZE = 64


def _finalize(value):
    """Escapes every value a template writes the way the pages always have
    (html.escape: &quot; and &#x27;, which readers of the page match on);
    autoescape then leaves the result alone. Markup (an SVG, a macro's
    output) passes as it is."""
    if hasattr(value, "__html__"):
        return value
    return Markup(escape(str(value)))


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
    undefined=jinja2.StrictUndefined,
    finalize=_finalize,
    trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def template(name):
    """A template from templates/ (Jinja2: autoescaped, StrictUndefined)."""
    return ENV.get_template(name)


def asset(name):
    return (TEMPLATES / name).read_text(encoding="utf-8")


def _macro(name, macro, *args, **kwargs):
    """One macro of a template rendered on its own, as a plain string."""
    return str(getattr(template(name).module, macro)(*args, **kwargs))


def kv_table(pairs):
    """A two-column key/value table; values are escaped by the template."""
    return _macro("macros.html", "kv_table", list(pairs))


def note(text, cls="note"):
    return _macro("macros.html", "note", text, cls)


def figure_data(fig, fig_id, title, caption):
    """A plot for the template's figure macro: its SVG inline (trusted
    markup, made by plots.py) and a caption saying how to read it."""
    return {"id": fig_id, "svg": Markup(plots.to_svg(fig, fig_id, title)), "caption": caption}


def figure(fig, fig_id, title, caption):
    """A plot as <figure> with its SVG inline and a caption."""
    return _macro("macros.html", "figure", figure_data(fig, fig_id, title, caption))


def section(sec_id, title, body):
    """A <section> around body, which is HTML already (a rendered part)."""
    return _macro("macros.html", "section", sec_id, title, caller=lambda: Markup(body))


def _yes_no(v):
    return "yes" if v else "no"


def context_pairs(run):
    """What a reader needs to judge the numbers: machine, software, settings."""
    host, cfg, clock = run.host, run.config, run.meta["clock"]
    allowed = host.get("cpus_allowed", [])
    return [
        ("file", run.path.name),
        ("host", host.get("hostname", "")),
        ("CPU", host.get("cpu_model", "")),
        ("CPUs", f"{host.get('cpus_online')} online; allowed {_cpu_list(allowed)}"),
        ("kernel", host.get("kernel", "")),
        ("hypervisor", host.get("hypervisor") or "none detected"),
        ("governor", host.get("governor") or "none (or unreadable)"),
        ("clock", f"{clock.get('source')} ({clock.get('ticks_per_ns', 0):.4g} ticks/ns)"),
        ("suite version", run.meta.get("suite_version", "")),
        ("git revision", run.meta.get("git_revision", "")),
        ("date", run.date or "unknown"),
        ("complete", _yes_no(run.complete)),
        ("mechanisms", ", ".join(cfg.get("mechanisms", []))),
        ("modes / patterns",
         f"{', '.join(cfg.get('modes', []))} / {', '.join(cfg.get('patterns', []))}"),
        ("sizes", ", ".join(units.size(s) for s in cfg.get("sizes", []))),
        ("min time / repetitions", f"{cfg.get('min_time_s')} s / {cfg.get('repetitions')}"),
        ("placements", ", ".join(run.configured_placements()) or "none measured"),
        *([("peer", f"across hosts: ipcbench serve at {run.remote_address} on "
                    f"{run.remote_host.get('hostname') or 'the remote host'} (see the remote "
                    "host)")] if run.remote is not None else []),
        ("CPUs requested", ", ".join(str(c) for c in cfg.get("cpus", [])) or "none (unpinned)"),
        ("calibration", calibration_summary(run)),
        ("timeout / verify", f"{cfg.get('timeout_s')} s / {cfg.get('verify')}"),
        ("benchmark args", " ".join(cfg.get("benchmark_args", [])) or "none"),
        ("command line", " ".join(cfg.get("command_line", []))),
    ]


def calibration_summary(run):
    """One line: whether the run calibrated, and the harness's own cost."""
    if run.calibration:
        parts = [f"{len(run.calibration_placements())} placement(s)"]
        if run.harness_ns is not None:
            parts.append(f"harness {units.ns(run.harness_ns)} per round trip")
        dur = run.calibration.get("duration_s")
        if units.is_number(dur):
            parts.append(f"took {dur:.2g} s")
        return "yes: " + ", ".join(parts)
    if run.has_calibration_field:
        return f"skipped: {run.calibration_note or 'no reason given'}"
    return "not in this file (the suite that wrote it did not calibrate)"


def _cpu_list(cpus):
    """'0-3,6' rather than a long list of numbers."""
    if not cpus:
        return "none"
    spans, start, prev = [], cpus[0], cpus[0]
    for c in list(cpus[1:]) + [None]:
        if c is not None and c == prev + 1:
            prev = c
            continue
        spans.append(f"{start}-{prev}" if prev != start else f"{start}")
        if c is not None:
            start = prev = c
    return ",".join(spans)


def remote_pairs(run):
    """The remote host of a remote run, as the local host is described:
    where the peers of its across-hosts cases ran."""
    remote, host = run.remote or {}, run.remote_host
    if not host:
        return [("serve address", run.remote_address),
                ("host", "unknown: the run never got serve's answer (every case failed)"),
                ("floors", "none across hosts: the calibration's floors describe the local "
                           "host only")]
    allowed = host.get("cpus_allowed") if isinstance(host.get("cpus_allowed"), list) else []
    return [
        ("serve address", run.remote_address),
        ("host", host.get("hostname", "")),
        ("CPU", host.get("cpu_model", "")),
        ("CPUs", f"{host.get('cpus_online')} online; allowed {_cpu_list(allowed)}"),
        ("kernel", host.get("kernel", "")),
        ("hypervisor", host.get("hypervisor") or "none detected"),
        ("governor", host.get("governor") or "none (or unreadable)"),
        ("serve's CPUs", ", ".join(str(c) for c in run.remote_cpus) or "none (unpinned)"),
        ("protocol version", str(remote.get("protocol_version", ""))),
        ("floors", "none across hosts: the calibration's floors describe the local host only"),
    ]


def context_data(run, heading):
    """The run's host and settings; for a remote run, the remote host next to it."""
    return {"heading": heading, "pairs": context_pairs(run),
            "remote": remote_pairs(run) if run.remote is not None else None}


def context_block(run, heading):
    return _macro("macros.html", "context_block", context_data(run, heading))


def choose_size(runs, requested=None):
    """The message size for the per-size plots: the requested one if any run
    measured it, else 64 B, else the smallest latency size measured."""
    sizes = sorted({s for r in runs for s in r.sizes("latency")})
    if not sizes:
        return requested or DEFAULT_SIZE
    if requested in sizes:
        return requested
    if requested:
        return plots.nearest_size(sizes, requested)
    return DEFAULT_SIZE if DEFAULT_SIZE in sizes else sizes[0]


# Columns of the case table: (header, numeric?, function(run, case) -> (sort value, text)).
def _num(field, fmt):
    return lambda run, case: _cell(case.value(field), fmt)


def _cell(value, fmt):
    return (value, fmt(value)) if units.is_number(value) else (None, "")


def _marked(field, fmt, limit):
    """A figure cell with the marker of a limit that set it (e.g. p50 † when
    the sender fell behind); the sort value stays the number."""
    def cell(run, case):
        value, text = _cell(case.value(field), fmt)
        mark = next((lim.mark for lim in case.limits() if lim.name == limit), "")
        if mark and text:
            return value, f"{text} {mark}", {"class": "num limited"}
        return value, text
    return cell


UNSTABLE_MARK = "⚠ unstable"


def stability_cell(run, case):
    """The case's cv (of p50 for latency, of bytes/s for throughput) with the
    unstable marker when the suite (or the 5% rule) says so."""
    st = case.stability()
    if st is None:
        return None, ""
    text = f"{100 * st.cv:.1f}%"
    if st.unstable:
        return st.cv, f"{text} {UNSTABLE_MARK}", {
            "class": "num unstable",
            "title": f"unstable: cv of {st.metric} across repetitions over 5%"}
    return st.cv, text, {"title": f"cv of {st.metric} across repetitions"}


def floor_cell(run, case):
    """Which floor applies and its figure, or 'none' with the reason."""
    f = run.floor(case)
    if f is None:
        return None, ""
    if f.name is None:
        return None, "none", {"class": "floor-none", "title": f.note or "no floor applies"}
    title = f.name
    if f.origin == "computed":
        title += " (computed from the calibration: the file has no per-case floor)"
    elif f.adjacent:
        title += " (re-measured on the case's CPUs right before the case)"
    text = f"{f.label} {f.value_text()}".strip() + (" (adjacent)" if f.adjacent else "")
    return f.value, text, {"title": title}


def floor_ratio_cell(run, case):
    f = run.floor(case)
    if f is None or f.ratio is None:
        return None, ""
    how = "p50 / floor" if case.key.pattern == "latency" else "floor / throughput"
    return f.ratio, units.ratio(f.ratio), {"title": how}


CASE_COLUMNS = [
    ("mechanism", False, lambda r, c: (c.key.mechanism, c.key.mechanism)),
    ("mode", False, lambda r, c: (c.key.mode, c.key.mode)),
    ("pattern", False, lambda r, c: (c.key.pattern, c.key.pattern)),
    ("size", True, lambda r, c: (c.key.size, units.size(c.key.size))),
    ("placement", False, lambda r, c: (c.key.placement, c.key.placement)),
    ("status", False, lambda r, c: (c.status, c.status)),
    ("reps", True, lambda r, c: (c.repetitions, str(c.repetitions))),
    ("cv", True, stability_cell),
    ("p50", True, _marked("p50_ns", units.ns, "sender_behind")),
    ("p90", True, _num("p90_ns", units.ns)),
    ("p99", True, _num("p99_ns", units.ns)),
    ("p99.9", True, _num("p999_ns", units.ns)),
    ("max", True, _num("max_ns", units.ns)),
    ("time/msg", True, _num("real_time", units.ns)),
    ("throughput", True, _marked("bytes_per_second", units.bytes_per_second,
                                 "harness_flow_control")),
    ("msg rate", True, _num("items_per_second", units.per_second)),
    ("runner CPU/msg", True, _num("runner_cpu_ns_per_msg", units.ns)),
    ("peer CPU/msg", True, _num("peer_cpu_ns_per_msg", units.ns)),
    ("ctx sw/msg", True, lambda r, c: _cell(_sum(c.value("runner_ctx_switches_per_msg"),
                                                  c.value("peer_ctx_switches_per_msg")),
                                             lambda v: f"{v:.2f}")),
    ("syscalls/msg", True, lambda r, c: _cell(_sum(c.value("runner_syscalls_per_msg"),
                                                    c.value("peer_syscalls_per_msg")),
                                               lambda v: f"{v:.2f}")),
    ("lost", True, _num("messages_lost", units.count)),
]
FLOOR_COLUMNS = [("floor", True, floor_cell), ("× floor", True, floor_ratio_cell)]
HOST_COLUMN = ("host", False, lambda r, c: (r.label, r.label))


def where_text(run, case):
    """'local', or 'remote: serve-b (198.18.0.1:7070)' for a case whose peer
    ran on the remote host."""
    if not case.key.remote:
        return "local"
    return f"remote: {run.remote_host_label() if run.remote else case.remote_address}"


def where_cell(run, case):
    text = where_text(run, case)
    attrs = {"class": "where-remote"} if case.key.remote else {}
    return (case.key.where, text, attrs) if attrs else (case.key.where, text)


def oneway_cell(run, case):
    """An async latency case's one-way p50 / p99; across hosts, the
    oneway_note (why there are none) instead of numbers."""
    if case.key.mode != "async" or case.key.pattern != "latency":
        return None, ""
    p50, p99 = case.oneway("oneway_p50_ns"), case.oneway("oneway_p99_ns")
    if case.key.remote and p50 is None:
        text = case.oneway_note or "not reported across hosts"
        return None, text, {"class": "reason oneway-note", "title": text}
    if p50 is None:
        return None, ""
    text = units.ns(p50) + (f" / {units.ns(p99)}" if p99 is not None else "")
    return p50, text, {"title": case.oneway_note or "one-way p50 / p99"}


WHERE_COLUMN = ("where", False, where_cell)
ONEWAY_COLUMN = ("one-way p50 / p99", True, oneway_cell)


def in_flight_cell(run, case):
    """How the case kept messages in flight: an async latency case's window
    ('1', '16 (queueing)') or open-loop rate, a stream's in-flight limit and
    what set it; '' for sync."""
    flight = run.in_flight(case)
    text = flight.text()
    if not text:
        return None, ""
    attrs = {"title": {"closed": "closed loop: messages kept in flight",
                       "open": "open loop: messages sent per second on a fixed schedule",
                       "stream": "most messages sent ahead of the peer's acknowledgements"
                       }.get(flight.loop, "")}
    if flight.queueing or flight.loop == "open":
        attrs["class"] = "not-like-sync"
    return text, text, attrs


def limits_cell(run, case):
    """What besides the mechanism set the case's figure (marked: † sender
    behind, ‡ harness flow control) and the mechanism's own buffer limit."""
    limits = case.limits()
    if not limits:
        return None, ""
    text = "; ".join(lim.text() for lim in limits)
    marked = any(lim.mark for lim in limits)
    return text, text, {"class": "limited" if marked else "",
                        "title": " ".join(lim.legend for lim in limits)}


IN_FLIGHT_COLUMN = ("in flight", False, in_flight_cell)
WAIT_COLUMN = ("wait", False, lambda r, c: (c.wait or None, c.wait))


def copies_cell(run, case):
    """Copies of the payload per message; 0 (a loan API) says that its
    bytes per second were handed over, not moved."""
    n = case.copies
    if n is None:
        return None, ""
    if n == 0:
        return 0, "0", {"title": "a loan API: the sender writes in shared memory it was lent and "
                                 "the receiver reads it there; bytes per second count bytes "
                                 "handed over, not moved"}
    return n, str(n)


COPIES_COLUMN = ("copies", True, copies_cell)
LIMITS_COLUMN = ("limited by", False, limits_cell)


def limit_legend(runs):
    """The legend lines of the limits the listed cases carry, in LIMITS order."""
    names = {lim.name for r in runs for c in table_cases(r) for lim in c.limits()}
    return [lim.legend for name, lim in model.LIMITS.items() if name in names]


def has_oneway_column(runs):
    """True when some listed case is async latency with one-way figures or a
    note saying why it has none."""
    return any(c.key.mode == "async" and c.key.pattern == "latency"
               and (c.oneway("oneway_p50_ns") is not None or c.key.remote)
               for r in runs for c in table_cases(r))


def _sum(a, b):
    return None if a is None or b is None else a + b


def table_cases(run):
    """The cases the case table lists: every case except those flagged as
    measurement errors, which have their own section and are never shown
    as plain results."""
    return [c for c in run.cases.values() if c.status != "flagged"]


def _section_data(kind, sec_id, title, **data):
    """A report section: what report.html needs to place it (id, title) and
    the data of its body macro (report_sections.html, named by kind)."""
    return {"kind": kind, "id": sec_id, "title": title, **data}


def _body(sec):
    """A section's body rendered on its own (the public functions that
    return (id, title, html) use it)."""
    return _macro("report_sections.html", sec["kind"], sec)


def _as_tuple(sec):
    return (sec["id"], sec["title"], _body(sec))


def cases_table_data(runs):
    """Every case of every file, one row each: the head [(header, type)] and
    rows of cells, each cell its text and its attributes in order (data-v,
    the sort value, always; class and title when set). Unstable cases carry
    the marker in the cv column and the row class 'unstable'."""
    columns = list(CASE_COLUMNS)
    if any(r.floor(c) is not None for r in runs for c in table_cases(r)):
        at = [h for h, _n, _f in columns].index("msg rate") + 1
        columns[at:at] = FLOOR_COLUMNS
    if has_oneway_column(runs):
        at = [h for h, _n, _f in columns].index("max") + 1
        columns.insert(at, ONEWAY_COLUMN)
    if any(r.has_remote_cases() for r in runs):
        at = [h for h, _n, _f in columns].index("placement") + 1
        columns.insert(at, WHERE_COLUMN)
    listed = [(r, c) for r in runs for c in table_cases(r)]
    if any(c.limits() for _r, c in listed):
        at = [h for h, _n, _f in columns].index("status") + 1
        columns.insert(at, LIMITS_COLUMN)
    at = [h for h, _n, _f in columns].index("status")
    if any(c.copies is not None for _r, c in listed):
        columns.insert(at, COPIES_COLUMN)
    if any(c.wait for _r, c in listed):
        columns.insert(at, WAIT_COLUMN)
    if any(r.in_flight(c).text() for r, c in listed):
        columns.insert(at, IN_FLIGHT_COLUMN)
    if len(runs) > 1:
        columns.insert(0, HOST_COLUMN)
    head = [(h, "num" if num else "text") for h, num, _ in columns]
    rows = []
    for run in runs:
        for case in table_cases(run):
            cells = []
            for h, num, fn in columns:
                value, text, *extra = fn(run, case)
                attrs = dict(extra[0]) if extra else {}
                attrs.setdefault("class", "num" if num else "")
                if h == "status" and case.status != "ok":
                    attrs["class"] = f"status-{case.status}"
                attrs["data-v"] = "" if value is None else str(value)
                cells.append({"text": text, "attrs": [(k, v) for k, v in attrs.items()
                                                      if v or k == "data-v"]})
            classes = " ".join(c for c in ("unstable" if case.unstable else "",
                                           "remote" if case.key.remote else "") if c)
            rows.append({"cls": classes, "cells": cells})
    return {"head": head, "rows": rows}


def cases_table(runs):
    """The case table, sortable by any column."""
    return _macro("report_sections.html", "cases_table", cases_table_data(runs))


def local_remote_data(pairs, runs):
    """The 'Local vs across hosts' table: one row per case measured both ways."""
    rows = []
    for p in pairs:
        k = p.remote.key
        fmt = units.ns if p.metric == "p50_ns" else units.bytes_per_second
        rows.append({
            "mechanism": k.mechanism, "mode": k.mode, "pattern": k.pattern,
            "size": k.size, "size_text": units.size(k.size), "placement": k.placement,
            "metric": p.metric, "metric_text": "p50" if p.metric == "p50_ns" else "throughput",
            "local_run": p.local_run.label, "remote_run": p.remote_run.label,
            "local_value": p.local_value,
            "local_text": fmt(p.local_value) + (f" {UNSTABLE_MARK}" if p.local.unstable else ""),
            "remote_value": p.remote_value,
            "remote_text": fmt(p.remote_value)
            + (f" {UNSTABLE_MARK}" if p.remote.unstable else ""),
            "ratio": p.ratio, "ratio_text": units.ratio(p.ratio) if p.ratio is not None else "",
            "host": p.remote_run.remote_host_label()})
    return {"pairs": rows,
            "multi_local": len({id(p.local_run) for p in pairs}) > 1,
            "multi_remote": len({id(p.remote_run) for p in pairs}) > 1,
            "hosts": hosts_data(pairs)}


def local_remote_table(pairs, runs):
    return _macro("report_sections.html", "local_remote_table", local_remote_data(pairs, runs))


def host_text(host):
    """'vm: Intel(R) Xeon(R) Processor, Linux 6.1.0': a host as one line."""
    detail = ", ".join(str(host.get(k)) for k in ("cpu_model", "kernel") if host.get(k))
    name = host.get("hostname") or "unknown host"
    return f"{name}: {detail}" if detail else str(name)


def hosts_data(pairs):
    """Which machines the two columns come from (the run context has the rest)."""
    return {
        "local": "; ".join(_ordered_unique(host_text(p.local_run.host) for p in pairs)),
        "runner": "; ".join(_ordered_unique(host_text(p.remote_run.host) for p in pairs)),
        "peer": "; ".join(_ordered_unique(f"{host_text(p.remote_run.remote_host)} "
                                          f"(serve at {p.remote_run.remote_address})"
                                          for p in pairs))}


def _ordered_unique(items):
    out = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def local_remote_data_section(runs):
    """The 'local-remote' section when the inputs hold local and remote
    results of the same cases, else None."""
    pairs = model.local_vs_remote(runs)
    if not pairs:
        return None
    return _section_data("local_remote", "local-remote", "Local vs across hosts",
                     **local_remote_data(pairs, runs))


def local_remote_section(runs):
    """('local-remote', title, html) when the inputs hold local and remote
    results of the same cases, else None."""
    sec = local_remote_data_section(runs)
    return _as_tuple(sec) if sec else None


def problems_data(runs):
    """Failed and skipped cases with their reasons."""
    rows = [{"host": run.label, "case": case.key.label(), "status": case.status,
             "reason": case.message}
            for run in runs for case in run.cases.values()
            if case.status in ("failed", "skipped")]
    return _section_data("problems", "problems", "Failed and skipped cases", rows=rows,
                     multi=len(runs) > 1)


def problems_table(runs):
    """Failed and skipped cases with their reasons, or a line saying none."""
    return _body(problems_data(runs))


def flagged_data(runs):
    """The cases the sanity gate flagged, with the reason: measured, but
    measurement errors, so they appear here and nowhere else."""
    rows = []
    for run in runs:
        for case in run.flagged_cases():
            fld, value = case.figure()
            fmt = units.ns if fld == "p50_ns" else units.bytes_per_second
            f = run.floor(case)
            rows.append({
                "host": run.label, "case": case.key.label(),
                "cpus": ", ".join(str(c) for c in case.cpus) or "–", "reason": case.message,
                "figure": (f"{'p50' if fld == 'p50_ns' else 'throughput'} {fmt(value)}"
                           if value is not None else ""),
                "floor": f"{f.label} {f.value_text()}".strip() if f and f.name else ""})
    return _section_data("flagged", "flagged", "Flagged as measurement errors", rows=rows,
                     multi=len(runs) > 1, gated=any("flagged" in r.meta for r in runs))


def flagged_table(runs):
    return _body(flagged_data(runs))


def counts_line(runs):
    """'42 cases measured, 4 skipped, 0 failed' over every file (and the
    flagged ones, when there are any)."""
    statuses = [c.status for r in runs for c in r.cases.values()]
    flagged = statuses.count("flagged")
    return (f"{statuses.count('ok')} cases measured, {statuses.count('skipped')} skipped, "
            f"{statuses.count('failed')} failed"
            + (f", {flagged} flagged as measurement errors" if flagged else ""))


def _has_data(runs, pattern):
    return any(r.case_list(pattern) for r in runs)


def _plot(sec_id, title, fig=None, missing=None, more=()):
    return _section_data("plot", sec_id, title, figure=fig, missing=missing, more=list(more))


def multiples_data(built, fig_id, title, caption):
    """A plot drawn as small multiples (plots.*_multiples panels) for the
    template's multiples macro: each panel's SVG, legend and hover points."""
    cols = len({p.column for p in built}) or 1
    return {"id": fig_id, "caption": caption, "cols": min(cols, 2),
            "panels": [p.render(f"{fig_id}-{i}", f"{title}: {p.title}")
                       for i, p in enumerate(built)]}


MULTIPLES_NOTE = (" One panel per group of mechanisms (whole families, at most "
                  f"{multiples.MAX_SERIES} series) and mode, all on the same axes. "
                  "Click a legend entry to hide or show its series; hover a point for its "
                  "values.")


def plot_data_sections(runs, lay, styles, size):
    """The figure sections in reading order."""
    out = []
    if _has_data(runs, "latency"):
        out.append(_plot("latency", "Latency vs message size", multiples_data(
            plots.latency_multiples(multiples.panels(runs, lay, styles, "latency")),
            "latency", "Latency vs message size",
            "Median (p50) round-trip time per mechanism, line and markers; the whisker "
            "above each point reaches the p99. Both axes logarithmic. Lower is better."
            + MULTIPLES_NOTE)))
    else:
        out.append(_plot("latency", "Latency vs message size",
                         missing="No latency case was measured."))
    if _has_data(runs, "throughput"):
        out.append(_plot("throughput", "Throughput vs message size", multiples_data(
            plots.throughput_multiples(multiples.panels(runs, lay, styles, "throughput")),
            "throughput", "Throughput vs message size",
            "Payload bytes per second of the throughput pattern (runner streams, peer "
            "receives). Both axes logarithmic; decimal units (1 GB/s = 10⁹ B/s). "
            "Higher is better." + MULTIPLES_NOTE)))
    else:
        out.append(_plot("throughput", "Throughput vs message size",
                         missing="No throughput case was measured."))
    out += per_size_data_sections(runs, lay, styles, size)
    return out


def plot_sections(runs, styles, size, lay=None):
    """The figure sections in reading order: (id, title, html)."""
    lay = lay or multiples.layout(runs)
    return [_as_tuple(s) for s in plot_data_sections(runs, lay, styles, size)]


def per_size_data_sections(runs, lay, styles, size):
    """Distribution and CPU cost at the chosen size, then the optional views."""
    out = []
    sz = units.size(size)
    if _has_data(runs, "latency"):
        out.append(_plot("distribution", f"Latency distribution at {sz}", multiples_data(
            plots.distribution_multiples(
                multiples.panels(runs, lay, styles, "latency", size=size), size),
            "distribution", "Latency distribution",
            f"Round-trip time at each percentile for {sz} messages (all repetitions merged), "
            "HdrHistogram style: the x axis is 1/(1−p), so 90%, 99%, 99.9%... are evenly "
            "spaced and the tail is visible. The maximum (100%) is not drawn. "
            "Choose the size with --size." + MULTIPLES_NOTE)))
        bars = figure_data(plots.cpu_bars(runs, styles, size), "cpu-split",
                           "CPU cost split", f"Every case's CPU time per round trip at {sz}, "
                           "split between runner (solid) and peer (hatched), cheapest first.")
        out.append(_plot("cpu", f"CPU cost per message at {sz}", multiples_data(
            plots.cpu_multiples(multiples.panels(
                runs, lay, styles, "latency", size=size,
                wanted=lambda _r, c: c.value("p50_ns") and c.cpu_ns_per_msg() is not None)),
            "cpu", "CPU cost per message",
            f"CPU time per round trip (runner + peer, user + system) against p50 latency for "
            f"{sz} messages. A mechanism on the '2 CPUs busy' line spins on both sides; "
            "blocking mechanisms sit well below the '1 CPU busy' line." + MULTIPLES_NOTE),
            more=[bars]))
    if any(r.load_sweeps for r in runs):
        out.append(load_data(runs, lay, styles))
    out.append(modes_data(runs, size))
    out.append(floor_data(runs, lay, styles))
    if len(runs) > 1:
        out.append(_plot("hosts", f"Across result files at {sz}", figure_data(
            plots.across_hosts(runs, size), "hosts", "Across result files",
            f"Each mechanism's p50 latency and throughput at {sz} (sync mode), "
            "one bar per result file, so the same mechanism can be compared across machines.")))
    return out


def per_size_sections(runs, styles, size, lay=None):
    lay = lay or multiples.layout(runs)
    return [_as_tuple(s) for s in per_size_data_sections(runs, lay, styles, size)]


def loop_data(runs):
    """The two sentences on closed- and open-loop async latency, when the
    runs have async latency (else None)."""
    if not any(c.key.mode == "async" and c.key.pattern == "latency"
               for r in runs for c in table_cases(r)):
        return None
    return {"closed": model.CLOSED_LOOP_TEXT, "open": model.OPEN_LOOP_TEXT}


def loop_note(runs):
    return _macro("report_sections.html", "loop_note", loop_data(runs))


def modes_data(runs, size):
    """The sync-vs-async view: the pairs that mean the same thing as bars
    and a table, a line on the pairs left out and why."""
    title = "Sync vs async"
    pairs = model.sync_vs_async(runs)
    data = {"loops": loop_data(runs), "figure": None, "left_out": "", "pairs": [],
            "multi": len(runs) > 1, "modes": ""}
    if not pairs:
        if not any(plots.multi_mode_mechanisms(r) for r in runs):
            modes = sorted({m for r in runs for m in r.modes()})
            return _section_data("modes", "modes", title, state="one-mode",
                             **{**data, "modes": ", ".join(modes)})
        return _section_data("modes", "modes", title, state="no-pairs", **data)
    fig = plots.modes_side_by_side(runs, size, pairs)
    if fig is not None:
        data["figure"] = figure_data(
            fig, "modes", title,
            f"Sync and async bars per mechanism: p50 latency at {units.size(size)} "
            "(closed-loop async at window 1 only) and throughput. A second line "
            "under a mechanism says how the two sides waited when they differ, "
            "and what limited a throughput figure (‡ harness-limited: the "
            "harness's flow control held the sender; buffer full: the "
            "mechanism's own buffer was full most of the time). Log axes.")
    data["left_out"] = model.left_out_line(pairs) or ""
    data["pairs"] = sync_async_rows([p for p in pairs if not p.left_out], runs)
    return _section_data("modes", "modes", title, state="pairs", **data)


def modes_section(runs, size):
    return _as_tuple(modes_data(runs, size))


def pair_wait_text(pair):
    """'sync blocks, async spins' when the sides waited differently, 'both
    block' when alike, '' when a side does not say."""
    label = pair.wait_label()
    if label:
        return label
    w = pair.sync.wait
    return f"both {w}" if w and w == pair.async_case.wait else ""


def sync_async_rows(pairs, runs):
    """One row per sync-vs-async pair shown: the two figures, async / sync,
    how the async case kept messages in flight, how each side waited and
    what else limited a figure."""
    rows = []
    for p in pairs:
        k = p.key
        fmt = units.ns if p.metric == "p50_ns" else units.bytes_per_second
        rows.append({
            "host": p.run.label, "series": k.series(), "pattern": k.pattern,
            "pattern_text": ("p50 " if k.pattern == "latency" else "") + k.pattern,
            "size": k.size, "size_text": units.size(k.size), "placement": k.placement,
            "sync_value": p.sync_value, "sync_text": fmt(p.sync_value),
            "async_value": p.async_value, "async_text": fmt(p.async_value),
            "ratio": p.ratio, "ratio_text": units.ratio(p.ratio) if p.ratio is not None else "",
            "in_flight": p.in_flight.text(), "wait": pair_wait_text(p),
            "wait_differs": bool(p.wait_label()), "notes": "; ".join(p.notes())})
    return rows


def sync_async_table(pairs, runs):
    """The sync-vs-async table and the line on reading async / sync."""
    return _macro("report_sections.html", "sync_async_table", sync_async_rows(pairs, runs),
                  len(runs) > 1)


FLOOR_CAPTION = {
    "latency": (
        "Each case's p50 round trip as a multiple of the floor that applies to it, "
        "measured on the same CPUs in this run: the payload round trip (spinning shared "
        "memory, async) or the futex wake-up round trip (mechanisms that sleep). 1× (the "
        "black line) is at the floor; hover a point for the floor and its figure. The "
        "floors themselves are in the calibration above. Cases flagged as measurement "
        "errors are not drawn."),
    "throughput": (
        "Each case's throughput as a fraction of the floor bandwidth that applies to it "
        "(floor / throughput): the cross-core copy (shared memory) or memcpy bandwidth "
        "(copying mechanisms). 1× (the black line) is at the floor."),
}


def _fig_suffix(runs, r, place):
    return f"{r}-{place}" if len(runs) > 1 else place


def floor_data(runs, lay, styles):
    """Per run and placement with floors, a figure per pattern (the cases as
    multiples of their floors), and why the others have none."""
    title = "Against the calibration floor"
    placements = []
    for r, run in enumerate(runs):
        for place in run.placements():
            heading = f"{place} (CPUs {', '.join(map(str, _placement_cpus(run, place)))})"
            if len(runs) > 1:
                heading = f"{run.label}: {heading}"
            figures = []
            for pattern in ("latency", "throughput"):
                if not plots.floor_points(run, place, pattern):
                    continue

                def wanted(rr, c, place=place, rr0=run):
                    f = rr0.floor(c)
                    return (rr is rr0 and c.key.placement == place
                            and c.key.where == model.LOCAL and f is not None and f.ratio)
                specs = multiples.panels([run], lay, styles, pattern, wanted=wanted)
                figures.append(multiples_data(
                    plots.floor_multiples(specs, run, place, pattern),
                    f"floor-{pattern}-{_fig_suffix(runs, r, place)}",
                    f"{pattern.capitalize()} against the floor, {place}",
                    FLOOR_CAPTION[pattern] + MULTIPLES_NOTE))
            no_floor = _floor_notes(run, place)
            if figures or no_floor:
                placements.append({"heading": heading, "figures": figures,
                                   "no_floor": no_floor})
    skipped = [{"label": r.label, "reason": r.calibration_note or "no reason given"}
               for r in runs if r.has_calibration_field and not r.calibration]
    return _section_data("floor", "floor", title, placements=placements, skipped=skipped)


def floor_section(runs, styles, lay=None):
    return _as_tuple(floor_data(runs, lay or multiples.layout(runs), styles))


def _placement_cpus(run, place):
    cal = run.calibration_for(place) or {}
    if isinstance(cal.get("cpus"), list) and cal["cpus"]:
        return cal["cpus"]
    for c in run.case_list():
        if c.key.placement == place and c.cpus:
            return c.cpus
    return ["?"]


def _floor_notes(run, place):
    """Why some cases of a placement have no floor: each distinct floor_note
    once, with how many cases it covers: [(note, count)]."""
    notes = {}
    for c in run.case_list():
        if c.key.placement != place:
            continue
        f = run.floor(c)
        if f is not None and f.name is None:
            notes[f.note or "no floor applies"] = notes.get(f.note or "no floor applies", 0) + 1
    return list(notes.items())


# --- calibration ------------------------------------------------------------
def _fig(v, fmt, missing="not measured"):
    return fmt(v) if units.is_number(v) else missing


def calibration_data(run, r, multi):
    """One entry per placement: the clock read, the harness's own cost, the
    cache-line and futex round trips, then per size the payload round trip
    and the memcpy and cross-core copy bandwidths; the notes below."""
    cal = run.calibration
    out = []
    sizes = sorted({int(s) for p in run.calibration_placements().values()
                    for k in ("payload_rtt_ns", "memcpy_bytes_per_second",
                              "cross_core_copy_bytes_per_second")
                    if isinstance(p.get(k), dict) for s in p[k] if str(s).isdigit()})
    for place, figs in run.calibration_placements().items():
        cl, cl_min = figs.get("cache_line_rtt_ns"), figs.get("cache_line_rtt_min_ns")
        cache_line = _fig(cl, units.ns)
        if units.is_number(cl) and units.is_number(cl_min):
            cache_line += f" (min {units.ns(cl_min)})"

        def per_size(key, s):
            v = figs.get(key)
            fmt = units.ns if key == "payload_rtt_ns" else units.bytes_per_second
            return _fig(v.get(str(s)) if isinstance(v, dict) else None, fmt)
        out.append({
            "ident": f"{r}-{place}" if multi else place,
            "heading": ((run.label + ": ") if multi else "") + place,
            "pairs": [
                ("CPUs", ", ".join(str(c) for c in figs.get("cpus") or []) or "not pinned"),
                ("clock read", _fig(cal.get("clock_read_ns"), units.ns)),
                ("harness cost per round trip", _fig(cal.get("harness_ns"), units.ns)),
                ("cache-line round trip (p50)", cache_line),
                ("futex wake-up round trip", _fig(figs.get("futex_rtt_ns"), units.ns)),
            ],
            "sizes": [{"size": units.size(s), "payload": per_size("payload_rtt_ns", s),
                       "memcpy": per_size("memcpy_bytes_per_second", s),
                       "cross_core": per_size("cross_core_copy_bytes_per_second", s)}
                      for s in sizes],
            "notes": [n for n in figs.get("notes") or [] if isinstance(n, str)]})
    return out


def calibration_tables(run, r, multi):
    """One rendered <div> per placement (see calibration_data)."""
    return [_macro("report_sections.html", "calibration_placement", p)
            for p in calibration_data(run, r, multi)]


def calibration_data_section(runs):
    """The floors the run measured, per placement, before the cases; per
    run, whether it has them ('tables'), has a layout this report does not
    know ('unknown'), skipped calibrating ('skipped') or predates it
    ('absent')."""
    multi = len(runs) > 1
    placements, states = [], []
    for r, run in enumerate(runs):
        state = {"prefix": f"{run.label}: " if multi else "", "reason": ""}
        if run.calibration:
            tables = calibration_data(run, r, multi)
            placements += tables
            state["state"] = "tables" if tables else "unknown"
        elif run.has_calibration_field:
            state.update(state="skipped", reason=run.calibration_note or "no reason given")
        else:
            state["state"] = "absent"
        states.append(state)
    return _section_data("calibration", "calibration", "Calibration", runs=states,
                     placements=placements)


def calibration_section(runs):
    return _as_tuple(calibration_data_section(runs))


def cases_data_section(runs):
    """All cases: the note on reading the table, the legend of its limit
    markers, the table."""
    return _section_data("cases", "cases", "All cases",
                     remote=any(r.has_remote_cases() for r in runs),
                     columns_text=cases_columns_text(runs), legend=limit_legend(runs),
                     table=cases_table_data(runs), unstable_mark=UNSTABLE_MARK)


# --- load sweep ---------------------------------------------------------------
def load_data(runs, lay, styles):
    """Latency under load (run --load-sweep): the capacity table, ranked by
    capacity, and per size the latency-vs-load small multiples."""
    rows = []
    for run in runs:
        for s in run.load_sweeps:
            steps = run.load_steps(s.get("mechanism"), s.get("message_size"), s.get("placement"))
            cap = s.get("capacity_rate")
            at_cap = next((c for c in steps if c.value("offered_rate") == cap), None)
            cpu = at_cap.cpu_ns_per_msg() if at_cap is not None else None
            bound = s.get("bound") or {}
            rows.append({
                "label": (f"{run.label}: " if len(runs) > 1 else "") + str(s.get("mechanism")),
                "size": s.get("message_size"), "size_text": units.size(s.get("message_size")),
                "placement": s.get("placement", ""),
                "peak": s.get("peak_echo_rate"),
                "peak_text": units.per_second(s.get("peak_echo_rate")),
                "capacity": cap, "capacity_text": units.per_second(cap) if cap else "none",
                "bound_text": f"{bound.get('text', '')} ({units.ns(bound.get('ns'))})",
                "unloaded": s.get("unloaded_p99_ns"),
                "unloaded_text": units.ns(s.get("unloaded_p99_ns")),
                "cpu": cpu, "cpu_text": units.ns(cpu) if cpu is not None else "–",
                "steps_text": f"{s.get('unsaturated_steps', 0)} of {s.get('steps_run', 0)}",
                "stopped": s.get("stopped") or ""})
    rows.sort(key=lambda r: (r["size"] or 0, -(r["capacity"] or -1.0), r["label"]))
    figures = []
    sizes = sorted({s.get("message_size") for r in runs for s in r.load_sweeps
                    if s.get("message_size")})
    for size in sizes:
        built = plots.load_multiples(runs, lay, styles, size)
        if built:
            figures.append(multiples_data(
                built, f"load-{size}", f"Latency under load at {units.size(size)}",
                f"Round trip against the achieved load at {units.size(size)}: each point a step "
                "of the sweep (the open loop at a share of the peak echo rate) or its unloaded "
                "figure (one message per 4 round trips, the default bound's base), p50 "
                "left, p99 right; the ring marks the capacity. Both axes logarithmic. One panel per group "
                f"of mechanisms (whole families, at most {multiples.MAX_SERIES} lines) and "
                "percentile, all on the same axes. Click a legend entry to hide or show its "
                "line; hover a point for its values."))
    return _section_data("load", "load", "Latency under load", rows=rows, figures=figures)


# --- overview ---------------------------------------------------------------
TOP = 10  # ranking rows shown before "all N"
HEAT_WORST = 100.0  # ratio to the best at which the heat map's colour saturates


def heat_colour(ratio):
    """(background, dark?) of a heat-map cell: pale yellow at the best,
    through orange, to dark red at HEAT_WORST times worse or more (log)."""
    t = min(1.0, max(0.0, math.log(ratio) / math.log(HEAT_WORST))) if ratio else 1.0
    r, g, b, _a = HEAT_CMAP(0.05 + 0.9 * t)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}", t > 0.55


def _cpu_text(entry):
    cpu = entry.cpu_ns
    return units.ns(cpu) if cpu is not None else "–"


def _rank_rows(entries):
    return [{"rank": i + 1, "label": e.label, "value": e.value,
             "value_text": ranking.value_text(pat, e.value) + (f" {UNSTABLE_MARK}"
                                                               if e.unstable else ""),
             "ratio": e.ratio, "ratio_text": ranking.ratio_text(e.ratio),
             "cpu": e.cpu_ns, "cpu_text": _cpu_text(e), "best": e.ratio <= 1.0 + 1e-9}
            for i, e in enumerate(entries) for pat in [e.case.key.pattern]]


def _left_out_text(runs, pattern):
    """One sentence on the async latency cases not ranked, grouped by why."""
    why = {}
    for run, case in ranking.left_out(runs, pattern):
        reason = run.in_flight(case).why_not_like_sync() or "not one message at a time"
        why.setdefault(reason, []).append(case.key.series())
    if not why:
        return ""
    parts = [f"{', '.join(dict.fromkeys(names))} ({reason})" for reason, names in why.items()]
    return ("Not ranked (async latency that is not one message at a time, so not a round "
            "trip to rank against the others): " + "; ".join(parts) + ".")


def overview_data(runs):
    """The ranking per size for each question, the heat maps, what is left out."""
    questions = []
    for pattern, heading in (("latency", "Round trip (p50), best first"),
                             ("throughput", "Throughput, best first")):
        sizes = ranking.sizes(runs, pattern)
        if not sizes:
            continue
        tables = [{"size": units.size(size), "rows": _rank_rows(ranking.ranked(runs, pattern,
                                                                                size))}
                  for size in sizes]
        at, rows = ranking.grid(runs, pattern, sizes)
        heat = {"sizes": [units.size(x) for x in at], "rows": []}
        for row in rows:
            cells = []
            for x in at:
                e = row.cells.get(x)
                if e is None:
                    cells.append(None)
                    continue
                colour, dark = heat_colour(e.ratio)
                cells.append({"text": ranking.value_text(pattern, e.value),
                              "ratio_text": ranking.ratio_text(e.ratio), "colour": colour,
                              "dark": dark, "title": f"{e.label}, {units.size(x)}: "
                              f"{ranking.value_text(pattern, e.value)}, "
                              f"{ranking.ratio_text(e.ratio)}, CPU {_cpu_text(e)}"})
            heat["rows"].append({"label": row.label, "cells": cells})
        questions.append({"pattern": pattern, "heading": heading, "tables": tables,
                          "heat": heat, "left_out": _left_out_text(runs, pattern),
                          "figure": "p50" if pattern == "latency" else "throughput"})
    return _section_data("overview", "overview", "Overview", questions=questions, top=TOP,
                         worst=HEAT_WORST)


def render_report(runs, size=None, title=None):
    """The whole report page for one or more runs."""
    places = []
    for run in runs:
        places += [p for p in run.configured_placements() + run.placements()
                   if p not in places]
    lay = multiples.layout(runs)
    styles = multiples.Styles(lay, places)
    size = choose_size(runs, size)
    side_by_side = local_remote_data_section(runs)
    sections = ([overview_data(runs)] + ([side_by_side] if side_by_side else [])
                + [calibration_data_section(runs)] + plot_data_sections(runs, lay, styles, size))
    sections.append(cases_data_section(runs))
    sections.append(flagged_data(runs))
    sections.append(problems_data(runs))
    return template("report.html").render(
        title=title or default_title(runs),
        lead=lead_line(runs),
        warnings=warnings_data(runs),
        unstable_mark=UNSTABLE_MARK,
        contexts=[context_data(r, r.label) for r in runs],
        sections=sections,
        sources=", ".join(r.path.name for r in runs),
    )


def cases_columns_text(runs):
    """What the in-flight and wait columns say, when the table has them."""
    listed = [(r, c) for r in runs for c in table_cases(r)]
    text = ""
    if any(r.in_flight(c).text() for r, c in listed):
        text += (" in flight: for async latency, the messages a closed loop kept in flight "
                 "('1', or e.g. '16 (queueing)': the round trips include queueing) or an "
                 "open loop's rate ('open loop 2000/s'; see Sync vs async); for a stream with "
                 "acknowledgements, its in-flight limit and what set it (the harness's "
                 "budget or the receiver's buffer).")
    if any(c.wait for _r, c in listed):
        text += (" wait: how the runner waited for a message (block, poll, spin, "
                 "spin-then-block).")
    return text


def limits_legend_html(runs):
    """The legend of the limit markers the case table carries, one line each."""
    return _macro("report_sections.html", "limits_legend", limit_legend(runs))


def default_title(runs):
    if len(runs) == 1:
        return f"ipcbench results: {runs[0].label}"
    return f"ipcbench results: {len(runs)} runs ({', '.join(r.label for r in runs)})"


def lead_line(runs):
    mechs = {m for r in runs for m in r.mechanisms()}
    return f"{len(mechs)} mechanisms; {counts_line(runs)}."


def warnings_data(runs):
    """Warnings a reader must see before trusting the numbers: per run, an
    interrupted run, flagged cases, unstable cases."""
    out = []
    for run in runs:
        if not run.complete:
            out.append({"kind": "interrupted", "label": run.label, "count": 0})
        flagged = run.flagged_cases()
        if flagged:
            out.append({"kind": "flagged", "label": run.label, "count": len(flagged)})
        unstable = run.unstable_cases()
        if unstable:
            out.append({"kind": "unstable", "label": run.label, "count": len(unstable)})
    return out


def warnings_html(runs):
    return _macro("report_sections.html", "warnings", warnings_data(runs), UNSTABLE_MARK)


def render_compare(result):
    """The compare diff page: verdict, the runs, a change chart and table."""
    from . import compare as cmp
    sys_lines = cmp.syscall_lines(result)
    verdict = {"nothing_paired": result.nothing_paired,
               "nothing_line": cmp.nothing_paired_line(result) if result.nothing_paired else "",
               "regressed": ", ".join(result.regressed),
               "method_lines": list(cmp.method_lines(result)),
               "syscall_line": sys_lines[0],
               "syscall_items": [line.strip() for line in sys_lines[1:]]}
    rows = [ch.as_row() for ch in result.changes]
    chart = (figure_data(plots.compare_changes(rows, result.threshold), "compare", "Changes",
                         "Each compared metric's change, signed so that positive is worse "
                         "(latency up, throughput down).")
             if any(r["worse_pct"] is not None for r in rows) else None)
    return template("compare.html").render(
        title=f"ipcbench compare: {result.base.path.name} → {result.new.path.name}",
        lead=cmp.summary_line(result),
        warnings=result.warnings + result.notes,
        verdict=verdict,
        contexts=[context_data(r, f"{side}: {r.label}")
                  for side, r in (("base", result.base), ("new", result.new))],
        chart=chart,
        changes=changes_data(result),
        unmatched=unmatched_data(result),
    )


def changes_data(result):
    """Every compared metric: values for sorting, texts for reading."""
    from . import compare as cmp
    return [{"case": ch.case, "metric": ch.metric,
             "base": ch.base, "base_text": ch.fmt(ch.base),
             "new": ch.new, "new_text": ch.fmt(ch.new),
             "change": ch.change_pct, "change_text": units.percent_change(ch.change_pct),
             "p_value": ch.p_value, "p_text": cmp.p_text(ch.p_value),
             "noise_text": cmp.noise_text(ch),
             "detectable": ch.detectable_pct, "detectable_text": cmp.detectable_text(ch),
             "method": ch.method, "verdict": ch.verdict,
             "verdict_text": cmp.verdict_text(ch.verdict),
             "verdict_class": ch.verdict.replace(" ", "-")}
            for ch in result.changes]


def compare_table(result):
    """Every compared metric, sortable."""
    return _macro("compare_sections.html", "changes_table", changes_data(result))


def unmatched_data(result):
    """Cases not compared: status changes, flagged cases, cases measured
    under different settings and cases present on one side only."""
    return {
        "status_changes": [{"label": label, "base": b, "new": n, "what": what}
                           for label, b, n, what in result.status_changes],
        "flagged": [{"label": label, "reasons": reasons}
                    for label, _b, _n, reasons in result.flagged],
        "mismatched": [{"label": m.case, "what": m.what()} for m in result.mismatched],
        "only_base": [{"label": c.key.label(), "status": c.status} for c in result.only_base],
        "only_new": [{"label": c.key.label(), "status": c.status} for c in result.only_new]}


def unmatched_html(result):
    return _macro("compare_sections.html", "unmatched", unmatched_data(result))
