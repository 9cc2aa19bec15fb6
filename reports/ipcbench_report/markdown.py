"""The Markdown summary: a compact table for a CI job summary or a PR comment.

One row per mechanism (per host, mode and placement when those vary), p50
and p99 latency and throughput at a few sizes, the best of each column in
bold, so a reviewer sees the standings without opening the HTML report.
With calibration, a "× floor" column per size says how far each mechanism
is from the floor that applies to it; unstable figures carry a marker, and
cases flagged as measurement errors are listed, never tabulated. Cases
measured across hosts (a remote run) have their own rows ('`tcp` (remote)'),
and when the inputs hold both, a "Local vs across hosts" table sets each
remote case beside the same case measured locally. Async rows say how their
latency kept messages in flight (window, open-loop rate); a "Sync vs async"
table pairs sync and async figures only where they mean the same thing;
† and ‡ mark figures a sender behind its schedule or the harness's flow
control set.
"""

from . import model, units

DEFAULT_SIZES = (64, 1024, 16384, 262144)
MAX_SIZES = 4
UNSTABLE_MARK = "⚠"
FLAGGED_CELL = "flagged"


def summary_sizes(runs):
    """The sizes the table shows: all measured sizes when there are few,
    else the suite's default sizes among them."""
    present = sorted({c.key.size for r in runs for c in r.case_list()})
    if len(present) <= MAX_SIZES:
        return present
    defaults = [s for s in DEFAULT_SIZES if s in present]
    return defaults or present[:MAX_SIZES]


class Row(tuple):
    """(run, mechanism, mode, placement) of a table row, and where its cases
    were measured ('local', or 'remote': across hosts)."""

    def __new__(cls, run, mech, mode, place, where=model.LOCAL):
        row = super().__new__(cls, (run, mech, mode, place))
        row.where = where
        return row


def row_keys(runs):
    """(run, mechanism, mode, placement) for every row, in registry order,
    each mechanism's across-hosts row after its local one; the label shows
    only the parts that vary."""
    rows = []
    for run in runs:
        for mech in run.mechanisms():
            for where in (model.LOCAL, model.REMOTE):
                for mode in run.modes():
                    for place in run.placements() or ["unknown"]:
                        if any(c.key.mechanism == mech and c.key.mode == mode
                               and c.key.placement == place and c.key.where == where
                               for c in run.case_list()):
                            rows.append(Row(run, mech, mode, place, where))
    return rows


def _find(run, mech, mode, place, pattern, size, status="ok", where=model.LOCAL):
    for c in run.case_list(pattern, status):
        k = c.key
        if (k.mechanism, k.mode, k.placement, k.size, k.where) == (mech, mode, place, size,
                                                                     where):
            return c
    return None


def _where(place):
    """The where of a row's placement argument: a Row's, else local."""
    return getattr(place, "where", model.LOCAL)


def has_floors(runs):
    """True when some tabulated case has a floor ratio (file or calibration)."""
    return any(r.floor_ratio(c) is not None for r in runs for c in r.case_list())


def columns(sizes, floors=False):
    """(header, pattern, field, formatter, lower_is_better, size) per column;
    pattern None is the floor-ratio column (latency / throughput ratios)."""
    out = []
    for s in sizes:
        sz = units.size(s)
        out.append((f"p50 {sz}", "latency", "p50_ns", units.ns, True, s))
        out.append((f"p99 {sz}", "latency", "p99_ns", units.ns, True, s))
        out.append((f"throughput {sz}", "throughput", "bytes_per_second",
                    units.bytes_per_second, False, s))
        if floors:
            out.append((f"× floor {sz}", None, "floor_ratio", units.ratio, True, s))
    return out


def _best(values, lower):
    nums = [v for v in values if v is not None]
    if len(nums) < 2:
        return None
    return min(nums) if lower else max(nums)


def row_label(mech, mode, place, runs, where=model.LOCAL):
    """The mechanism ('(remote)' across hosts), plus mode and placement when
    they vary across the rows."""
    parts = [f"`{mech}`" + (" (remote)" if where == model.REMOTE else "")]
    if len({m for r in runs for m in r.modes()}) > 1:
        parts.append(mode)
    if len({p for r in runs for p in r.placements()}) > 1:
        parts.append(place)
    return " ".join(parts)


def cell_value(run, mech, mode, place, column, size=None, where=model.LOCAL):
    """The value of one cell, or None when the case was not measured (or is
    flagged: a measurement error is never a value in the table)."""
    _header, pattern, fld, _fmt, _lower, col_size = column
    case = _find(run, mech, mode, place, pattern, col_size if size is None else size,
                 where=where)
    return case.value(fld) if case else None


