"""Helpers shared by the report tool's tests: paths, running the entry
scripts, doctoring result files, and reading the SVGs out of a report."""

import copy
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
SCRIPTS = ROOT / "scripts"
REPORTS = ROOT / "reports"

if str(REPORTS) not in sys.path:
    sys.path.insert(0, str(REPORTS))

LATENCY_UP = ("p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns", "mean_ns", "min_ns",
              "max_ns", "real_time")
RATES_DOWN = ("bytes_per_second", "items_per_second")


def run_script(name, *args, timeout=300):
    """Runs scripts/NAME with args; returns the CompletedProcess (text)."""
    return subprocess.run([str(SCRIPTS / name), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save(doc, path):
    Path(path).write_text(json.dumps(doc), encoding="utf-8")
    return Path(path)


def doctor(doc, factor=1.3):
    """A copy of a result with every measured latency (and time per message)
    multiplied by factor and every rate divided by it: an injected regression
    (factor > 1) on every case and every repetition."""
    doc = copy.deepcopy(doc)
    for e in doc["benchmarks"]:
        if e.get("skipped") or e.get("error_occurred"):
            continue
        if e["run_type"] == "aggregate" and e.get("aggregate_name") == "cv":
            continue  # a ratio: scaling every sample leaves it unchanged
        for k in LATENCY_UP:
            if k in e:
                e[k] = e[k] * factor
        for k in RATES_DOWN:
            if k in e:
                e[k] = e[k] / factor
    return doc


def svgs(html):
    """The inline <svg> elements of a page, as strings."""
    return re.findall(r"<svg\b.*?</svg>", html, flags=re.S)


def _local(tag):
    return tag.rsplit("}", 1)[-1]


def drawn_data_groups(svg):
    """How many of an SVG's data groups (gid 'data-...') really draw
    something: a path with at least one segment, or a placed marker."""
    root = ET.fromstring(svg)
    count = 0
    for g in root.iter():
        if not g.get("id", "").startswith("data-"):
            continue
        for el in g.iter():
            tag, d = _local(el.tag), el.get("d", "")
            if tag == "use" or (tag == "path" and re.search(r"[LlCcZzHhVv]", d)):
                count += 1
                break
    return count
