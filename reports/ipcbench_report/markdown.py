"""The Markdown summary: a compact table for a CI job summary or a PR comment.

One row per mechanism (per host, mode and placement when those vary), p50
and p99 latency and throughput at a few sizes, the best of each column in
bold, so a reviewer sees the standings without opening the HTML report.
"""

from . import units

DEFAULT_SIZES = (64, 1024, 16384, 262144)
MAX_SIZES = 4


def summary_sizes(runs):
    """The sizes the table shows: all measured sizes when there are few,
    else the suite's default sizes among them."""
    present = sorted({c.key.size for r in runs for c in r.case_list()})
    if len(present) <= MAX_SIZES:
        return present
    defaults = [s for s in DEFAULT_SIZES if s in present]
    return defaults or present[:MAX_SIZES]


def row_keys(runs):
    """(run, mechanism, mode, placement) for every row, in registry order;
    the label shows only the parts that vary."""
    rows = []
    for run in runs:
        for mech in run.mechanisms():
            for mode in run.modes():
                for place in run.placements() or ["unknown"]:
                    if any(c.key.mechanism == mech and c.key.mode == mode
                           and c.key.placement == place for c in run.case_list()):
                        rows.append((run, mech, mode, place))
    return rows


def _find(run, mech, mode, place, pattern, size):
    for c in run.case_list(pattern):
        k = c.key
        if (k.mechanism, k.mode, k.placement, k.size) == (mech, mode, place, size):
            return c
    return None


def columns(sizes):
    """(header, pattern, field, formatter, lower_is_better) per column."""
    out = []
    for s in sizes:
        sz = units.size(s)
        out.append((f"p50 {sz}", "latency", "p50_ns", units.ns, True))
        out.append((f"p99 {sz}", "latency", "p99_ns", units.ns, True))
        out.append((f"throughput {sz}", "throughput", "bytes_per_second",
                    units.bytes_per_second, False))
    return out


def _best(values, lower):
    nums = [v for v in values if v is not None]
    if len(nums) < 2:
        return None
    return min(nums) if lower else max(nums)


def row_label(mech, mode, place, runs):
    """The mechanism, plus mode and placement when they vary across the rows."""
    parts = [f"`{mech}`"]
    if len({m for r in runs for m in r.modes()}) > 1:
        parts.append(mode)
    if len({p for r in runs for p in r.placements()}) > 1:
        parts.append(place)
    return " ".join(parts)


def cell_value(run, mech, mode, place, column, size):
    """The value of one cell, or None when the case was not measured."""
    _header, pattern, fld, _fmt, _lower = column
    case = _find(run, mech, mode, place, pattern, size)
    return case.value(fld) if case else None


def table(runs):
    """The Markdown table, best value per column in bold."""
    sizes = summary_sizes(runs)
    cols = columns(sizes)
    rows = row_keys(runs)
    grid = [[cell_value(run, m, mo, pl, col, sz) for col, sz in zip(cols, _col_sizes(sizes))]
            for run, m, mo, pl in rows]
    best = [_best([g[j] for g in grid], cols[j][4]) for j in range(len(cols))]
    multi = len(runs) > 1
    head = (["host"] if multi else []) + ["mechanism"] + [c[0] for c in cols]
    align = (["---"] if multi else []) + ["---"] + ["--:"] * len(cols)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for (run, m, mo, pl), values in zip(rows, grid):
        cells = [run.label] if multi else []
        cells.append(row_label(m, mo, pl, runs))
        for j, v in enumerate(values):
            text = cols[j][3](v) if v is not None else "–"
            cells.append(f"**{text}**" if v is not None and v == best[j] else text)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _col_sizes(sizes):
    return [s for s in sizes for _ in range(3)]


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
    return out


def problems_lines(runs):
    """Failed cases with reasons, and a count of skipped ones."""
    out = []
    for run in runs:
        prefix = f"{run.label}: " if len(runs) > 1 else ""
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


def render_summary(runs):
    """The whole summary document."""
    parts = ["## ipcbench results", "", *context_lines(runs), "", table(runs), "",
             "p50/p99: round-trip latency of the latency pattern (ping-pong); throughput: "
             "payload bytes per second of the throughput pattern (decimal units). "
             "**Bold**: best in its column."]
    problems = problems_lines(runs)
    if problems:
        parts += ["", *problems]
    return "\n".join(parts) + "\n"
