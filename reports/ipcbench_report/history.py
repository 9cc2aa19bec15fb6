"""History without a server: runs kept in an SQLite file, trends and
lasting step changes over revisions.

`add` stores one result file (revision, date, host, configuration and every
measured case's figures, as export.py names and reads them). A run is
identified by the digest of its content, so adding the same file again
changes nothing. `show` reads every run, orders a host's runs by date and
draws, per mechanism, each figure's series over the runs (one line per
message size, small multiples by pattern and mode), with the lasting steps
find_steps() detects marked and listed.

Step detection (our own; no change-point library is in Debian): binary
segmentation. For a series x1..xn, every split into a before part (at
least MIN_BEFORE points) and an after part (at least MIN_AFTER points: a
change must last that many runs to count, so one slow run is not a step)
is a candidate when its edge is sharp: the last MIN_BEFORE points before
it lie nearer the before part's median than the after part's, the first
MIN_AFTER after it nearer the after part's. A candidate's score is the
distance between the two medians in units of the series' noise, a robust
sigma from the differences of successive points (noise_sigma: a step moves
only one of them). The best candidate whose score is at least MIN_SCORE
and whose medians differ by at least MIN_CHANGE (relative) is a step; then
both parts are searched the same way for further steps.
"""

import hashlib
import json
import sqlite3
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from . import export, units

