"""CSV of every case: one row per case and repetition or aggregate.

For spreadsheets and ad-hoc analysis: every numeric field the suite writes,
raw (ns, bytes/s, counts), with the identity columns first. The latency
histogram is not flattened here; the JSON has it.
"""

import csv as _csv
import io

from .model import NUMERIC_FIELDS

IDENTITY = ["host", "file", "name", "run_type", "aggregate_name", "repetition_index",
            "mechanism", "mode", "pattern", "message_size", "placement", "cpus",
            "status", "message"]
HEADER = IDENTITY + list(NUMERIC_FIELDS)


def _status(entry):
    if entry.get("error_occurred"):
        return "failed", entry.get("error_message", "")
    if entry.get("skipped"):
        return "skipped", entry.get("skip_message", "")
    return "ok", ""


def rows(runs):
    """Dicts keyed by HEADER, in file order."""
    for run in runs:
        for entry in run.raw["benchmarks"]:
            status, message = _status(entry)
            row = {
                "host": run.label, "file": run.path.name, "name": entry["name"],
                "run_type": entry["run_type"], "aggregate_name": entry.get("aggregate_name", ""),
                "repetition_index": entry.get("repetition_index", ""),
                "mechanism": entry["mechanism"], "mode": entry["mode"],
                "pattern": entry["pattern"], "message_size": entry["message_size"],
                "placement": entry["placement"],
                "cpus": " ".join(str(c) for c in entry.get("cpus", [])),
                "status": status, "message": message,
            }
            for name in NUMERIC_FIELDS:
                v = entry.get(name, "")
                row[name] = "" if v is None or isinstance(v, (dict, list)) else v
            yield row


def render_csv(runs):
    buf = io.StringIO()
    writer = _csv.DictWriter(buf, fieldnames=HEADER, lineterminator="\n")
    writer.writeheader()
    for row in rows(runs):
        writer.writerow(row)
    return buf.getvalue()
