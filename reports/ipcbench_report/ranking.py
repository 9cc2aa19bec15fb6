"""The standings a reader wants first: per message size, every series
(mechanism and mode, plus placement, host or engine where those vary)
ranked by round trip and by throughput, best first, each with its ratio to
the best and its CPU time per message; and the grid of every series against
the best at each size, which the HTML report draws as a heat map and the
Markdown summary prints as one table per question.

Only figures that answer the question are ranked: measured cases (never
flagged, failed or skipped ones) and, for the round trip, only cases that
move one message at a time (sync, or an async closed loop at window 1). An
async latency figure with several messages in flight, or an open loop's,
includes queueing or its schedule: it is listed as left out, never ranked.
"""

import math
from dataclasses import dataclass

from . import model, units

# question -> (figure field, lower is better, what it is called)
QUESTIONS = {
    "latency": ("p50_ns", True, "p50 round trip"),
    "throughput": ("bytes_per_second", False, "throughput"),
}


@dataclass(frozen=True)
class Entry:
    """A series' figure at one size. ratio is how many times worse than the
    best at that size (1 for the best; latency: value / best, throughput:
    best / value)."""

    series: model.SeriesKey
    case: object
    value: float
    ratio: float
    label: str

    @property
    def cpu_ns(self):
        return self.case.cpu_ns_per_msg()

    @property
    def unstable(self):
        return self.case.unstable


def labeller(runs):
    """A function naming a SeriesKey with only the parts that vary across
    runs: 'pipe (sync)', 'tcp (remote) (async)', 'pipe (sync) [same-cpu]',
    'vm · a.json: pipe (sync)'."""
    cases = [c for r in runs for c in r.case_list()]
    several_places = len({c.key.placement for c in cases}) > 1
    several_runs = len(runs) > 1

    def label(s):
        key = model.CaseKey(s.mechanism, s.mode, "latency", 0, s.placement, s.where, s.engine)
        text = f"{key.series()} ({s.mode})"
        if several_places:
            text += f" [{s.placement}]"
        if several_runs:
            text = f"{s.run.label}: {text}"
        return text
    return label


def answers(run, case, pattern):
    """True when the case's figure answers the question of its pattern."""
    if case.flagged or not case.ok:
        return False
    value = case.value(QUESTIONS[pattern][0])
    if not units.is_number(value) or value <= 0:
        return False
    if pattern == "latency" and case.key.mode == "async":
        return run.in_flight(case).like_sync
    return True


def left_out(runs, pattern, size=None):
    """Measured cases of the pattern (at size, when given) whose figure is
    not ranked because it is not one message at a time: (run, case)."""
    return [(r, c) for r in runs for c in r.case_list(pattern)
            if (size is None or c.key.size == size) and not c.flagged
            and units.is_number(c.value(QUESTIONS[pattern][0]))
            and not answers(r, c, pattern)]


def sizes(runs, pattern):
    return sorted({c.key.size for r in runs for c in r.case_list(pattern)
                   if answers(r, c, pattern)})


def _entries(runs, pattern, size, label):
    field, lower, _name = QUESTIONS[pattern]
    found = [(model.series_key(r, c), c) for r in runs for c in r.case_list(pattern)
             if c.key.size == size and answers(r, c, pattern)]
    if not found:
        return []
    values = [c.value(field) for _s, c in found]
    best = min(values) if lower else max(values)
    return [Entry(s, c, v, (v / best) if lower else (best / v), label(s))
            for (s, c), v in zip(found, values)]


def ranked(runs, pattern, size):
    """The entries at one size, best first (ties by label)."""
    label = labeller(runs)
    return sorted(_entries(runs, pattern, size, label), key=lambda e: (e.ratio, e.label))


@dataclass(frozen=True)
class GridRow:
    series: model.SeriesKey
    label: str
    cells: dict  # size -> Entry
    score: float  # geometric mean of the ratios over the sizes it has


def grid(runs, pattern, at_sizes=None):
    """(sizes, rows): every series with a cell per size it was measured at.
    Rows are ordered by the geometric mean of their ratios to the best over
    the sizes they have. A series that cannot carry the large sizes (a
    queue's message limit) is ordered by the sizes it can: putting it after
    every complete row would hide that it is second best at 64 B."""
    label = labeller(runs)
    at_sizes = list(at_sizes) if at_sizes is not None else sizes(runs, pattern)
    cells = {}
    for size in at_sizes:
        for e in _entries(runs, pattern, size, label):
            cells.setdefault(e.series, {})[size] = e
    rows = []
    for s, by_size in cells.items():
        score = math.exp(sum(math.log(e.ratio) for e in by_size.values()) / len(by_size))
        rows.append(GridRow(s, label(s), by_size, score))
    rows.sort(key=lambda r: (r.score, r.label))
    return at_sizes, rows


def ratio_text(ratio):
    """'best' for the best, else '×1.23', '×12.3', '×123'."""
    if ratio <= 1.0 + 1e-9:
        return "best"
    return "×" + (f"{ratio:.2f}" if ratio < 10 else f"{ratio:.1f}" if ratio < 100
                  else f"{ratio:.0f}")


def value_text(pattern, value):
    return units.ns(value) if pattern == "latency" else units.bytes_per_second(value)