def cell_text(run, mech, mode, place, column, value, best, where=model.LOCAL):
    """A cell's text: the value (bold when best), the unstable marker, or
    'flagged' when the case is a measurement error."""
    _header, pattern, fld, fmt, _lower, size = column
    if pattern is None:
        return floor_cell(run, mech, mode, place, size, where)
    case = _find(run, mech, mode, place, pattern, size, status=None, where=where)
    if case is not None and case.status == "flagged":
        return FLAGGED_CELL
    if value is None:
        return "–"
    text = fmt(value)
    text = f"**{text}**" if best is not None and value == best else text
    if case.unstable and fld != "p99_ns":
        text += f" {UNSTABLE_MARK}"
    marks = [lim.mark for lim in case.limits() if lim.mark
             and (lim.name == "sender_behind") == (pattern == "latency")]
    if marks:
        text += " " + "".join(marks)
    return text


def floor_cell(run, mech, mode, place, size, where=model.LOCAL):
    """'3.1× / 1.4×': the latency case's p50 / floor, then the floor /
    throughput of the throughput case, at one size; '–' where none (always
    across hosts: the calibration's floors describe this host only)."""
    parts = []
    for pattern in ("latency", "throughput"):
        case = _find(run, mech, mode, place, pattern, size, where=where)
        ratio = run.floor_ratio(case) if case else None
        parts.append(units.ratio(ratio) if ratio is not None else "–")
    return "–" if parts == ["–", "–"] else " / ".join(parts)


def has_async(runs):
    """True when some tabulated case is async: the table then says, per row,
    how its async latency kept messages in flight."""
    return any(c.key.mode == "async" for r in runs for c in r.case_list())


def in_flight_text(run, mech, mode, place, sizes, where=model.LOCAL):
    """An async row's latency loop at the summary's sizes: '1', '16
    (queueing)', 'open loop 2000/s'; per size ('64 B: 1; 4 KiB: 16
    (queueing)') when the sizes differ; '–' for sync or without async
    latency."""
    texts = []
    for size in sizes:
        case = _find(run, mech, mode, place, "latency", size, where=where)
        text = run.in_flight(case).text() if case is not None else ""
        if text:
            texts.append((size, text))
    if len({t for _s, t in texts}) > 1:
        return "; ".join(f"{units.size(s)}: {t}" for s, t in texts)
    return texts[0][1] if texts else "–"


def _like_sync(run, case):
    """False for an async latency case that is not one message at a time
    (open loop, queueing): its figure is no round trip to rank against."""
    return case is None or case.key.pattern != "latency" or case.key.mode != "async" \
        or run.in_flight(case).like_sync


def table(runs):
    """The Markdown table, best value per column in bold (latency: only
    among figures that are round trips of one message at a time)."""
    sizes = summary_sizes(runs)
    cols = columns(sizes, has_floors(runs))
    rows = row_keys(runs)
    grid = [[cell_value(run, m, mo, pl, col, where=row.where) if col[1] else None
             for col in cols] for row in rows for run, m, mo, pl in [row]]
    ranked = [[v if col[1] is None or _like_sync(row[0], _find(
        row[0], row[1], row[2], row[3], col[1], col[5], where=row.where)) else None
               for v, col in zip(values, cols)] for row, values in zip(rows, grid)]
    best = [_best([g[j] for g in ranked], cols[j][4]) if cols[j][1] else None
            for j in range(len(cols))]
    multi = len(runs) > 1
    flight = has_async(runs)
    head = ((["host"] if multi else []) + ["mechanism"] + (["in flight"] if flight else [])
            + [c[0] for c in cols])
    align = ((["---"] if multi else []) + ["---"] + (["---"] if flight else [])
             + ["--:"] * len(cols))
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for row, values, ranks in zip(rows, grid, ranked):
        run, m, mo, pl = row
        cells = [run.label] if multi else []
        cells.append(row_label(m, mo, pl, runs, row.where))
        if flight:
            cells.append(in_flight_text(run, m, mo, pl, sizes, row.where))
        for j, v in enumerate(values):
            cells.append(cell_text(run, m, mo, pl, cols[j], v,
                                   best[j] if ranks[j] is not None else None, row.where))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def context_lines(runs):
    """One line per file: where and what was run."""
    out = []
    for run in runs:
        h, cfg = run.host, run.config
        reps = cfg.get("repetitions", 1)
        out.append(
            f"- **{run.label}**: {h.get('cpu_model')}, {h.get('cpus_online')} CPUs, "
            f"{h.get('kernel')}{', ' + h['hypervisor'] if h.get('hypervisor') else ''}; "
            f"ipcbench {run.meta.get('suite_version')} ({run.meta.get('git_revision')}), "
            f"{run.date or 'date unknown'}; {', '.join(run.placements()) or 'no placement'} "
            f"(CPUs {','.join(str(c) for c in cfg.get('cpus', []))}); "
            f"min time {cfg.get('min_time_s')} s"
            f"{f', median of {reps} repetitions' if reps > 1 else ''}"
            f"{'; **incomplete run**' if not run.complete else ''}")
        cal = calibration_line(run)
        if cal:
            out.append(f"  - {cal}")
        remote = remote_line(run)
        if remote:
            out.append(f"  - {remote}")
    return out


