"""Exporters: one result file in the formats CI benchmark trackers read.

github-action-benchmark: its custom tools read a JSON array of
{name, unit, value, range?, extra?}, and a tool is either
customSmallerIsBetter or customBiggerIsBetter, so the export writes two
files: github-action-benchmark-latency.json (round trips in ns, smaller is
better) and github-action-benchmark-throughput.json (messages/s and
bytes/s, bigger is better). `range` is "± h", h half the spread (max - min)
of the repetitions, and `extra` names the repetitions and their span; with
one repetition neither is written.

bencher: Bencher Metric Format, {benchmark: {measure: {value, lower_value,
upper_value}}}, in bencher.json. A latency case reports the built-in
measure `latency` (the p50 round trip, ns) and `latency-p99`; a throughput
case the built-in `throughput` (messages/s) and `bytes-per-second`. lower
and upper are the smallest and largest repetition; with one repetition
they are left out.

Every figure is the case's median over repetitions, as the report shows
it. Only measured cases are exported: failed, skipped and flagged ones
(the sanity gate's measurement errors) have no figure to track, and the
command says how many it left out. A benchmark's name is the case
('pipe/sync/latency/64/cross-cpu') with whatever else changes what its
figures mean: 'remote', the engine, the open loop's rate or the closed
loop's window.
"""

import json

from . import model

# The figures exported per pattern: (field, unit, label in a
# github-action-benchmark name, Bencher measure). Latency goes to the
# smaller-is-better file, throughput to the bigger-is-better one.
FIGURES = {
    "latency": (("p50_ns", "ns", "p50", "latency"), ("p99_ns", "ns", "p99", "latency-p99")),
    "throughput": (("items_per_second", "msg/s", "msg/s", "throughput"),
                   ("bytes_per_second", "B/s", "bytes/s", "bytes-per-second")),
}
SMALLER_IS_BETTER = {"latency": True, "throughput": False}


def case_name(run, case):
    """'pipe/sync/latency/64/cross-cpu', then '/remote', '/engine=io_uring',
    '/rate=1000' or '/window=16' where they apply."""
    k = case.key
    parts = [k.mechanism, k.mode, k.pattern, str(k.size), k.placement]
    if k.remote:
        parts.append("remote")
    if k.engine != model.DEFAULT_ENGINE:
        parts.append(f"engine={k.engine}")
    settings = run.settings(case)
    rate = settings.get("rate", model.MISSING)
    window = settings.get("window", model.MISSING)
    if rate not in (None, model.MISSING):
        parts.append(f"rate={_number(rate)}")
    elif k.mode == "async" and k.pattern == "latency" and window not in (None, model.MISSING):
        parts.append(f"window={_number(window)}")
    return "/".join(parts)


def _number(v):
    """Counters are written as doubles: 1234.0 reads better as 1234."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def exported_cases(run):
    """The measured cases, in the suite's order, and how many were left out."""
    cases = run.case_list(status=None)
    kept = [c for c in cases if c.ok and c.key.pattern in FIGURES]
    return kept, len(cases) - len(kept)


def github_action_benchmark(run):
    """(smaller-is-better entries, bigger-is-better entries)."""
    smaller, bigger = [], []
    for case in exported_cases(run)[0]:
        name = case_name(run, case)
        for fld, unit, label, _ in FIGURES[case.key.pattern]:
            value = case.value(fld)
            if value is None:
                continue
            entry = {"name": f"{name} {label}", "unit": unit, "value": _number(value)}
            samples = case.samples(fld)
            if len(samples) >= 2:
                lo, hi = min(samples), max(samples)
                entry["range"] = f"± {_number((hi - lo) / 2)}"
                entry["extra"] = (f"{len(samples)} repetitions, median of "
                                  f"{_number(lo)} .. {_number(hi)} {unit}")
            (smaller if SMALLER_IS_BETTER[case.key.pattern] else bigger).append(entry)
    return smaller, bigger


def bencher(run):
    """The Bencher Metric Format document."""
    doc = {}
    for case in exported_cases(run)[0]:
        measures = {}
        for fld, _, _, measure in FIGURES[case.key.pattern]:
            value = case.value(fld)
            if value is None:
                continue
            metric = {"value": _number(value)}
            samples = case.samples(fld)
            if len(samples) >= 2:
                metric["lower_value"] = _number(min(samples))
                metric["upper_value"] = _number(max(samples))
            measures[measure] = metric
        if measures:
            doc[case_name(run, case)] = measures
    return doc


# The files each format writes, in the order render() returns their texts.
FILES = {
    "github-action-benchmark": ("github-action-benchmark-latency.json",
                                "github-action-benchmark-throughput.json"),
    "bencher": ("bencher.json",),
}
FORMATS = tuple(FILES)


def render(run, fmt):
    """The texts of FILES[fmt], in that order."""
    if fmt == "github-action-benchmark":
        return [dumps(entries) for entries in github_action_benchmark(run)]
    return [dumps(bencher(run))]


def dumps(doc):
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
