"""The report's figures, each rendered to an inline SVG string by matplotlib.

No pyplot: figures are built on matplotlib.figure.Figure directly so nothing
depends on a display or on global figure state. Every data artist gets a gid
starting with 'data-' so a test (or a person reading the SVG) can tell drawn
data from axes furniture.
"""

import io
import itertools
import math

import re

import matplotlib

matplotlib.use("Agg")

from matplotlib import rc_context  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator  # noqa: E402

from . import units  # noqa: E402
from .model import SeriesKey  # noqa: E402

# Okabe & Ito's colour-blind safe palette, without its yellow, which is too
# faint on white; markers make every series distinct without colour.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000",
           "#882255"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*", "d", "H", "8"]
MODE_LINESTYLES = {"sync": "-", "async": "--"}
# A second (third) placement of the same mechanism and mode: another dash
# pattern, and markers filled the other way, so the two series differ
# without a new colour.
PLACEMENT_LINESTYLES = {"sync": ["-", ":", (0, (6, 2, 1, 2))],
                        "async": ["--", "-.", (0, (8, 3))]}
# A case measured across hosts (its peer on the remote host of a remote
# run): the mechanism's colour and marker, markers filled the other way and
# a dash-dot-dot line, labelled '<mechanism> (remote)'.
REMOTE_LINESTYLES = {"sync": (0, (5, 1.5, 1, 1.5, 1, 1.5)), "async": (0, (2, 1.5))}
FIG_WIDTH = 11.0  # inches; about 1050 px wide, fits a laptop screen
RC = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, crisp
    "font.size": 10,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial"],
    "axes.grid": True,
    "grid.alpha": 0.35,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
# This process only draws report figures: setting the style once here is
# simpler than threading an rc_context through every builder.
matplotlib.rcParams.update(RC)

# HdrHistogram-style percentile axis: x = 1/(1-p), labelled in percent.
PERCENTILE_TICKS = [(50.0, "50%"), (90.0, "90%"), (99.0, "99%"),
                    (99.9, "99.9%"), (99.99, "99.99%"), (99.999, "99.999%")]


_GIDS = itertools.count(1)


def tag(artist, name):
    """Marks drawn data with a unique 'data-' id (bars: one per bar), so the
    SVG says which groups are data and no two elements share an id."""
    parts = list(artist) if hasattr(artist, "patches") else [artist]
    for part in parts:
        part.set_gid(f"data-{name}-{next(_GIDS)}")
    return artist


class Styles:
    """One colour/marker per mechanism for the whole report, so a mechanism
    looks the same in every figure; open markers after the palette wraps.
    A placement after the first keeps the colour and marker but changes the
    dash pattern and inverts the marker fill; so does a case measured across
    hosts (where 'remote'), with a dash-dot-dot line."""

    def __init__(self, mechanisms, placements=()):
        self._index = {m: i for i, m in enumerate(mechanisms)}
        self._places = [p for p in placements if p != "unknown"]

    def of(self, mechanism, mode="sync", placement=None, where="local"):
        i = self._index.setdefault(mechanism, len(self._index))
        colour = PALETTE[i % len(PALETTE)]
        filled = (i // len(PALETTE)) % 2 == 0
        p = self._places.index(placement) if placement in self._places else 0
        if p % 2 == 1:
            filled = not filled
        styles = PLACEMENT_LINESTYLES.get(mode)
        linestyle = styles[p % len(styles)] if styles else ":"
        if where == "remote":
            return {
                "color": colour,
                "marker": MARKERS[i % len(MARKERS)],
                "markerfacecolor": "white" if filled else colour,
                "markeredgecolor": colour,
                "linestyle": REMOTE_LINESTYLES.get(mode, (0, (1, 1))),
            }
        return {
            "color": colour,
            "marker": MARKERS[i % len(MARKERS)],
            "markerfacecolor": colour if filled else "white",
            "markeredgecolor": colour,
            "linestyle": linestyle if p else MODE_LINESTYLES.get(mode, ":"),
        }


def percentile_x(p):
    """Maps a percentile to the 1/(1-p) axis; None for 100 (infinitely far)."""
    return None if p >= 100 else 1.0 / (1.0 - p / 100.0)


def ns_formatter():
    return FuncFormatter(lambda v, _pos: units.ns(v, compact=True) if v > 0 else "")


def bps_formatter():
    return FuncFormatter(lambda v, _pos: units.bytes_per_second(v, compact=True) if v > 0 else "")


def decade_ticks(ax, axis, lo, hi, formatter):
    """Log-axis ticks at 1-2-5 steps across [lo, hi], labelled with units.

    matplotlib's own log ticks print '10^3' without units; a reader wants
    '1 µs'. Minor ticks are dropped to keep the axis clean."""
    if not (lo and hi and lo > 0 and hi > 0):
        return
    span = math.log10(hi / lo)
    steps = (1, 2, 5) if span <= 1.3 else (1, 3) if span <= 2.2 else (1,)
    ticks = [m * 10.0 ** e
             for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 2)
             for m in steps]
    ax_axis = ax.yaxis if axis == "y" else ax.xaxis
    ax_axis.set_major_locator(FixedLocator(ticks))
    ax_axis.set_major_formatter(formatter)
    ax_axis.set_minor_locator(NullLocator())
    ax_axis.set_minor_formatter(NullFormatter())


