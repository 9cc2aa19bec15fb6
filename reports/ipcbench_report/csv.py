"""CSV of every case: one row per case and repetition or aggregate.

For spreadsheets and ad-hoc analysis: every numeric field the suite writes,
raw (ns, bytes/s, counts), with the identity columns first, then how the
case kept messages in flight and what limited it (wait, window, rate,
lateness, in-flight limits, flow stall and channel-full fractions, late,
and the report's in_flight and limited_by), then the suite's judgement of the case: the floor that applies (name, figure, ratio,
or why none), the stability across repetitions (cv, unstable) and the sanity
gate's measurement_error (status 'flagged'); last, where the peer ran:
across_hosts ('true' for a case of a remote run, whose peer ran on the
remote host, else 'false') and remote_address (the serve address, '' for a
local case). The latency histogram is not flattened here; the JSON has it.
"""

import csv as _csv
import io

from . import model
from .model import NUMERIC_FIELDS

IDENTITY = ["host", "file", "name", "run_type", "aggregate_name", "repetition_index",
            "mechanism", "mode", "pattern", "message_size", "placement", "cpus",
            "status", "message"]
# How the case kept messages in flight and what limited it (schema version 2;
# '' on a version-1 entry that lacks them): the entry's own fields, then
# in_flight (the report's reading: '1', '16 (queueing)', 'open loop 2000/s',
# 'limit 65536 msgs (harness)') and limited_by (sender_behind,
# harness_flow_control, mechanism_buffer_full; ';'-separated).
LOOP = ["wait", "window", "includes_queueing", "rate", "rate_kept_up", "max_in_flight",
        "lateness_p50_ns", "lateness_p99_ns", "lateness_max_ns", "sender_behind", "late",
        "in_flight_limit_messages", "in_flight_limit_bytes", "in_flight_limit_source",
        "flow_stall_fraction", "channel_full_fraction", "lost_ack_wait_fraction"]
READING = ["in_flight", "limited_by"]
JUDGEMENT = ["floor", "floor_value", "floor_source", "floor_ratio", "floor_note", "cv",
             "cv_metric", "unstable", "measurement_error"]
WHERE = ["across_hosts", "remote_address"]
# Copies of the payload per message on the case's path ('' when the file
# does not say): 0 is a loan API, whose bytes were handed over, not moved.
PATH = ["copies"]
HEADER = IDENTITY + list(NUMERIC_FIELDS) + LOOP + PATH + READING + JUDGEMENT + WHERE


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
            for name in LOOP + PATH:
                row[name] = _text(entry.get(name))
            row["in_flight"] = model.in_flight_of(entry, run.config, entry["mode"],
                                                  entry["pattern"]).text()
            row["limited_by"] = ";".join(lim.name for lim in model.entry_limits(entry))
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
