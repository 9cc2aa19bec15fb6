"""Merge result files of the same suite into one, pooling repetitions.

The CI gate runs base and head interleaved in rounds so that both see the
same machine conditions; merging a side's rounds gives compare one file per
side with every repetition in it (enough for the significance test).
Aggregate entries are dropped: they summarise one round only, and the
reports fall back to the iteration entries. For the same reason the
per-round stability fields (cv, cv_metric, unstable) are dropped: the
reports compute the cv of the pooled repetitions. The calibration is the
first run's; the flagged cases are those of every run (a case one round
flagged stays flagged). Entries measured across hosts (across_hosts) are
grouped apart from local ones of the same name; the command line refuses to
merge a local run with a remote one, or runs against two remote hosts.

Only one experiment is pooled: the command line refuses files whose schema
versions give real_time different meanings (model.check_comparable) and a
case measured in two files under different settings (setting_conflicts:
cpus, verify, engine, rate, window, the in-flight limits; model.Run.settings).
"""

import copy
import json

from . import model, output


def merge(runs):
    """One result document with the iteration entries of all runs, grouped
    by case in first-seen order and renumbered."""
    first = runs[0].raw
    groups = {}
    for run in runs:
        for entry in run.raw["benchmarks"]:
            if entry["run_type"] == "iteration":
                entry = copy.deepcopy(entry)
                for key in PER_ROUND_FIELDS:
                    entry.pop(key, None)
                where = entry.get("across_hosts") is True
                groups.setdefault((entry["run_name"], where), []).append(entry)
    benchmarks = []
    for entries in groups.values():
        for i, entry in enumerate(entries):
            entry["repetition_index"] = i
            entry["repetitions"] = len(entries)
            benchmarks.append(entry)
    meta = copy.deepcopy(first["ipcbench"])
    meta["complete"] = all(r.complete for r in runs)
    meta["failed"] = _failed(runs)
    if any("flagged" in r.meta for r in runs):
        meta["flagged"] = _flagged(runs)
    meta["configuration"]["repetitions"] = max(len(e) for e in groups.values()) if groups else 1
    meta["merged_from"] = [str(r.path) for r in runs]
    return {"context": copy.deepcopy(first.get("context", {})), "benchmarks": benchmarks,
            "ipcbench": meta}


PER_ROUND_FIELDS = ("cv", "cv_metric", "unstable")


def setting_conflicts(runs):
    """[(run, case label, first run, differences)]: every case of a run that
    an earlier run measured under different settings (compared with the
    first run that has the case; model.setting_differences), in file order."""
    first_seen = {}
    out = []
    for run in runs:
        for key, case in run.cases.items():
            if key not in first_seen:
                first_seen[key] = (run, case)
                continue
            first, first_case = first_seen[key]
            differences = model.setting_differences(first, first_case, run, case)
            if differences:
                out.append((run, key.label(), first, differences))
    return out


def _flagged(runs):
    """The union of the runs' flagged lists, once per case name."""
    seen, out = set(), []
    for run in runs:
        for item in run.flagged:
            if item.get("name") not in seen:
                seen.add(item.get("name"))
                out.append(item)
    return out


def _failed(runs):
    """The union of the runs' failed lists, once per case name."""
    seen, out = set(), []
    for run in runs:
        for item in run.meta["failed"]:
            if item["name"] not in seen:
                seen.add(item["name"])
                out.append(item)
    return out


def dumps(doc):
    """The merged file's text."""
    return json.dumps(doc, indent=1) + "\n"


def write_json(doc, path):
    """Writes as every output of the tool is written (output.py: atomically
    for a file, through for a FIFO or device, '-' for standard output)."""
    with output.Outputs() as outs:
        outs.file(path, allow_stdout=True, make_parents=True).write(dumps(doc))