def size_axis(ax, sizes):
    """Log2 message-size axis with a tick at each measured size."""
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: units.size(v)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    if sizes:
        ax.set_xlim(min(sizes) / 1.5, max(sizes) * 1.5)
    ax.set_xlabel("message size (log scale)")


def new_figure(rows=1, cols=1, height=4.2, sharey=False):
    """A figure with a grid of axes; height is per row, in inches."""
    fig = Figure(figsize=(FIG_WIDTH, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=sharey)
    return fig, [ax for row in axes for ax in row]


def to_svg(fig, salt, title):
    """The figure as an inline <svg> element: no XML prolog, no doctype,
    ids salted per figure and matplotlib's unreferenced automatic ids
    removed, so several SVGs in one page never share an id."""
    buf = io.StringIO()
    with rc_context({"svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = shorten_paths(strip_unused_ids(text[text.index("<svg"):]))
    label = title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return text.replace("<svg ", f'<svg role="img" aria-label="{label}" class="plot-svg" ', 1)


def shorten_paths(svg):
    """Rounds path coordinates to 1/100 pt: invisible on screen, and it
    makes a report with many figures a third smaller."""
    def short(m):
        return ' d="' + re.sub(r"(\.\d{2})\d+", r"\1", m.group(1)) + '"'
    return re.sub(r' d="([^"]*)"', short, svg)


def strip_unused_ids(svg):
    """Drops id attributes nothing refers to (matplotlib names every group
    'line2d_1', 'text_3', ... in each figure), keeping the data- ids."""
    used = set(re.findall(r"#([^\s\"')]+)", svg))

    def keep(m):
        ident = m.group(1)
        return m.group(0) if ident in used or ident.startswith("data-") else ""
    return re.sub(r'\s+id="([^"]+)"', keep, svg)


def group_series(run, pattern):
    """{(mechanism, mode, placement, where): [cases by size]} for one pattern."""
    series = {}
    for case in run.case_list(pattern):
        k = case.key
        series.setdefault((k.mechanism, k.mode, k.placement, k.where), []).append(case)
    for cases in series.values():
        cases.sort(key=lambda c: c.key.size)
    return series


def _dodge(i, n):
    """A small multiplicative x offset so whiskers of different series at the
    same size do not sit on top of each other."""
    return 2 ** ((i - (n - 1) / 2) * 0.035)


def _cpu_bars(ax, cases, styles):
    """Stacked bars: how the CPU cost splits between runner and peer."""
    cases = sorted(cases, key=lambda c: c.cpu_ns_per_msg())
    several = len({c.key.placement for c in cases}) > 1
    labels = [c.key.series() + ("" if c.key.mode == "sync" else f" ({c.key.mode})")
              + (f" [{c.key.placement}]" if several else "") for c in cases]
    runner = [c.value("runner_cpu_ns_per_msg") for c in cases]
    peer = [c.value("peer_cpu_ns_per_msg") for c in cases]
    ypos = list(range(len(cases)))
    colours = [styles.of(c.key.mechanism)["color"] for c in cases]
    b1 = ax.barh(ypos, runner, color=colours, edgecolor="white", label="runner")
    b2 = ax.barh(ypos, peer, left=runner, color=colours, alpha=0.45, hatch="///",
                 edgecolor="white", label="peer")
    tag(b1, "cpu-runner")
    tag(b2, "cpu-peer")
    for y, r, p in zip(ypos, runner, peer):
        ax.annotate(units.ns(r + p), (r + p, y), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=7.5, color="#333333")
    if cases:
        ax.set_xlim(0, max(r + p for r, p in zip(runner, peer)) * 1.18)
    ax.set_yticks(ypos, labels, fontsize=8)
    ax.grid(axis="y", visible=False)
    ax.xaxis.set_major_formatter(ns_formatter())
    ax.set_xlabel("CPU time per round trip (runner solid, peer hatched)")
    ax.set_ylim(-0.7, len(cases) - 0.3)


def grouped_bars(ax, groups, series, values, colours, formatter, xlabel, gid):
    """Horizontal grouped bars on a log axis: groups down the y axis, one bar
    per series within a group; missing values leave a gap."""
    n = max(1, len(series))
    height = 0.8 / n
    drawn = []
    for j, name in enumerate(series):
        ys, ws = [], []
        for g, group in enumerate(groups):
            v = values.get((group, name))
            if v:
                ys.append(g - 0.4 + height * (j + 0.5))
                ws.append(v)
        if ys:
            bars = ax.barh(ys, ws, height=height * 0.92, color=colours[j % len(colours)],
                           label=name, hatch=None if j % 2 == 0 else "..", edgecolor="white")
            tag(bars, f"{gid}-{j}")
            drawn += ws
    ax.set_yticks(range(len(groups)), groups, fontsize=8)
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    ax.set_xscale("log")
    if drawn:
        lo, hi = min(drawn) / 2, max(drawn) * 1.5
        ax.set_xlim(lo, hi)
        decade_ticks(ax, "x", lo, hi, formatter)
    ax.set_xlabel(xlabel)


def bars_height(groups, series):
    """Inches per row of a grouped-bar figure: enough for labels, no more."""
    return 1.1 + groups * (0.12 + 0.17 * series)


def run_series(run):
    """The run's series names in registry order: each mechanism, and
    '<mechanism> (remote)' after it when it was measured across hosts."""
    out = []
    for m in run.mechanisms():
        for where in ("local", "remote"):
            names = [c.key.series() for c in run.cases.values()
                     if c.key.mechanism == m and c.key.where == where]
            if names and names[0] not in out:
                out.append(names[0])
    return out


def multi_mode_mechanisms(run):
    """Mechanisms (series: 'tcp (remote)' across hosts) measured in more than
    one mode: the only ones a side-by-side comparison of modes can show."""
    return [s for s in run_series(run)
            if len({c.key.mode for c in run.case_list() if c.key.series() == s}) > 1]


MODES = ("sync", "async")


def pair_group(pair, several_places):
    """A sync-vs-async group's label: the mechanism (and placement when
    several), then, on a second line, how the two sides waited when they
    differ and the marks of what limited a throughput figure."""
    label = pair.key.series() + (f" [{pair.key.placement}]" if several_places else "")
    extra = [pair.wait_label()]
    extra += [f"{side} {LIMIT_SHORT[name]}" for side, case in
              (("sync", pair.sync), ("async", pair.async_case))
              for name in [lim.name for lim in case.limits()] if name in LIMIT_SHORT]
    extra = [e for e in extra if e]
    return label + ("\n" + "; ".join(extra) if extra else "")


# How a group label marks a limit (the table below the figure says it in full).
LIMIT_SHORT = {"harness_flow_control": "‡ harness-limited",
               "mechanism_buffer_full": "buffer full", "sender_behind": "† sender behind"}


def modes_side_by_side(runs, size, pairs):
    """Sync and async bars per mechanism for the sync-vs-async pairs shown
    (model.sync_vs_async, left-out pairs excluded): p50 latency at size
    (only async closed loops at window 1 pair with sync) and throughput at
    the measured size nearest to it; one row of panels per run with pairs,
    a panel only where there is something to draw. None when nothing is."""
    rows = []
    several_places = len({p.key.placement for p in pairs}) > 1
    for run in runs:
        mine = [p for p in pairs if p.run is run and not p.left_out]
        lat = [p for p in mine if p.key.pattern == "latency" and p.key.size == size]
        tsize = _nearest(sorted({p.key.size for p in mine if p.key.pattern == "throughput"}),
                         size)
        tput = [p for p in mine if p.key.pattern == "throughput" and p.key.size == tsize]
        panels = [(kind, chosen, sz) for kind, chosen, sz in
                  (("latency", lat, size), ("throughput", tput, tsize)) if chosen]
        if panels:
            rows.append((run, panels))
    if not rows:
        return None
    cols = max(len(panels) for _run, panels in rows)
    groups = max(len(chosen) for _run, panels in rows for _k, chosen, _s in panels)
    fig, axes = new_figure(len(rows), cols, height=bars_height(groups, 2) + 0.3)
    for r, (run, panels) in enumerate(rows):
        for c in range(cols):
            ax = axes[r * cols + c]
            if c >= len(panels):
                ax.set_visible(False)
                continue
            kind, chosen, sz = panels[c]
            names = [pair_group(p, several_places) for p in chosen]
            values = {}
            for name, p in zip(names, chosen):
                values[(name, "sync")] = p.sync_value
                values[(name, "async")] = p.async_value
            if kind == "latency":
                grouped_bars(ax, names, MODES, values, PALETTE, ns_formatter(),
                             f"p50 round-trip latency at {units.size(sz)} (log scale)",
                             "modes-lat")
            else:
                grouped_bars(ax, names, MODES, values, PALETTE, bps_formatter(),
                             f"throughput at {units.size(sz)} (bytes/s, log scale)",
                             "modes-tput")
            ax.set_ylim(groups - 0.5, -0.5)  # the same bar height in every panel
            if c == len(panels) - 1:  # beside the row, where it hides no bar
                ax.legend(fontsize=8.5, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                          frameon=False, borderaxespad=0.0)
            if c == 0 and len(rows) > 1:
                ax.set_title(run.label, fontsize=10, loc="left")
    return fig


def across_hosts(runs, size):
    """One bar per result file for each mechanism at one size: the same
    mechanism side by side on different hardware."""
    mechs = []
    for run in runs:
        mechs += [m for m in run_series(run) if m not in mechs]
    labels = [r.label for r in runs]
    lat, tput = {}, {}
    for run in runs:
        for c in run.case_list("latency"):
            if c.key.size == size and c.key.mode == "sync":
                lat[(c.key.series(), run.label)] = c.value("p50_ns")
        tsize = _nearest(run.sizes("throughput"), size)
        for c in run.case_list("throughput"):
            if c.key.size == tsize and c.key.mode == "sync":
                tput[(c.key.series(), run.label)] = c.value("bytes_per_second")
    fig, axes = new_figure(1, 2, height=bars_height(len(mechs), len(runs)))
    grouped_bars(axes[0], mechs, labels, lat, PALETTE, ns_formatter(),
                 f"p50 round-trip latency at {units.size(size)} (log scale)", "hosts-lat")
    grouped_bars(axes[1], mechs, labels, tput, PALETTE, bps_formatter(),
                 f"throughput at {units.size(size)} (bytes/s, log scale)", "hosts-tput")
    axes[0].legend(fontsize=8, loc="lower right")
    return fig


FLOOR_LINESTYLES = {"payload_rtt": "-", "futex_rtt": (0, (5, 3)), "cache_line_rtt": ":",
                    "cross_core_copy": "-", "memcpy": (0, (5, 3))}


def floor_points(run, placement, pattern):
    """{(mechanism, mode): [(size, figure, Floor)]} of one placement's
    measured cases (never flagged ones) that have a floor with a figure."""
    fld = "p50_ns" if pattern == "latency" else "bytes_per_second"
    series = {}
    for (mech, mode, place, where), cases in group_series(run, pattern).items():
        if place != placement or where != "local":
            continue  # across hosts: the calibration's floors describe this host only
        for c in cases:
            f, v = run.floor(c), c.value(fld)
            if f is not None and f.name and f.value and v:
                series.setdefault((mech, mode), []).append((c.key.size, v, f))
    return series


_CALIBRATION_KEYS = {"payload_rtt": ("payload_rtt_ns", True), "futex_rtt": ("futex_rtt_ns", False),
                     "cache_line_rtt": ("cache_line_rtt_ns", False),
                     "cross_core_copy": ("cross_core_copy_bytes_per_second", True),
                     "memcpy": ("memcpy_bytes_per_second", True)}


def compare_changes(rows, threshold):
    """Horizontal bars of each compared metric's change, signed so that
    positive is worse, with the threshold drawn: regressions stand out at a
    glance and improvements point the other way."""
    rows = [r for r in rows if r["worse_pct"] is not None]
    fig, axes = new_figure(1, 1, height=1.0 + 0.24 * max(1, len(rows)))
    ax = axes[0]
    colour = {"regressed": "#D55E00", "improved": "#0072B2"}
    ys = list(range(len(rows)))
    bars = ax.barh(ys, [r["worse_pct"] for r in rows],
                   color=[colour.get(r["verdict"], "#999999") for r in rows])
    tag(bars, "compare-bars")
    ax.set_yticks(ys, [f"{r['case']} {r['metric']}" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    for x in (threshold, -threshold):
        ax.axvline(x, color="#555555", lw=1, linestyle=(0, (4, 3)))
    ax.axvline(0, color="black", lw=0.8)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:+.0f}%"))
    ax.set_xlabel(f"change, positive = worse (%; dashed: ±{threshold:g}% threshold; "
                  "red regressed, blue improved)")
    return fig


def _nearest(sizes, size):
    """The size in sizes closest to size on a log scale (size itself if present)."""
    if not sizes:
        return size
    return min(sizes, key=lambda s: abs(math.log2(s) - math.log2(size)))


def nearest_size(sizes, size):
    return _nearest(sizes, size)


# --- Small multiples (multiples.py): each plot as panels of at most
# multiples.MAX_SERIES series, rows by family, columns by mode, shared axes.

def _dodged(i, n):
    return _dodge(i, n) if n > 1 else 1.0


def _series_text(s):
    return s.text


def _shared_y(built, lo, hi, formatter, label):
    for p in built:
        p.ax.set_yscale("log")
        p.ax.set_ylabel(label)
        if lo and hi:
            decade_ticks(p.ax, "y", lo, hi, formatter)
            p.ax.set_ylim(lo, hi)


def latency_multiples(specs):
    """p50 round trip against size per series, the p99 as a whisker above."""
    from .multiples import Panel
    built, lo, hi, sizes = [], [], [], set()
    for title, mode, series in specs:
        p = Panel(title, series, mode)
        for i, s in enumerate(series):
            cases = [c for c in s.cases if c.value("p50_ns") and c.value("p99_ns")]
            if not cases:
                continue
            xs = [c.key.size * _dodged(i, len(series)) for c in cases]
            p50 = [c.value("p50_ns") for c in cases]
            p99 = [c.value("p99_ns") for c in cases]
            cont = p.ax.errorbar(xs, p50, yerr=[[0] * len(p50),
                                                [max(0.0, b - a) for a, b in zip(p50, p99)]],
                                 capsize=3, elinewidth=1, lw=1.6, ms=5, **s.style)
            p.mark(cont.lines[0], s.sid, f"latency-{s.key.mechanism}")
            for part in list(cont.lines[1]) + list(cont.lines[2]):
                p.mark(part, s.sid, f"latency-whisker-{s.key.mechanism}")
            for x, c, a, b in zip(xs, cases, p50, p99):
                p.point(s.sid, x, a, f"{_series_text(s)}, {units.size(c.key.size)}: "
                        f"p50 {units.ns(a)}, p99 {units.ns(b)}")
            lo += p50
            hi += p99
            sizes.update(c.key.size for c in cases)
        built.append(p)
    for p in built:
        size_axis(p.ax, sorted(sizes))
    _shared_y(built, min(lo) / 1.3 if lo else None, max(hi) * 1.3 if hi else None,
              ns_formatter(), "round trip (log)")
    return built


def throughput_multiples(specs):
    """Payload bandwidth of the throughput pattern against size per series."""
    from .multiples import Panel
    built, values, sizes = [], [], set()
    for title, mode, series in specs:
        p = Panel(title, series, mode)
        for s in series:
            pts = [(c.key.size, c.value("bytes_per_second")) for c in s.cases]
            pts = [(x, v) for x, v in pts if v]
            if not pts:
                continue
            (line,) = p.ax.plot([x for x, _ in pts], [v for _, v in pts], lw=1.6, ms=5,
                                **s.style)
            p.mark(line, s.sid, f"throughput-{s.key.mechanism}")
            for x, v in pts:
                p.point(s.sid, x, v, f"{_series_text(s)}, {units.size(x)}: "
                        f"{units.bytes_per_second(v)}")
            values += [v for _, v in pts]
            sizes.update(x for x, _ in pts)
        built.append(p)
    for p in built:
        size_axis(p.ax, sorted(sizes))
    _shared_y(built, min(values) / 1.5 if values else None,
              max(values) * 1.5 if values else None, bps_formatter(), "bytes/s (log)")
    return built


HOVER_PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99, 99.999)


def distribution_multiples(specs, size):
    """The latency percentile spectrum at one size, HdrHistogram style."""
    from .multiples import Panel
    built, ys, xmax = [], [], 10.0
    for title, mode, series in specs:
        p = Panel(title, series, mode)
        for s in series:
            for case in s.cases:
                hist = [(pc, v) for pc, v in case.histogram() if pc < 100 and v > 0]
                pts = [(percentile_x(pc), v) for pc, v in hist]
                if len(pts) < 2:
                    continue
                (line,) = p.ax.plot([x for x, _ in pts], [v for _, v in pts], lw=1.5, ms=3.5,
                                    markevery=max(1, len(pts) // 8), **s.style)
                p.mark(line, s.sid, f"distribution-{s.key.mechanism}")
                for pc, v in hist:
                    if any(abs(pc - h) < 1e-9 for h in HOVER_PERCENTILES):
                        p.point(s.sid, percentile_x(pc), v,
                                f"{_series_text(s)}, {units.size(size)}: p{pc:g} {units.ns(v)}")
                ys += [v for _, v in pts]
                xmax = max(xmax, pts[-1][0])
        built.append(p)
    ticks = [(percentile_x(pc), lbl) for pc, lbl in PERCENTILE_TICKS
             if percentile_x(pc) <= xmax * 1.01]
    for p in built:
        ax = p.ax
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([t for t, _ in ticks]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p, d=dict(ticks): d.get(v, "")))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(1, xmax * 1.1)
        ax.set_xlabel("percentile (1/(1−p) scale)")
    _shared_y(built, min(ys) / 1.2 if ys else None, max(ys) * 1.2 if ys else None,
              ns_formatter(), "round trip (log)")
    return built


def cpu_multiples(specs):
    """CPU time per round trip (runner + peer) against the p50 round trip,
    with the '1 CPU busy' and '2 CPUs busy' guide lines."""
    from .multiples import Panel
    built, values = [], []
    for title, mode, series in specs:
        p = Panel(title, series, mode)
        for s in series:
            for case in s.cases:
                x, cpu = case.value("p50_ns"), case.cpu_ns_per_msg()
                if not x or cpu is None:
                    continue
                y = max(cpu, 1.0)
                (pt,) = p.ax.plot([x], [y], ms=8, **{**s.style, "linestyle": "none"})
                p.mark(pt, s.sid, f"cpu-{s.key.mechanism}")
                p.point(s.sid, x, y, f"{_series_text(s)}: p50 {units.ns(x)}, CPU {units.ns(cpu)}"
                        f" per round trip (runner {units.ns(case.value('runner_cpu_ns_per_msg'))}"
                        f" + peer {units.ns(case.value('peer_cpu_ns_per_msg'))})")
                values += [x, y]
        built.append(p)
    lo, hi = (min(values) / 2, max(values) * 2) if values else (None, None)
    for p in built:
        ax = p.ax
        ax.set_xscale("log")
        ax.set_yscale("log")
        if lo:
            for factor, text in ((1, "1 CPU busy"), (2, "2 CPUs busy")):
                ax.plot([lo, hi], [lo * factor, hi * factor], color="#888888", lw=0.9,
                        linestyle=(0, (4, 3)), zorder=0)
                ax.annotate(text, (lo * 1.15, lo * 1.15 * factor), xytext=(2, 4),
                            textcoords="offset points", fontsize=8, color="#555555",
                            rotation=33, rotation_mode="anchor")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            decade_ticks(ax, "x", lo, hi, ns_formatter())
            decade_ticks(ax, "y", lo, hi, ns_formatter())
        ax.set_xlabel("p50 round trip (log)")
        ax.set_ylabel("CPU per round trip (log)")
    return built


def cpu_bars(runs, styles, size):
    """Stacked bars of every case's CPU per round trip at size, split
    between runner and peer (two series: runner, peer)."""
    fig, axes = new_figure(len(runs), 1, height=1.0)
    tallest = 0
    for ax, run in zip(axes, runs):
        cases = [c for c in run.case_list("latency") if c.key.size == size
                 and c.value("p50_ns") and c.cpu_ns_per_msg() is not None]
        _cpu_bars(ax, cases, styles)
        tallest = max(tallest, len(cases))
        if len(runs) > 1:
            ax.set_title(run.label, fontsize=10, loc="left")
    fig.set_figheight(len(runs) * (0.9 + 0.2 * max(1, tallest)))
    return fig


def floor_multiples(specs, run, placement, pattern):
    """Each case's figure as a multiple of the floor that applies to it
    (latency: p50 / floor; throughput: floor bandwidth / throughput)."""
    from .multiples import Panel
    fld = "p50_ns" if pattern == "latency" else "bytes_per_second"
    fmt = units.ns if pattern == "latency" else units.bytes_per_second
    built, ratios, sizes = [], [], set()
    for title, mode, series in specs:
        p = Panel(title, series, mode)
        for s in series:
            pts = []
            for c in s.cases:
                f, v = run.floor(c), c.value(fld)
                if f is not None and f.ratio and v:
                    pts.append((c.key.size, f.ratio, v, f))
            if not pts:
                continue
            (line,) = p.ax.plot([q[0] for q in pts], [q[1] for q in pts], lw=1.4, ms=5,
                                **s.style)
            p.mark(line, s.sid, f"floor-ratio-{pattern}-{s.key.mechanism}")
            for x, r, v, f in pts:
                again = ", re-measured before the case" if f.adjacent else ""
                p.point(s.sid, x, r, f"{_series_text(s)}, {units.size(x)}: {fmt(v)}, "
                        f"{r:.3g}× the floor ({f.label}: {f.value_text()}{again})")
            ratios += [q[1] for q in pts]
            sizes.update(q[0] for q in pts)
        built.append(p)
    lo, hi = (min(0.8, min(ratios) / 1.3), max(2.0, max(ratios) * 1.5)) if ratios else (0.8, 2)
    for p in built:
        size_axis(p.ax, sorted(sizes))
        p.ax.set_yscale("log")
        p.ax.axhline(1, color="black", lw=1.5)
        p.ax.set_ylim(lo, hi)
        decade_ticks(p.ax, "y", lo, hi, FuncFormatter(lambda v, _p: f"{v:g}×"))
        p.ax.set_ylabel("× the floor (log)")
    return built


def load_multiples(runs, lay, styles, size):
    """Latency against achieved load at one size: per row of the layout a
    p50 panel and a p99 panel, one line per mechanism over its unloaded
    figure and its steps (x: echoes per second, y: round trip, log-log), its
    capacity point ringed."""
    from .multiples import Panel, PanelSeries, label_of
    built, xs_all, ys_all = [], [], []
    for _title, mechs in lay.groups:
        for stat, field in (("p50", "p50_ns"), ("p99", "p99_ns")):
            series, data = [], []
            for run in runs:
                for sweep in run.load_sweeps:
                    if sweep.get("message_size") != size or sweep.get("mechanism") not in mechs:
                        continue
                    steps = run.load_steps(sweep["mechanism"], size, sweep.get("placement"),
                                           ("unloaded", "step"))
                    if not steps:
                        continue
                    key = SeriesKey(run, getattr(run, "label", ""), sweep["mechanism"], "async",
                                    sweep.get("placement", ""))
                    sid = f"s{len(series)}"
                    style = styles.of(sweep["mechanism"], "sync", sweep.get("placement"))
                    series.append(PanelSeries(sid, key, label_of(key, lay), style, steps,
                                              label_of(key, lay)))
                    data.append(sweep)
            if not series:
                continue
            p = Panel(f"{lay.title([s.key.mechanism for s in series])} — {stat}", series, stat)
            for s, sweep in zip(series, data):
                pts = [(c.value("achieved_rate"), c.value(field), c) for c in s.cases
                       if c.value("achieved_rate") and c.value(field)]
                if not pts:
                    continue
                (line,) = p.ax.plot([x for x, _y, _c in pts], [y for _x, y, _c in pts], lw=1.5,
                                    ms=4.5, **s.style)
                p.mark(line, s.sid, f"load-{stat}-{s.key.mechanism}")
                cap = sweep.get("capacity_rate")
                for x, y, c in pts:
                    sat = " (saturated)" if c.field("saturated")[1] else ""
                    step = c.field("load_step")[1]
                    part = f"{step} of the peak" if step else "unloaded"
                    p.point(s.sid, x, y, f"{s.text} {units.size(size)}, {part}"
                            f": offered {units.per_second(c.value('offered_rate'))}, "
                            f"echoed {units.per_second(x)}{sat}: p50 {units.ns(c.value('p50_ns'))}"
                            f", p99 {units.ns(c.value('p99_ns'))}")
                    if step and cap is not None and c.value("offered_rate") == cap:
                        (ring,) = p.ax.plot([x], [y], linestyle="none", marker="o", ms=13,
                                            markerfacecolor="none", markeredgewidth=2,
                                            markeredgecolor=s.style["color"], zorder=6)
                        p.mark(ring, s.sid, f"capacity-{s.key.mechanism}")
                xs_all += [x for x, _y, _c in pts]
                ys_all += [y for _x, y, _c in pts]
            built.append(p)
    for p in built:
        p.ax.set_xscale("log")
        p.ax.set_xlabel("echoed messages/s (log)")
        if xs_all:
            lo, hi = min(xs_all) / 1.5, max(xs_all) * 1.5
            p.ax.set_xlim(lo, hi)
            decade_ticks(p.ax, "x", lo, hi, FuncFormatter(
                lambda v, _p: units.per_second(v).replace(" msg/s", "").replace(" ", "")))
    _shared_y(built, min(ys_all) / 1.3 if ys_all else None, max(ys_all) * 1.3 if ys_all else None,
              ns_formatter(), "round trip (log)")
    return built