def remote_line(run):
    """A remote run's peer side: the serve host next to the local one."""
    if run.remote is None:
        return ""
    h = run.remote_host
    if not h:
        return (f"across hosts: peer at {run.remote_address} (`ipcbench serve`), host unknown: "
                "the run never got serve's answer")
    cpus = ",".join(str(c) for c in run.remote_cpus) or "unpinned"
    return (f"across hosts: peer on **{h.get('hostname') or 'the remote host'}** "
            f"(`ipcbench serve` at {run.remote_address}): {h.get('cpu_model')}, "
            f"{h.get('cpus_online')} CPUs, {h.get('kernel')}"
            f"{', ' + h['hypervisor'] if h.get('hypervisor') else ''}; serve's CPUs {cpus}; "
            "no floors, no one-way latency")


LOCAL_REMOTE_TEXT = ("Latency: p50 round trip; throughput: payload bytes/s. remote / local "
                     "over 1 is a slower round trip (latency) or more throughput "
                     "(throughput).")


def local_remote_table(runs):
    """The "Local vs across hosts" table (Markdown lines), [] when the inputs
    do not hold both a local and a remote result of some case."""
    pairs = model.local_vs_remote(runs)
    if not pairs:
        return []
    multi = len(runs) > 2
    head = ["mechanism", "mode", "pattern", "size", "placement", "metric", "local",
            "across hosts", "remote / local", "remote host"]
    if multi:
        head[6:6] = ["local run"]
        head[-1:-1] = ["remote run"]
    lines = ["### Local vs across hosts", "",
             "| " + " | ".join(head) + " |",
             "|" + "|".join("--:" if h in ("size", "local", "across hosts", "remote / local")
                            else "---" for h in head) + "|"]
    for p in pairs:
        k = p.remote.key
        fmt = units.ns if p.metric == "p50_ns" else units.bytes_per_second
        cells = [f"`{k.mechanism}`", k.mode, k.pattern, units.size(k.size), k.placement,
                 "p50" if p.metric == "p50_ns" else "throughput",
                 fmt(p.local_value) + (f" {UNSTABLE_MARK}" if p.local.unstable else ""),
                 fmt(p.remote_value) + (f" {UNSTABLE_MARK}" if p.remote.unstable else ""),
                 units.ratio(p.ratio) if p.ratio is not None else "–",
                 p.remote_run.remote_host_label()]
        if multi:
            cells[6:6] = [p.local_run.label]
            cells[-1:-1] = [p.remote_run.label]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines + ["", LOCAL_REMOTE_TEXT]


def oneway_lines(runs):
    """Why across-hosts async latency cases have no one-way figures (once)."""
    notes = []
    for run in runs:
        for c in run.case_list("latency"):
            if c.key.remote and c.key.mode == "async" and c.oneway("oneway_p50_ns") is None:
                note = c.oneway_note or "not reported across hosts"
                if note not in notes:
                    notes.append(note)
    return [f"- one-way latency of the async cases across hosts: {n}" for n in notes]


def calibration_line(run):
    """The harness's own cost and the calibration's state, one line."""
    if run.calibration:
        parts = []
        if run.harness_ns is not None:
            parts.append(f"harness cost {units.ns(run.harness_ns)} per round trip")
        if run.clock_read_ns is not None:
            parts.append(f"clock read {units.ns(run.clock_read_ns)}")
        for place in run.calibration_placements():
            rtt = run.calibrated(place, "cache_line_rtt_ns")
            futex = run.calibrated(place, "futex_rtt_ns")
            figs = [f"cache-line round trip {units.ns(rtt)}" if rtt else "",
                    f"futex round trip {units.ns(futex)}" if futex else ""]
            figs = [f for f in figs if f]
            if figs:
                parts.append(f"{place}: {', '.join(figs)}")
        return "calibration: " + "; ".join(parts) if parts else "calibration: no figures"
    if run.has_calibration_field:
        return f"calibration skipped: {run.calibration_note or 'no reason given'}"
    return ""


def flagged_line(run, prefix=""):
    """One line listing the cases the sanity gate flagged, with reasons."""
    flagged = run.flagged_cases()
    if not flagged:
        return None
    items = "; ".join(f"`{c.key.label()}` ({c.message})" for c in flagged)
    return (f"- {prefix}**flagged as measurement errors** (not results, left out of the "
            f"table): {items}")


