"""The HTML report: templates/report.html filled from the model.

One self-contained file: the CSS and the sort script are inlined from
templates/, every plot is an inline <svg>, so the page can be attached to a
CI run, mailed, or opened years later without a network.
"""

from html import escape
from pathlib import Path
from string import Template

from . import plots, units

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
        ("CPUs requested", ", ".join(str(c) for c in cfg.get("cpus", []))),
        ("timeout / verify", f"{cfg.get('timeout_s')} s / {cfg.get('verify')}"),
        ("benchmark args", " ".join(cfg.get("benchmark_args", [])) or "none"),
        ("command line", " ".join(cfg.get("command_line", []))),
    ]


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


def context_block(run, heading):
    return f"<div><h3>{escape(heading)}</h3>{kv_table(context_pairs(run))}</div>"


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


CASE_COLUMNS = [
    ("mechanism", False, lambda r, c: (c.key.mechanism, c.key.mechanism)),
    ("mode", False, lambda r, c: (c.key.mode, c.key.mode)),
    ("pattern", False, lambda r, c: (c.key.pattern, c.key.pattern)),
    ("size", True, lambda r, c: (c.key.size, units.size(c.key.size))),
    ("placement", False, lambda r, c: (c.key.placement, c.key.placement)),
    ("status", False, lambda r, c: (c.status, c.status)),
    ("reps", True, lambda r, c: (c.repetitions, str(c.repetitions))),
    ("p50", True, _num("p50_ns", units.ns)),
    ("p90", True, _num("p90_ns", units.ns)),
    ("p99", True, _num("p99_ns", units.ns)),
    ("p99.9", True, _num("p999_ns", units.ns)),
    ("max", True, _num("max_ns", units.ns)),
    ("time/msg", True, _num("real_time", units.ns)),
    ("throughput", True, _num("bytes_per_second", units.bytes_per_second)),
    ("msg rate", True, _num("items_per_second", units.per_second)),
    ("runner CPU/msg", True, _num("runner_cpu_ns_per_msg", units.ns)),
    ("peer CPU/msg", True, _num("peer_cpu_ns_per_msg", units.ns)),
    ("ctx sw/msg", True, lambda r, c: _cell(_sum(c.value("runner_ctx_switches_per_msg"),
                                                  c.value("peer_ctx_switches_per_msg")),
                                             lambda v: f"{v:.2f}")),
    ("lost", True, _num("messages_lost", units.count)),
    ("cv", True, lambda r, c: _cell(c.cv("real_time"), lambda v: f"{100 * v:.1f}%")),
]
FLOOR_COLUMN = ("× floor", True, lambda r, c: _cell(r.floor_ratio(c), units.ratio))
HOST_COLUMN = ("host", False, lambda r, c: (r.label, r.label))


def _sum(a, b):
    return None if a is None or b is None else a + b


def cases_table(runs):
    """Every case of every file, one row each, sortable by any column."""
    columns = list(CASE_COLUMNS)
    if any(r.floor_ratio(c) is not None for r in runs for c in r.cases.values()):
        columns.append(FLOOR_COLUMN)
    if len(runs) > 1:
        columns.insert(0, HOST_COLUMN)
    head = "".join(f'<th data-type="{"num" if num else "text"}">{escape(h)}</th>'
                   for h, num, _ in columns)
    body = []
    for run in runs:
        for case in run.cases.values():
            cells = []
            for _h, num, fn in columns:
                value, text = fn(run, case)
                cls = ' class="num"' if num else ""
                if _h == "status" and case.status != "ok":
                    cls = f' class="status-{case.status}"'
                data = "" if value is None else escape(str(value), quote=True)
                cells.append(f'<td{cls} data-v="{data}">{escape(text)}</td>')
            body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="table-wrap"><table class="data sortable" id="cases-table">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def problems_table(runs):
    """Failed and skipped cases with their reasons, or a line saying none."""
    rows = []
    for run in runs:
        for case in run.cases.values():
            if case.status != "ok":
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


def counts_line(runs):
    """'42 cases measured, 4 skipped, 0 failed' over every file."""
    statuses = [c.status for r in runs for c in r.cases.values()]
    return (f"{statuses.count('ok')} cases measured, {statuses.count('skipped')} skipped, "
            f"{statuses.count('failed')} failed")


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
        out.append(("hosts", f"Across hosts at {sz}", figure(
            plots.across_hosts(runs, size), "hosts", "Across hosts",
            f"Each mechanism's p50 latency and throughput at {sz} (sync mode), "
            "one bar per result file, so the same mechanism can be compared across machines.")))
    return out