SCHEMA_VERSION = 1  # PRAGMA user_version of the database
MIN_BEFORE = 2
MIN_AFTER = 3
MIN_SCORE = 4.0
MIN_CHANGE = 0.05
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  digest TEXT PRIMARY KEY,      -- sha256 of the result file's canonical JSON
  revision TEXT NOT NULL,       -- ipcbench.git_revision
  date TEXT NOT NULL,           -- context.date (ISO 8601)
  host TEXT NOT NULL,           -- hostname
  cpu TEXT NOT NULL,
  configuration TEXT NOT NULL,  -- ipcbench.configuration, JSON
  file TEXT NOT NULL            -- the file's name when it was added
);
CREATE TABLE IF NOT EXISTS figures (
  digest TEXT NOT NULL REFERENCES runs(digest),
  name TEXT NOT NULL,           -- export.case_name: the case and its settings
  mechanism TEXT NOT NULL, mode TEXT NOT NULL, pattern TEXT NOT NULL,
  size INTEGER NOT NULL, placement TEXT NOT NULL,
  figure TEXT NOT NULL, unit TEXT NOT NULL,
  value REAL NOT NULL,          -- median over repetitions
  low REAL NOT NULL, high REAL NOT NULL, repetitions INTEGER NOT NULL,
  PRIMARY KEY (digest, name, figure)
);
"""


class HistoryError(Exception):
    """A database that cannot be used: one line for the user."""


def digest(raw):
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()


def connect(db, create):
    """An open database of our schema. create: make it when missing."""
    db = Path(db)
    if db.exists() and not db.is_file():
        # SQLite would "store" into /dev/null and block or fail on a FIFO.
        raise HistoryError(f"{db}: not a regular file; the history database must be one "
                           "(or a symlink to one)")
    if not create and not db.is_file():
        raise HistoryError(f"{db}: no history database here; start one with "
                           "'scripts/report history add RESULTS.json --db "
                           f"{db}'")
    try:
        con = sqlite3.connect(db)
        version = con.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as e:
        raise HistoryError(f"{db}: not an SQLite database ({e})") from None
    if tables and (version != SCHEMA_VERSION or not {"runs", "figures"} <= tables):
        con.close()
        raise HistoryError(f"{db}: not an ipcbench history database (user_version {version}, "
                           f"tables {', '.join(sorted(tables))})")
    if not tables:
        with con:
            con.executescript(SCHEMA)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return con


def add(db, run):
    """Stores run; returns (added, figures stored), added False when the
    same run was already there (nothing changes then)."""
    key = digest(run.raw)
    con = connect(db, create=True)
    try:
        with con:
            if con.execute("SELECT 1 FROM runs WHERE digest = ?", (key,)).fetchone():
                return False, 0
            host = run.host
            con.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (key, run.meta.get("git_revision") or "unknown", run.date or "",
                         host.get("hostname") or "unknown", host.get("cpu_model") or "",
                         json.dumps(run.config, sort_keys=True), run.path.name))
            rows = list(_figure_rows(key, run))
            con.executemany("INSERT INTO figures VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            rows)
    finally:
        con.close()
    return True, len(rows)


def _figure_rows(key, run):
    for case in export.exported_cases(run)[0]:
        name = export.case_name(run, case)
        k = case.key
        for fld, unit, _, _ in export.FIGURES[k.pattern]:
            value = case.value(fld)
            if value is None:
                continue
            samples = case.samples(fld) or [value]
            yield (key, name, k.mechanism, k.mode, k.pattern, k.size, k.placement, fld, unit,
                   float(value), float(min(samples)), float(max(samples)), len(samples))


@dataclass
class Point:
    run: int  # the run's position in the database's runs, date order
    revision: str
    date: str
    value: float


@dataclass
class Series:
    host: str
    name: str
    mechanism: str
    mode: str
    pattern: str
    size: int
    placement: str
    figure: str
    unit: str
    points: list

    @property
    def smaller_is_better(self):
        return export.SMALLER_IS_BETTER[self.pattern]


@dataclass
class Step:
    index: int  # the first point after the step
    before: float  # median before
    after: float  # median after
    score: float  # the medians' distance in noise sigmas

    @property
    def change(self):
        return self.after / self.before - 1 if self.before else float("inf")


def load(db):
    """(runs in date order, [Series]) from the database."""
    con = connect(db, create=False)
    try:
        runs = con.execute("SELECT digest, revision, date, host FROM runs "
                           "ORDER BY host, date, rowid").fetchall()
        rows = con.execute("SELECT digest, name, mechanism, mode, pattern, size, placement, "
                           "figure, unit, value FROM figures").fetchall()
    except sqlite3.DatabaseError as e:
        raise HistoryError(f"{db}: cannot read the history ({e})") from None
    finally:
        con.close()
    order = {r[0]: i for i, r in enumerate(runs)}
    info = {r[0]: r for r in runs}
    grouped = {}
    for d, name, mech, mode, pattern, size, placement, fld, unit, value in rows:
        _, revision, date, host = info[d]
        key = (host, name, fld)
        if key not in grouped:
            grouped[key] = Series(host, name, mech, mode, pattern, size, placement, fld, unit, [])
        grouped[key].points.append(Point(order[d], revision, date, value))
    series = sorted(grouped.values(), key=lambda s: (s.host, s.mechanism, s.pattern, s.mode,
                                                     s.size, s.figure, s.name))
    for one in series:
        one.points.sort(key=lambda p: p.run)
    return runs, series


def noise_sigma(values):
    """Robust noise of a series: from the differences of successive points
    (1.4826 x their median absolute value / sqrt 2), which a step moves only
    once, so neither a step nor a drift inflates it."""
    diffs = [abs(b - a) for a, b in zip(values, values[1:])]
    return 1.4826 * statistics.median(diffs) / 2 ** 0.5 if diffs else 0.0


def _closer(x, here, there):
    return abs(x - here) < abs(x - there)


def find_steps(values, min_before=MIN_BEFORE, min_after=MIN_AFTER, min_score=MIN_SCORE,
               min_change=MIN_CHANGE):
    """The lasting step changes of a series (module docstring), in order,
    each with the medians of the segments on either side."""
    values = list(values)
    sigma = noise_sigma(values)

    def search(lo, hi):
        best = None
        for k in range(lo + min_before, hi - min_after + 1):
            before, after = values[lo:k], values[k:hi]
            mb, ma = statistics.median(before), statistics.median(after)
            distance = abs(ma - mb)
            # The edge is at k: the last points before it sit with the
            # before median, the first min_after after it with the after one.
            if not (all(_closer(x, mb, ma) for x in before[-min_before:])
                    and all(_closer(x, ma, mb) for x in after[:min_after])):
                continue
            score = distance / sigma if sigma > 0 else float("inf")
            if (score < min_score or (distance / abs(mb) if mb else float("inf")) < min_change):
                continue
            if best is None or (score, distance) > (best.score, abs(best.after - best.before)):
                best = Step(k, mb, ma, score)
        if best is None:
            return []
        return search(lo, best.index) + [best] + search(best.index, hi)

    steps = search(0, len(values))
    # Each step's medians from the segments on either side of it.
    edges = [0] + [st.index for st in steps] + [len(values)]
    for i, st in enumerate(steps):
        st.before = statistics.median(values[edges[i]:edges[i + 1]])
        st.after = statistics.median(values[edges[i + 1]:edges[i + 2]])
    return steps


def is_worse(series, step):
    return (step.after > step.before) == series.smaller_is_better


def unit_text(unit, value):
    if unit == "ns":
        return units.ns(value)
    if unit == "B/s":
        return units.bytes_per_second(value)
    return units.per_second(value)


METHOD_TEXT = (
    "A step is a change of a figure that lasts: binary segmentation over each series in date "
    f"order, a split counted when at least {MIN_AFTER} runs after it and {MIN_BEFORE} before "
    "it sit with their own side's median, the two medians differ by at least "
    f"{MIN_CHANGE:.0%} and by at least {MIN_SCORE:g} times the series' noise (from the "
    "differences of successive runs). One slow run is not a step.")
FIGURE_NAMES = {"p50_ns": "p50 round trip", "p99_ns": "p99 round trip",
                "items_per_second": "msg/s", "bytes_per_second": "bytes/s"}
# The figure each pattern's trend plot draws.
PLOTTED = {"latency": "p50_ns", "throughput": "items_per_second"}
MAX_LINES = 8


def all_steps(series):
    """[(series, step)] of every series."""
    return [(one, st) for one in series for st in find_steps([p.value for p in one.points])]


def step_row(one, st):
    """A row of the steps table."""
    first = one.points[st.index]
    return {"host": one.host, "name": one.name, "figure": FIGURE_NAMES[one.figure],
            "revision": first.revision, "date": first.date,
            "before": st.before, "before_text": unit_text(one.unit, st.before),
            "after": st.after, "after_text": unit_text(one.unit, st.after),
            "change": st.change, "change_text": units.percent_change(st.change * 100),
            "verdict": "worse" if is_worse(one, st) else "better"}


def trend_figures(runs, series, steps):
    """One figure per host and mechanism: a panel per pattern, mode and
    placement, a line per message size, the steps of the plotted figure
    marked (▼ worse, ▲ better)."""
    from matplotlib.ticker import FuncFormatter

    from . import html, plots
    marks = defaultdict(list)
    for one, st in steps:
        marks[id(one)].append(st)
    hosts = {r[3] for r in runs}
    groups = defaultdict(lambda: defaultdict(list))
    for s in series:
        if s.figure != PLOTTED[s.pattern]:
            continue
        groups[(s.host, s.mechanism)][(s.pattern, s.mode, s.placement)].append(s)
    figures = []
    for n, ((host, mech), panels) in enumerate(sorted(groups.items())):
        keys = sorted(panels)
        fig, axes = plots.new_figure(rows=len(keys), height=2.6)
        for ax, key in zip(axes, keys):
            pattern, mode, placement = key
            lines = sorted(panels[key], key=lambda s: (s.size, s.name))[:MAX_LINES]
            for s in lines:
                xs = [p.run + 1 for p in s.points]
                ys = [p.value for p in s.points]
                # The name past the case's key: /remote, /engine=, /rate=, /window=.
                base = f"{s.mechanism}/{s.mode}/{s.pattern}/{s.size}/{s.placement}"
                ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.2,
                        label=f"{units.size(s.size)} {s.name[len(base) + 1:]}".strip())
                for st in marks[id(s)]:
                    worse = is_worse(s, st)
                    ax.plot([xs[st.index]], [ys[st.index]], marker="v" if worse else "^",
                            markersize=10, color="#c0392b" if worse else "#1e8449",
                            linestyle="none", gid=f"data-step-{n}")
            # Linear: runs of one case differ by percents, which a log axis hides.
            ax.yaxis.set_major_formatter(plots.ns_formatter() if pattern == "latency" else
                                         FuncFormatter(lambda v, _p: units.per_second(v)))
            ax.set_title(f"{mech}: {mode} {pattern} ({placement})"
                         + (f", {host}" if len(hosts) > 1 else ""), fontsize=10, loc="left")
            ax.set_xlabel("run (date order)")
            ax.set_ylabel("p50 round trip" if pattern == "latency" else "messages/s")
            ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        figures.append(html.figure_data(
            fig, f"trend-{n}", f"{mech} over the runs",
            f"{mech}{' on ' + host if len(hosts) > 1 else ''}: the median of each run "
            "(p50 round trip for latency, messages/s for throughput), one line per message "
            "size; ▼ marks a lasting step for the worse, ▲ for the better."))
    return figures


def render(runs, series):
    """The history page (templates/history.html)."""
    from . import html
    steps = all_steps(series)
    revisions = [r[1] for r in runs]
    return html.template("history.html").render(
        title="ipcbench history",
        lead=(f"{len(runs)} run(s) of {len({r[3] for r in runs})} host(s), "
              f"{len(series)} series; revisions {revisions[0]} .. {revisions[-1]}"
              if runs else "no run yet"),
        method=METHOD_TEXT,
        no_steps=("No lasting step change"
                  + (f": a step needs at least {MIN_BEFORE + MIN_AFTER} runs."
                     if len(runs) < MIN_BEFORE + MIN_AFTER else ".")),
        steps=[step_row(one, st) for one, st in steps],
        runs=[{"n": i + 1, "revision": r[1], "date": r[2], "host": r[3]}
              for i, r in enumerate(runs)],
        figures=trend_figures(runs, series, steps),
    )
