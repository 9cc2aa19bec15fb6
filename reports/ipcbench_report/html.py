"""The HTML report: templates/report.html filled from the model.

One self-contained file: the CSS and the sort script are inlined from
templates/, every plot is an inline <svg>, so the page can be attached to a
CI run, mailed, or opened years later without a network.
"""

from html import escape
from pathlib import Path
from string import Template

from . import model, plots, units

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
DEFAULT_SIZE = 64


def template(name):
    """A template from reports/templates/ (string.Template: $name fields)."""
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def asset(name):
    return (TEMPLATES / name).read_text(encoding="utf-8")


def kv_table(pairs):
    """A two-column key/value table; values are escaped here."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


def note(text, cls="note"):
    return f'<p class="{cls}">{escape(text)}</p>'


def figure(fig, fig_id, title, caption):
    """A plot as <figure> with its SVG inline and a caption saying how to read it."""
    svg = plots.to_svg(fig, fig_id, title)
    return (f'<figure class="plot" id="fig-{fig_id}">{svg}'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def section(sec_id, title, body):
    return f'<section id="{sec_id}">\n<h2>{escape(title)}</h2>\n{body}\n</section>'


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


def context_block(run, heading):
    """The run's host and settings; for a remote run, the remote host next to it."""
    block = f"<div><h3>{escape(heading)}</h3>{kv_table(context_pairs(run))}</div>"
    if run.remote is not None:
        block += (f'<div class="remote-host"><h3>{escape(heading)}: remote host '
                  f"(peer side, ipcbench serve)</h3>{kv_table(remote_pairs(run))}</div>")
    return block


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