def modes_section(runs, size):
    title = "Sync vs async"
    if not any(plots.multi_mode_mechanisms(r) for r in runs):
        modes = sorted({m for r in runs for m in r.modes()})
        return ("modes", title, note(
            f"Only the {', '.join(modes)} mode was measured, so there is nothing to set side "
            "by side. Run with --modes sync,async (when the suite has async) to compare them."))
    return ("modes", title, figure(
        plots.modes_side_by_side(runs, size), "modes", title,
        f"p50 latency at {units.size(size)} and throughput per mechanism measured in more "
        "than one mode, one bar per mode. Log axes."))


def floor_section(runs, styles):
    title = "Against the calibration floor"
    if not any(r.calibration for r in runs):
        return ("floor", title, note(
            "This run has no calibration data (ipcbench.calibration), so there is no floor "
            "to draw. Suites that measure the hardware floor (cache-line and payload round "
            "trips, memcpy bandwidth) add it, and this plot appears."))
    return ("floor", title, figure(
        plots.floor_plot(runs, styles), "floor", title,
        "Left: p50 round-trip latency per mechanism next to the calibrated floor (black "
        "line: the fastest round trip the hardware allows at that size). Right: each "
        "mechanism's p50 as a multiple of the floor (1× = at the floor). Log axes."))


def render_report(runs, size=None, title=None):
    """The whole report page for one or more runs."""
    mechs = []
    for run in runs:
        mechs += [m for m in run.mechanisms() if m not in mechs]
    styles = plots.Styles(mechs)
    size = choose_size(runs, size)
    sections = plot_sections(runs, styles, size)
    sections.append(("cases", "All cases", note(
        "Click a column header to sort; click again to reverse. Values are medians over "
        "repetitions when the run had several (cv: coefficient of variation of the time "
        "per message).") + cases_table(runs)))
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
    return "\n".join(out)


def render_compare(result):
    """The compare diff page: verdict, the runs, a change chart and table."""
    from . import compare as cmp
    regressed = escape(", ".join(result.regressed))
    verdict = (f'<p class="warning"><strong>Regression</strong>: {regressed}</p>'
               if result.regressed else note("No regression."))
    verdict += "".join(f"<p>{escape(line)}</p>" for line in cmp.method_lines(result))
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
            ("change", "num"), ("p-value", "num"), ("method", "text"), ("verdict", "text")]
    body = []
    for ch in result.changes:
        cells = [
            (ch.case, ch.case, ""), (ch.metric, ch.metric, ""),
            (ch.base, ch.fmt(ch.base), "num"), (ch.new, ch.fmt(ch.new), "num"),
            (ch.change_pct, units.percent_change(ch.change_pct), "num"),
            (ch.p_value, cmp.p_text(ch.p_value), "num"), (ch.method, ch.method, ""),
            (ch.verdict, cmp.verdict_text(ch.verdict), f"verdict-{ch.verdict}"),
        ]
        body.append("<tr>" + "".join(
            f'<td class="{cls}" data-v="{"" if v is None else escape(str(v), quote=True)}">'
            f"{escape(t)}</td>" for v, t, cls in cells) + "</tr>")
    thead = "".join(f'<th data-type="{t}">{escape(h)}</th>' for h, t in head)
    return (f'<div class="table-wrap"><table class="data sortable" id="changes-table">'
            f"<thead><tr>{thead}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def unmatched_html(result):
    """Cases not compared: status changes and cases present on one side only."""
    items = [f"<li><code>{escape(label)}</code>: base {escape(b)}, new {escape(n)}: "
             f"<strong>{escape(what)}</strong></li>" for label, b, n, what in result.status_changes]
    items += [f"<li><code>{escape(c.key.label())}</code>: only in base ({escape(c.status)})</li>"
              for c in result.only_base]
    items += [f"<li><code>{escape(c.key.label())}</code>: only in new ({escape(c.status)})</li>"
              for c in result.only_new]
    if not items:
        return ""
    return section("unmatched", "Not compared", "<ul>" + "".join(items) + "</ul>")