def problems_lines(runs):
    """Flagged cases, failed cases with reasons, and a count of skipped ones."""
    out = []
    for run in runs:
        prefix = f"{run.label}: " if len(runs) > 1 else ""
        line = flagged_line(run, prefix)
        if line:
            out.append(line)
        failed = [c for c in run.cases.values() if c.status == "failed"]
        skipped = [c for c in run.cases.values() if c.status == "skipped"]
        for c in failed:
            out.append(f"- {prefix}**failed** `{c.key.label()}`: {c.message}")
        if skipped:
            names = ", ".join(f"`{c.key.mechanism} {units.size(c.key.size)} {c.key.pattern}`"
                              for c in skipped)
            out.append(f"- {prefix}{len(skipped)} skipped (size over the mechanism's limit "
                       f"or not supported): {names}")
    return out


def sync_async_lines(runs):
    """The "Sync vs async" table (Markdown lines): each pair that means the
    same thing (model.sync_vs_async: throughput always, latency only with the
    async case in a closed loop at window 1), labelled when the two sides
    waited differently, then one line on the pairs left out; [] without
    pairs."""
    pairs = model.sync_vs_async(runs)
    if not pairs:
        return []
    shown = [p for p in pairs if not p.left_out]
    multi = len(runs) > 1
    lines = ["### Sync vs async", ""]
    if shown:
        head = (["host"] if multi else []) + ["mechanism", "figure", "sync", "async",
                                              "async / sync", "async in flight", "note"]
        lines += ["| " + " | ".join(head) + " |",
                  "|" + "|".join("--:" if h in ("sync", "async", "async / sync") else "---"
                                 for h in head) + "|"]
        places = len({p.key.placement for p in pairs}) > 1
        for p in shown:
            k = p.key
            fmt = units.ns if p.metric == "p50_ns" else units.bytes_per_second
            label = f"`{k.mechanism}`" + (" (remote)" if k.remote else "") + (
                f" {k.placement}" if places else "")
            notes = [n for n in [p.wait_label()] + p.notes() if n]
            cells = ([p.run.label] if multi else []) + [
                label, f"{'p50' if p.metric == 'p50_ns' else 'throughput'} "
                       f"{units.size(k.size)}",
                fmt(p.sync_value), fmt(p.async_value),
                units.ratio(p.ratio) if p.ratio is not None else "–",
                p.in_flight.text() or "–", "; ".join(notes) or "–"]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines += ["", "Paired only where sync and async mean the same thing: throughput "
                      "(both stream), and latency with the async case in a closed loop at "
                      "window 1. A note such as 'sync blocks, async spins' means the two "
                      "waited differently: the difference is the harness's choice, not the "
                      "mechanism's."]
    left = model.left_out_line(pairs)
    if left:
        lines += ["", left]
    return lines


def footnote(runs):
    """The paragraph under the table: what the columns and markers mean."""
    text = ("p50/p99: round-trip latency of the latency pattern (ping-pong); throughput: "
            "payload bytes per second of the throughput pattern (decimal units). "
            "**Bold**: best in its column.")
    if has_async(runs):
        text += (" in flight: how an async row's latency kept messages in flight: a closed "
                 "loop's window ('16 (queueing)' above 1) or an open loop's rate; an async "
                 "latency figure that is not one message at a time is never bold.")
    if any(c.key.mode == "async" and c.key.pattern == "latency"
           for r in runs for c in r.case_list()):
        text += f" {model.CLOSED_LOOP_TEXT} {model.OPEN_LOOP_TEXT}"
    if has_floors(runs):
        text += (" × floor: latency p50 / its floor, then the floor's bandwidth / "
                 "throughput (1× is at the floor).")
    if any(c.unstable for r in runs for c in r.case_list()):
        text += f" {UNSTABLE_MARK}: unstable (cv across repetitions over 5%)."
    if any(r.flagged_cases() for r in runs):
        text += f" {FLAGGED_CELL}: a measurement error (see below), not a result."
    if any(r.has_remote_cases() for r in runs):
        text += (" (remote): measured across hosts (the peer on the remote host); no "
                 "floor applies there.")
    marks = {lim.name for r in runs for c in r.case_list() for lim in c.limits() if lim.mark}
    for name, lim in model.LIMITS.items():
        if name in marks:
            text += f" {lim.legend}"
    return text


def render_summary(runs):
    """The whole summary document."""
    parts = ["## ipcbench results", "", *context_lines(runs), "", table(runs), "",
             footnote(runs)]
    modes = sync_async_lines(runs)
    if modes:
        parts += ["", *modes]
    side_by_side = local_remote_table(runs)
    if side_by_side:
        parts += ["", *side_by_side]
    problems = oneway_lines(runs) + problems_lines(runs)
    if problems:
        parts += ["", *problems]
    return "\n".join(parts) + "\n"