def cases_table(runs):
    """Every case of every file, one row each, sortable by any column;
    unstable cases carry the marker in the cv column and class 'unstable'."""
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
    if any(c.wait for _r, c in listed):
        columns.insert(at, WAIT_COLUMN)
    if any(r.in_flight(c).text() for r, c in listed):
        columns.insert(at, IN_FLIGHT_COLUMN)
    if len(runs) > 1:
        columns.insert(0, HOST_COLUMN)
    head = "".join(f'<th data-type="{"num" if num else "text"}">{escape(h)}</th>'
                   for h, num, _ in columns)
    body = []
    for run in runs:
        for case in table_cases(run):
            cells = []
            for _h, num, fn in columns:
                value, text, *extra = fn(run, case)
                attrs = dict(extra[0]) if extra else {}
                attrs.setdefault("class", "num" if num else "")
                if _h == "status" and case.status != "ok":
                    attrs["class"] = f"status-{case.status}"
                attrs["data-v"] = "" if value is None else str(value)
                cells.append("<td" + "".join(
                    f' {k}="{escape(v, quote=True)}"' for k, v in attrs.items()
                    if v or k == "data-v") + f">{escape(text)}</td>")
            classes = " ".join(c for c in ("unstable" if case.unstable else "",
                                           "remote" if case.key.remote else "") if c)
            cls = f' class="{classes}"' if classes else ""
            body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    return (f'<div class="table-wrap"><table class="data sortable" id="cases-table">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


LOCAL_REMOTE_NOTE = (
    "The same mechanism, mode, pattern, size and placement measured with the peer on this "
    "host (local) and on the remote host (across hosts, 'ipcbench run --remote'). Latency: "
    "p50 round trip; throughput: payload bytes/s. remote / local over 1 means a slower round "
    "trip (latency) or more throughput (throughput): the network's share is the difference. "
    "No floors across hosts, and no one-way latency (it needs a clock both hosts share).")


def local_remote_table(pairs, runs):
    """The 'Local vs across hosts' table: one row per case measured both ways."""
    multi_local = len({id(p.local_run) for p in pairs}) > 1
    multi_remote = len({id(p.remote_run) for p in pairs}) > 1
    head = [("mechanism", "text"), ("mode", "text"), ("pattern", "text"), ("size", "num"),
            ("placement", "text"), ("metric", "text"), ("local", "num"),
            ("across hosts", "num"), ("remote / local", "num"), ("remote host", "text")]
    if multi_local:
        head.insert(6, ("local run", "text"))
    if multi_remote:
        head.insert(len(head) - 1, ("remote run", "text"))
    body = []
    for p in pairs:
        k = p.remote.key
        fmt = units.ns if p.metric == "p50_ns" else units.bytes_per_second
        host_text = p.remote_run.remote_host_label()
        cells = [(k.mechanism, k.mechanism, ""), (k.mode, k.mode, ""),
                 (k.pattern, k.pattern, ""), (k.size, units.size(k.size), "num"),
                 (k.placement, k.placement, ""),
                 (p.metric, "p50" if p.metric == "p50_ns" else "throughput", ""),
                 (p.local_value, fmt(p.local_value)
                  + (f" {UNSTABLE_MARK}" if p.local.unstable else ""), "num"),
                 (p.remote_value, fmt(p.remote_value)
                  + (f" {UNSTABLE_MARK}" if p.remote.unstable else ""), "num"),
                 (p.ratio, units.ratio(p.ratio) if p.ratio is not None else "", "num ratio"),
                 (host_text, host_text, "")]
        if multi_local:
            cells.insert(6, (p.local_run.label, p.local_run.label, ""))
        if multi_remote:
            cells.insert(len(cells) - 1, (p.remote_run.label, p.remote_run.label, ""))
        body.append("<tr>" + "".join(
            f'<td class="{cls}" data-v="{"" if v is None else escape(str(v), quote=True)}">'
            f"{escape(text)}</td>" for v, text, cls in cells) + "</tr>")
    thead = "".join(f'<th data-type="{t}">{escape(h)}</th>' for h, t in head)
    return (f'<div class="table-wrap"><table class="data sortable" id="local-remote-table">'
            f"<thead><tr>{thead}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
            + hosts_line(pairs))


def host_text(host):
    """'vm: Intel(R) Xeon(R) Processor, Linux 6.1.0': a host as one line."""
    detail = ", ".join(str(host.get(k)) for k in ("cpu_model", "kernel") if host.get(k))
    name = host.get("hostname") or "unknown host"
    return f"{name}: {detail}" if detail else str(name)


def hosts_line(pairs):
    """Which machines the two columns come from (the run context has the rest)."""
    local = _ordered_unique(host_text(p.local_run.host) for p in pairs)
    runner = _ordered_unique(host_text(p.remote_run.host) for p in pairs)
    peer = _ordered_unique(f"{host_text(p.remote_run.remote_host)} "
                           f"(serve at {p.remote_run.remote_address})" for p in pairs)
    return note(f"local: runner and peer on {'; '.join(local)}. Across hosts: runner on "
                f"{'; '.join(runner)}; peer on {'; '.join(peer)}.")


def _ordered_unique(items):
    out = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def local_remote_section(runs):
    """('local-remote', title, html) when the inputs hold local and remote
    results of the same cases, else None."""
    pairs = model.local_vs_remote(runs)
    if not pairs:
        return None
    return ("local-remote", "Local vs across hosts",
            note(LOCAL_REMOTE_NOTE) + local_remote_table(pairs, runs))


def problems_table(runs):
    """Failed and skipped cases with their reasons, or a line saying none."""
    rows = []
    for run in runs:
        for case in run.cases.values():
            if case.status in ("failed", "skipped"):
                host = f"<td>{escape(run.label)}</td>" if len(runs) > 1 else ""
                rows.append(f"<tr>{host}<td>{escape(case.key.label())}</td>"
                            f'<td class="status-{case.status}">{case.status}</td>'
                            f'<td class="reason">{escape(case.message)}</td></tr>')
    if not rows:
        return note("Every case was measured: none failed, none was skipped.")
    host_head = '<th data-type="text">host</th>' if len(runs) > 1 else ""
    return (f'<div class="table-wrap"><table class="data sortable" id="problems-table"><thead><tr>'
            f'{host_head}<th data-type="text">case</th><th data-type="text">status</th>'
            f'<th data-type="text">reason</th></tr></thead><tbody>{"".join(rows)}</tbody>'
            "</table></div>")


def flagged_table(runs):
    """The cases the sanity gate flagged, with the reason: measured, but
    measurement errors, so they appear here and nowhere else."""
    rows = []
    for run in runs:
        for case in run.flagged_cases():
            fld, value = case.figure()
            fmt = units.ns if fld == "p50_ns" else units.bytes_per_second
            figure_text = (f"{'p50' if fld == 'p50_ns' else 'throughput'} {fmt(value)}"
                           if value is not None else "")
            f = run.floor(case)
            floor_text = f"{f.label} {f.value_text()}".strip() if f and f.name else ""
            host = f"<td>{escape(run.label)}</td>" if len(runs) > 1 else ""
            rows.append(f"<tr>{host}<td>{escape(case.key.label())}</td>"
                        f"<td>{escape(', '.join(str(c) for c in case.cpus) or '–')}</td>"
                        f'<td class="reason">{escape(case.message)}</td>'
                        f'<td class="num not-a-result">{escape(figure_text)}</td>'
                        f"<td>{escape(floor_text)}</td></tr>")
    if not rows:
        if any("flagged" in r.meta for r in runs):
            return note("The sanity gate flagged no case: no result is below a calibration "
                        "floor or above the copy bandwidth.")
        return note("This file predates the sanity gate (no ipcbench.flagged): no case "
                    "was checked against the calibration floors.")
    host_head = '<th data-type="text">host</th>' if len(runs) > 1 else ""
    return (note("The sanity gate found these figures impossible (e.g. a round trip "
                 "below the cache-line floor, or a throughput above the memcpy bandwidth "
                 "of a copying mechanism): they are measurement errors, not results, and "
                 "are left out of every plot and of the case table.", "warning")
            + f'<div class="table-wrap"><table class="data sortable" id="flagged-table">'
            f"<thead><tr>{host_head}"
            '<th data-type="text">case</th><th data-type="text">CPUs</th>'
            '<th data-type="text">why it is a measurement error</th>'
            '<th data-type="text">figure reported (not a result)</th>'
            '<th data-type="text">floor</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


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


def plot_sections(runs, styles, size):
    """The figure sections in reading order: (id, title, html)."""
    out = []
    if _has_data(runs, "latency"):
        out.append(("latency", "Latency vs message size", figure(
            plots.latency_vs_size(runs, styles), "latency", "Latency vs message size",
            "Median (p50) round-trip time per mechanism, line and markers; the whisker "
            "above each point reaches the p99. Both axes logarithmic. Lower is better.")))
    else:
        out.append(("latency", "Latency vs message size", note("No latency case was measured.")))
    if _has_data(runs, "throughput"):
        out.append(("throughput", "Throughput vs message size", figure(
            plots.throughput_vs_size(runs, styles), "throughput", "Throughput vs message size",
            "Payload bytes per second of the throughput pattern (runner streams, peer "
            "receives). Both axes logarithmic; decimal units (1 GB/s = 10⁹ B/s). "
            "Higher is better.")))
    else:
        out.append(("throughput", "Throughput vs message size",
                    note("No throughput case was measured.")))
    out += per_size_sections(runs, styles, size)
    return out


def per_size_sections(runs, styles, size):
    """Distribution and CPU cost at the chosen size, then the optional views."""
    out = []
    sz = units.size(size)
    if _has_data(runs, "latency"):
        out.append(("distribution", f"Latency distribution at {sz}", figure(
            plots.distribution(runs, styles, size), "distribution", "Latency distribution",
            f"Round-trip time at each percentile for {sz} messages (all repetitions merged), "
            "HdrHistogram style: the x axis is 1/(1−p), so 90%, 99%, 99.9%... are evenly "
            "spaced and the tail is visible. The maximum (100%) is not drawn. "
            "Choose the size with --size.")))
        out.append(("cpu", f"CPU cost per message at {sz}", figure(
            plots.cpu_cost(runs, styles, size), "cpu", "CPU cost per message",
            f"Left: CPU time per round trip (runner + peer, user + system) against p50 "
            f"latency for {sz} messages. A mechanism on the '2 CPUs busy' line spins on "
            "both sides; blocking mechanisms sit well below the '1 CPU busy' line. "
            "Right: the same cost split between runner (solid) and peer (hatched).")))
    out.append(modes_section(runs, size))
    out.append(floor_section(runs, styles))
    if len(runs) > 1:
        out.append(("hosts", f"Across result files at {sz}", figure(
            plots.across_hosts(runs, size), "hosts", "Across result files",
            f"Each mechanism's p50 latency and throughput at {sz} (sync mode), "
            "one bar per result file, so the same mechanism can be compared across machines.")))
    return out


MODES_INTRO = (
    "Each mechanism's sync figure beside its async figure of the same case, only where the "
    "two mean the same thing: throughput always (both stream); latency only when the async "
    "case is a closed loop at window 1 (one message at a time, like sync). A pair whose "
    "sides waited differently is labelled (e.g. 'sync blocks, async spins'): a spinning "
    "async beating a sleeping sync is the harness's choice of waiting, not a property of "
    "the mechanism.")


def loop_note(runs):
    """The two sentences on closed- and open-loop async latency, when the
    runs have async latency (else '')."""
    if not any(c.key.mode == "async" and c.key.pattern == "latency"
               for r in runs for c in table_cases(r)):
        return ""
    return (f'<p class="note" id="async-loops">{escape(model.CLOSED_LOOP_TEXT)} '
            f"{escape(model.OPEN_LOOP_TEXT)}</p>")


def modes_section(runs, size):
    """The sync-vs-async view: the pairs that mean the same thing as bars
    and a table, a line on the pairs left out and why."""
    title = "Sync vs async"
    pairs = model.sync_vs_async(runs)
    loops = loop_note(runs)
    if not pairs:
        if not any(plots.multi_mode_mechanisms(r) for r in runs):
            modes = sorted({m for r in runs for m in r.modes()})
            return ("modes", title, note(
                f"Only the {', '.join(modes)} mode was measured, so there is nothing to set "
                "side by side. Run with --modes sync,async (when the suite has async) to "
                "compare them.") + loops)
        return ("modes", title, note(
            "No case was measured in both modes (the same mechanism, pattern, size and "
            "placement, sync and async), so there is nothing to set side by side.") + loops)
    body = note(MODES_INTRO) + loops
    fig = plots.modes_side_by_side(runs, size, pairs)
    if fig is not None:
        body += figure(fig, "modes", title,
                       f"Sync and async bars per mechanism: p50 latency at {units.size(size)} "
                       "(closed-loop async at window 1 only) and throughput. A second line "
                       "under a mechanism says how the two sides waited when they differ, "
                       "and what limited a throughput figure (‡ harness-limited: the "
                       "harness's flow control held the sender; buffer full: the "
                       "mechanism's own buffer was full most of the time). Log axes.")
    line = model.left_out_line(pairs)
    if line:
        body += f'<p class="note" id="modes-left-out">{escape(line)}</p>'
    shown = [p for p in pairs if not p.left_out]
    if shown:
        body += sync_async_table(shown, runs)
    return ("modes", title, body)


def pair_wait_text(pair):
    """'sync blocks, async spins' when the sides waited differently, 'both
    block' when alike, '' when a side does not say."""
    label = pair.wait_label()
    if label:
        return label
    w = pair.sync.wait
    return f"both {w}" if w and w == pair.async_case.wait else ""


def sync_async_table(pairs, runs):
    """One row per sync-vs-async pair shown: the two figures, async / sync,
    how the async case kept messages in flight, how each side waited and
    what else limited a figure."""
    multi = len(runs) > 1
    head = ([("host", "text")] if multi else []) + [
        ("mechanism", "text"), ("pattern", "text"), ("size", "num"), ("placement", "text"),
        ("sync", "num"), ("async", "num"), ("async / sync", "num"),
        ("async in flight", "text"), ("wait", "text"), ("note", "text")]
    body = []
    for p in pairs:
        k = p.key
        fmt = units.ns if p.metric == "p50_ns" else units.bytes_per_second
        wait = pair_wait_text(p)
        notes = "; ".join(p.notes())
        cells = ([(p.run.label, p.run.label, "")] if multi else []) + [
            (k.series(), k.series(), ""),
            (k.pattern, ("p50 " if k.pattern == "latency" else "") + k.pattern, ""),
            (k.size, units.size(k.size), "num"), (k.placement, k.placement, ""),
            (p.sync_value, fmt(p.sync_value), "num"), (p.async_value, fmt(p.async_value), "num"),
            (p.ratio, units.ratio(p.ratio) if p.ratio is not None else "", "num ratio"),
            (p.in_flight.text(), p.in_flight.text(), ""),
            (wait, wait, "wait-differs" if p.wait_label() else ""),
            (notes, notes, "limited" if notes else "")]
        body.append("<tr>" + "".join(
            f'<td class="{cls}" data-v="{"" if v is None else escape(str(v), quote=True)}">'
            f"{escape(text)}</td>" for v, text, cls in cells) + "</tr>")
    thead = "".join(f'<th data-type="{t}">{escape(h)}</th>' for h, t in head)
    return (f'<div class="table-wrap"><table class="data sortable" id="sync-async-table">'
            f"<thead><tr>{thead}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
            + note("async / sync: the async figure over the sync one (latency under 1×: "
                   "async is faster; throughput over 1×: async moves more)."))


FLOOR_CAPTION = (
    "Each mechanism next to the floor that applies to it, the figures the suite "
    "measured on the same CPUs in this run (black lines: the run's calibration; a "
    "dash in a mechanism's colour: its floor re-measured right before its case, as "
    "the suite does for spinning mechanisms). Latency: p50 round trip against the "
    "payload round trip (spinning shared memory, async) or the futex wake-up round "
    "trip (mechanisms that sleep); × floor = p50 / floor. Throughput: bytes/s against "
    "the cross-core copy (shared memory) or memcpy bandwidth (copying mechanisms); "
    "× floor = floor / throughput. 1× is at the floor. Log axes; cases flagged as "
    "measurement errors are not drawn.")


def _fig_suffix(runs, r, place):
    return f"{r}-{place}" if len(runs) > 1 else place


def floor_section(runs, styles):
    """One figure per run and placement with floors, and why the others have none."""
    title = "Against the calibration floor"
    parts = []
    for r, run in enumerate(runs):
        for place in run.placements():
            heading = f"{place} (CPUs {', '.join(map(str, _placement_cpus(run, place)))})"
            if len(runs) > 1:
                heading = f"{run.label}: {heading}"
            body = ""
            if plots.has_floor_data(run, place):
                body += figure(plots.floor_plot(run, place, styles),
                               f"floor-{_fig_suffix(runs, r, place)}",
                               f"Against the floor, {place}", FLOOR_CAPTION)
            body += _floor_notes(run, place)
            if body:
                parts.append(f'<div class="floor-placement"><h3>{escape(heading)}</h3>'
                             f"{body}</div>")
    if parts:
        return ("floor", title, "\n".join(parts))
    skipped = [r for r in runs if r.has_calibration_field and not r.calibration]
    if skipped:
        return ("floor", title, "".join(note(
            f"{r.label}: calibration was skipped ({r.calibration_note or 'no reason given'}), "
            "so there is no floor to draw.") for r in skipped))
    return ("floor", title, note(
        "This run has no calibration data (ipcbench.calibration), so there is no floor "
        "to draw. Suites that measure the hardware floor (cache-line and payload round "
        "trips, futex wake-up, memcpy and cross-core copy bandwidth) add it, and this "
        "plot appears."))


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
    once, with how many cases it covers."""
    notes = {}
    for c in run.case_list():
        if c.key.placement != place:
            continue
        f = run.floor(c)
        if f is not None and f.name is None:
            notes[f.note or "no floor applies"] = notes.get(f.note or "no floor applies", 0) + 1
    return "".join(note(f"No floor for {n} case(s): {text}.") for text, n in notes.items())


# --- calibration ------------------------------------------------------------
def _fig(v, fmt, missing="not measured"):
    return fmt(v) if units.is_number(v) else missing


def calibration_tables(run, r, multi):
    """One table per placement: the clock read, the harness's own cost, the
    cache-line and futex round trips, then per size the payload round trip
    and the memcpy and cross-core copy bandwidths; the notes below."""
    cal = run.calibration
    out = []
    sizes = sorted({int(s) for p in run.calibration_placements().values()
                    for k in ("payload_rtt_ns", "memcpy_bytes_per_second",
                              "cross_core_copy_bytes_per_second")
                    if isinstance(p.get(k), dict) for s in p[k] if str(s).isdigit()})
    for place, figs in run.calibration_placements().items():
        ident = f"{r}-{place}" if multi else place
        cl, cl_min = figs.get("cache_line_rtt_ns"), figs.get("cache_line_rtt_min_ns")
        cache_line = _fig(cl, units.ns)
        if units.is_number(cl) and units.is_number(cl_min):
            cache_line += f" (min {units.ns(cl_min)})"
        pairs = [
            ("CPUs", ", ".join(str(c) for c in figs.get("cpus") or []) or "not pinned"),
            ("clock read", _fig(cal.get("clock_read_ns"), units.ns)),
            ("harness cost per round trip", _fig(cal.get("harness_ns"), units.ns)),
            ("cache-line round trip (p50)", cache_line),
            ("futex wake-up round trip", _fig(figs.get("futex_rtt_ns"), units.ns)),
        ]
        rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in pairs)
        per_size = []
        for s in sizes:
            cells = [units.size(s)]
            for key, fmt in (("payload_rtt_ns", units.ns),
                             ("memcpy_bytes_per_second", units.bytes_per_second),
                             ("cross_core_copy_bytes_per_second", units.bytes_per_second)):
                v = figs.get(key)
                cells.append(_fig(v.get(str(s)) if isinstance(v, dict) else None, fmt))
            per_size.append("<tr>" + "".join(
                f'<td class="{"num" if i else ""}">{escape(c)}</td>'
                for i, c in enumerate(cells)) + "</tr>")
        notes = [n for n in figs.get("notes") or [] if isinstance(n, str)]
        notes_html = ("<ul class=\"calibration-notes\">"
                      + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>") if notes else ""
        out.append(
            f'<div class="calibration-placement" id="calibration-{escape(ident, quote=True)}">'
            f"<h3>{escape((run.label + ': ') if multi else '')}{escape(place)}</h3>"
            f'<table class="kv calibration">{rows}</table>'
            + (f'<table class="data calibration-sizes"><thead><tr><th>size</th>'
               "<th>payload round trip</th><th>memcpy</th><th>cross-core copy</th></tr>"
               f"</thead><tbody>{''.join(per_size)}</tbody></table>" if per_size else "")
            + notes_html + "</div>")
    return out


def calibration_section(runs):
    """The floors the run measured, per placement, before the cases."""
    multi = len(runs) > 1
    parts, lines = [], []
    for r, run in enumerate(runs):
        prefix = f"{run.label}: " if multi else ""
        if run.calibration:
            tables = calibration_tables(run, r, multi)
            if tables:
                parts += tables
            else:
                lines.append(note(f"{prefix}the calibration has no per-placement figures "
                                  "(a layout this report does not know), so none is shown."))
        elif run.has_calibration_field:
            lines.append(note(f"{prefix}calibration was skipped: "
                              f"{run.calibration_note or 'no reason given'}."))
        else:
            lines.append(note(f"{prefix}no calibration in this file (the suite that wrote it "
                              "did not measure the floors)."))
    intro = note("Measured in the same run, on the cases' own CPUs: the floors no mechanism "
                 "can beat. A same-cpu placement has no spinning floors (cache-line, payload "
                 "round trip, cross-core copy): two processes on one CPU cannot spin against "
                 "each other.") if parts else ""
    body = intro + "".join(lines) + (
        '<div class="calibration-grid">' + "".join(parts) + "</div>" if parts else "")
    return ("calibration", "Calibration", body)


def render_report(runs, size=None, title=None):
    """The whole report page for one or more runs."""
    mechs = []
    for run in runs:
        mechs += [m for m in run.mechanisms() if m not in mechs]
    places = []
    for run in runs:
        places += [p for p in run.configured_placements() + run.placements()
                   if p not in places]
    styles = plots.Styles(mechs, places)
    size = choose_size(runs, size)
    side_by_side = local_remote_section(runs)
    sections = (([side_by_side] if side_by_side else []) + [calibration_section(runs)]
                + plot_sections(runs, styles, size))
    sections.append(("cases", "All cases", note(
        "Click a column header to sort; click again to reverse. Values are medians over "
        "repetitions when the run had several (cv: coefficient of variation across the "
        "repetitions of p50 for latency, of throughput for throughput; over 5% is "
        f"marked {UNSTABLE_MARK}). × floor: how far the case is from the floor that "
        "applies to it (see the calibration). Cases flagged as measurement errors are "
        "not listed here."
        + (" where: local (the peer on this host) or remote (the peer on the remote host; "
           "no floor, and no one-way latency, across hosts)."
           if any(r.has_remote_cases() for r in runs) else "")
        + cases_columns_text(runs)) + limits_legend_html(runs) + cases_table(runs)))
    sections.append(("flagged", "Flagged as measurement errors", flagged_table(runs)))
    sections.append(("problems", "Failed and skipped cases", problems_table(runs)))
    return template("report.html").substitute(
        title=escape(title or default_title(runs)),
        lead=escape(lead_line(runs)),
        toc=" ".join(f'<a href="#{i}">{escape(t)}</a>' for i, t, _ in
                     [("context", "Run context", "")] + sections),
        warnings=warnings_html(runs),
        context="\n".join(context_block(r, r.label) for r in runs),
        sections="\n".join(section(i, t, body) for i, t, body in sections),
        sources=escape(", ".join(r.path.name for r in runs)),
        style=asset("style.css"),
        script=asset("sortable.js"),
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
    lines = limit_legend(runs)
    if not lines:
        return ""
    return ('<ul class="note limits-legend" id="limits-legend">'
            + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>")


def default_title(runs):
    if len(runs) == 1:
        return f"ipcbench results: {runs[0].label}"
    return f"ipcbench results: {len(runs)} runs ({', '.join(r.label for r in runs)})"


def lead_line(runs):
    mechs = {m for r in runs for m in r.mechanisms()}
    return f"{len(mechs)} mechanisms; {counts_line(runs)}."


def warnings_html(runs):
    """Warnings a reader must see before trusting the numbers."""
    out = []
    for run in runs:
        if not run.complete:
            out.append(note(f"{run.label}: this run was interrupted ('complete': false); "
                            "cases not run appear as failed.", "warning"))
        flagged = run.flagged_cases()
        if flagged:
            out.append(note(f"{run.label}: {len(flagged)} case(s) flagged as measurement "
                            "errors by the sanity gate; they are not shown as results (see "
                            "'Flagged as measurement errors').", "warning"))
        unstable = run.unstable_cases()
        if unstable:
            out.append(note(f"{run.label}: {len(unstable)} case(s) unstable (cv over 5% "
                            f"across repetitions), marked {UNSTABLE_MARK} in the case table.",
                            "warning"))
    return "\n".join(out)


def render_compare(result):
    """The compare diff page: verdict, the runs, a change chart and table."""
    from . import compare as cmp
    regressed = escape(", ".join(result.regressed))
    if result.nothing_paired:
        verdict = (f'<p class="warning"><strong>Nothing compared</strong>: '
                   f"{escape(cmp.nothing_paired_line(result))}.</p>")
    else:
        verdict = (f'<p class="warning"><strong>Regression</strong>: {regressed}</p>'
                   if result.regressed else note("No regression."))
    verdict += "".join(f"<p>{escape(line)}</p>" for line in cmp.method_lines(result))
    sys_lines = cmp.syscall_lines(result)
    verdict += f"<p>{escape(sys_lines[0])}</p>"
    if len(sys_lines) > 1:
        verdict += "<ul>" + "".join(f"<li>{escape(line.strip())}</li>"
                                    for line in sys_lines[1:]) + "</ul>"
    rows = [ch.as_row() for ch in result.changes]
    chart = (figure(plots.compare_changes(rows, result.threshold), "compare", "Changes",
                    "Each compared metric's change, signed so that positive is worse "
                    "(latency up, throughput down).")
             if any(r["worse_pct"] is not None for r in rows) else note("No metric to compare."))
    return template("compare.html").substitute(
        title=escape(f"ipcbench compare: {result.base.path.name} → {result.new.path.name}"),
        lead=escape(cmp.summary_line(result)),
        warnings="\n".join(note(f"Warning: {w}", "warning")
                           for w in result.warnings + result.notes),
        verdict=verdict,
        context="\n".join(context_block(r, f"{side}: {r.label}")
                          for side, r in (("base", result.base), ("new", result.new))),
        chart=chart,
        table=compare_table(result),
        unmatched=unmatched_html(result),
        style=asset("style.css"),
        script=asset("sortable.js"),
    )


def compare_table(result):
    """Every compared metric, sortable."""
    from . import compare as cmp
    head = [("case", "text"), ("metric", "text"), ("base", "num"), ("new", "num"),
            ("change", "num"), ("p-value", "num"), ("noise", "text"), ("detectable", "num"),
            ("method", "text"), ("verdict", "text")]
    body = []
    for ch in result.changes:
        cells = [
            (ch.case, ch.case, ""), (ch.metric, ch.metric, ""),
            (ch.base, ch.fmt(ch.base), "num"), (ch.new, ch.fmt(ch.new), "num"),
            (ch.change_pct, units.percent_change(ch.change_pct), "num"),
            (ch.p_value, cmp.p_text(ch.p_value), "num"),
            (None, cmp.noise_text(ch), ""),
            (ch.detectable_pct, cmp.detectable_text(ch), "num"), (ch.method, ch.method, ""),
            (ch.verdict, cmp.verdict_text(ch.verdict), f"verdict-{ch.verdict.replace(' ', '-')}"),
        ]
        body.append("<tr>" + "".join(
            f'<td class="{cls}" data-v="{"" if v is None else escape(str(v), quote=True)}">'
            f"{escape(t)}</td>" for v, t, cls in cells) + "</tr>")
    thead = "".join(f'<th data-type="{t}">{escape(h)}</th>' for h, t in head)
    return (f'<div class="table-wrap"><table class="data sortable" id="changes-table">'
            f"<thead><tr>{thead}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def unmatched_html(result):
    """Cases not compared: status changes, flagged cases, cases measured
    under different settings and cases present on one side only."""
    items = [f"<li><code>{escape(label)}</code>: base {escape(b)}, new {escape(n)}: "
             f"<strong>{escape(what)}</strong></li>" for label, b, n, what in result.status_changes]
    items += [f'<li class="flagged"><code>{escape(label)}</code>: <strong>flagged as a '
              f"measurement error</strong>, not compared ({escape(reasons)})</li>"
              for label, _b, _n, reasons in result.flagged]
    items += [f'<li class="mismatched"><code>{escape(m.case)}</code>: '
              f"<strong>{escape(m.what())}</strong></li>" for m in result.mismatched]
    items += [f"<li><code>{escape(c.key.label())}</code>: only in base ({escape(c.status)})</li>"
              for c in result.only_base]
    items += [f"<li><code>{escape(c.key.label())}</code>: only in new ({escape(c.status)})</li>"
              for c in result.only_new]
    if not items:
        return ""
    return section("unmatched", "Not compared", "<ul>" + "".join(items) + "</ul>")
