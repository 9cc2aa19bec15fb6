"""CSV of every case: one row per case and repetition or aggregate.

For spreadsheets and ad-hoc analysis: every numeric field the suite writes,
raw (ns, bytes/s, counts), with the identity columns first, then the
suite's judgement of the case: the floor that applies (name, figure, ratio,
or why none), the stability across repetitions (cv, unstable) and the sanity
gate's measurement_error (status 'flagged'); last, where the peer ran:
across_hosts ('true' for a case of a remote run, whose peer ran on the
remote host, else 'false') and remote_address (the serve address, '' for a
local case). The latency histogram is not flattened here; the JSON has it.
"""

import csv as _csv
import io

from .model import NUMERIC_FIELDS

IDENTITY = ["host", "file", "name", "run_type", "aggregate_name", "repetition_index",
            "mechanism", "mode", "pattern", "message_size", "placement", "cpus",
            "status", "message"]
JUDGEMENT = ["floor", "floor_value", "floor_source", "floor_ratio", "floor_note", "cv",
             "cv_metric", "unstable", "measurement_error"]
WHERE = ["across_hosts", "remote_address"]
HEADER = IDENTITY + list(NUMERIC_FIELDS) + JUDGEMENT + WHERE


def _status(entry, flagged_reason=""):
    if entry.get("error_occurred"):
        return "failed", entry.get("error_message", "")
    if entry.get("skipped"):
        return "skipped", entry.get("skip_message", "")
    if entry.get("measurement_error") or flagged_reason:
        return "flagged", ""
    return "ok", ""


def _text(value):
    """A JSON scalar as CSV text: '' for null or absent, true/false for booleans."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def rows(runs):
    """Dicts keyed by HEADER, in file order."""
    for run in runs:
        flagged = {f.get("name"): f.get("reason", "") for f in run.flagged}
        for entry in run.raw["benchmarks"]:
            gate = flagged.get(entry.get("run_name")) or flagged.get(entry.get("name")) or ""
            status, message = _status(entry, gate)
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
            for name in JUDGEMENT:
                row[name] = _text(entry.get(name))
            if status == "flagged" and not row["measurement_error"]:
                row["measurement_error"] = gate
            across = entry.get("across_hosts") is True
            remote = entry.get("remote") if isinstance(entry.get("remote"), dict) else {}
            address = remote.get("address") if isinstance(remote.get("address"), str) else ""
            row["across_hosts"] = "true" if across else "false"
            row["remote_address"] = (address or run.remote_address) if across else ""
            yield row


def render_csv(runs):
    buf = io.StringIO()
    writer = _csv.DictWriter(buf, fieldnames=HEADER, lineterminator="\n")
    writer.writeheader()
    for row in rows(runs):
        writer.writerow(row)
    return buf.getvalue()
