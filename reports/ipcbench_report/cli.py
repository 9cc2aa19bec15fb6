"""Command line: report, compare, merge, export and history over ipcbench result files.

Exit status: 0 success (compare: no regression among the paired cases); 1
compare found a regression, or an output could not be written at the end
(one line on stderr: 'cannot write PATH: reason'); 2 bad input or an output
path refused before any work, with one line on stderr naming the file and
why. compare and merge also exit 2 for files whose schema versions give
real_time different meanings ('A has schema_version 1 and B has 2: ...'),
merge for a case measured under different settings in two of its files, and
compare, after writing its outputs, when cases are in both files but none
under the same settings ('nothing compared: ...'); compare's cases under
different settings are otherwise listed, not failed.

Outputs follow output.py's rules: each is opened or checked before the
inputs are loaded; a regular file is replaced atomically, a FIFO or a
character device (or /dev/stdout, /dev/fd/N) is written through, a symlink
stays a symlink, merge -o - writes to standard output.
"""

import argparse
import re
import sys
from pathlib import Path

from . import model, output

PROG = "ipcbench-report"
SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|K|M|G)?\s*$", re.IGNORECASE)
SIZE_FACTORS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
                "g": 1 << 30, "gib": 1 << 30}


class UsageError(Exception):
    """Bad command-line input that argparse itself cannot see."""


def parse_size(text):
    """'64', '1KiB', '16KiB', '1MiB' -> bytes, as the suite's --sizes reads them."""
    m = SIZE_RE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a message size: {text!r} (e.g. 64, 1KiB)")
    return int(m.group(1)) * SIZE_FACTORS[(m.group(2) or "").lower()]


def positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return v


def build_parser():
    parser = argparse.ArgumentParser(prog=PROG, description=(
        "Reports over ipcbench result files (the JSON of 'ipcbench run --out'). "
        "Every input is validated against docs/result.schema.json first."))
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("report", help="HTML report, Markdown summary and CSV of one or more runs")
    rep.add_argument("files", nargs="+", type=Path, help="result files (several: one per host)")
    rep.add_argument("-o", "--out", type=Path, default=Path("results/report"),
                     help="output directory, created if missing (default results/report); "
                          "report.html, summary.md and cases.csv in it may be FIFOs, "
                          "devices or symlinks")
    rep.add_argument("--size", type=parse_size, default=None,
                     help="message size for the distribution and CPU plots (default 64 B)")
    rep.add_argument("--title", default=None, help="title of the HTML report")
    rep.add_argument("--allow-incomplete", action="store_true",
                     help="accept interrupted runs ('complete': false)")

    cmp = sub.add_parser("compare", help="compare base and new, exit 1 on a regression")
    cmp.add_argument("base", type=Path)
    cmp.add_argument("new", type=Path)
    cmp.add_argument("--threshold", type=positive_float, default=5.0,
                     help="percent change in the worse direction that counts (default 5)")
    cmp.add_argument("--alpha", type=positive_float, default=0.05,
                     help="significance level of the Mann-Whitney U test (default 0.05)")
    cmp.add_argument("--cross-host", action="store_true",
                     help="compare files from different hosts (with a warning)")
    cmp.add_argument("-o", "--out", type=Path, default=None,
                     help="also write compare.html and compare.md into this directory")
    cmp.add_argument("--allow-incomplete", action="store_true",
                     help="accept interrupted runs ('complete': false)")

    exp = sub.add_parser("export", help="a result in a CI benchmark tracker's format")
    exp.add_argument("file", type=Path, help="result file")
    exp.add_argument("--format", required=True, choices=export_formats(),
                     help="github-action-benchmark: its customSmallerIsBetter (latency) and "
                          "customBiggerIsBetter (throughput) JSON, two files; bencher: "
                          "Bencher Metric Format JSON")
    exp.add_argument("-o", "--out", type=Path, default=Path("results/export"),
                     help="output directory, created if missing (default results/export)")
    exp.add_argument("--allow-incomplete", action="store_true",
                     help="accept interrupted runs ('complete': false)")

    his = sub.add_parser("history", help="keep runs in an SQLite file; trends and steps")
    hsub = his.add_subparsers(dest="history_command", required=True)
    hadd = hsub.add_parser("add", help="store a result file (again: nothing changes)")
    hadd.add_argument("file", type=Path, help="result file")
    hadd.add_argument("--db", type=Path, required=True, help="the SQLite file (created if missing)")
    hadd.add_argument("--allow-incomplete", action="store_true",
                      help="accept interrupted runs ('complete': false)")
    hshow = hsub.add_parser("show", help="trend page with the lasting step changes")
    hshow.add_argument("--db", type=Path, required=True, help="the SQLite file")
    hshow.add_argument("-o", "--out", type=Path, default=Path("results/history"),
                       help="output directory, created if missing (default results/history); "
                            "history.html in it")

    mrg = sub.add_parser("merge", help="pool the repetitions of several runs of one host")
    mrg.add_argument("files", nargs="+", type=Path)
    mrg.add_argument("-o", "--out", required=True,
                     help="merged result file ('-': standard output; a FIFO or a device is "
                          "written through, a symlink's target replaced)")
    mrg.add_argument("--allow-incomplete", action="store_true")
    return parser


def cmd_report(args):
    from . import csv, html, markdown
    with output.Outputs() as outs:
        out = outs.directory(args.out)
        targets = [outs.file(out / name) for name in ("report.html", "summary.md", "cases.csv")]
        runs = model.load_all(args.files, args.allow_incomplete)
        texts = (html.render_report(runs, args.size, args.title),
                 markdown.render_summary(runs), csv.render_csv(runs))
        for target, text in zip(targets, texts):
            target.write(text)
            print(f"{PROG}: wrote {target}", file=target.info)
    return 0


def export_formats():
    from . import export
    return export.FORMATS


def cmd_export(args):
    from . import export
    with output.Outputs() as outs:
        out = outs.directory(args.out)
        targets = [outs.file(out / name) for name in export.FILES[args.format]]
        run = model.load_all([args.file], args.allow_incomplete)[0]
        _, left_out = export.exported_cases(run)
        for target, text in zip(targets, export.render(run, args.format)):
            target.write(text)
            print(f"{PROG}: wrote {target}", file=target.info)
        if left_out:
            print(f"{PROG}: {left_out} case(s) failed, skipped or flagged: not exported",
                  file=sys.stderr)
    return 0


def cmd_history(args):
    from . import history
    try:
        if args.history_command == "add":
            run = model.load_all([args.file], args.allow_incomplete)[0]
            added, figures = history.add(args.db, run)
            if added:
                print(f"{PROG}: added {args.file} ({run.meta.get('git_revision')}, "
                      f"{figures} figures) to {args.db}", file=sys.stderr)
            else:
                print(f"{PROG}: {args.file} is already in {args.db}: nothing changed",
                      file=sys.stderr)
            return 0
        with output.Outputs() as outs:
            out = outs.directory(args.out)
            target = outs.file(out / "history.html")
            runs, series = history.load(args.db)
            target.write(history.render(runs, series))
            print(f"{PROG}: wrote {target}", file=target.info)
        return 0
    except history.HistoryError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2


def cmd_compare(args):
    with output.Outputs() as outs:
        targets = []
        if args.out:
            out = outs.directory(args.out)
            targets = [outs.file(out / "compare.html"), outs.file(out / "compare.md")]
        return _compare(args, targets)


def _compare(args, targets):
    from . import compare, html
    base, new = model.load_all([args.base, args.new], args.allow_incomplete, comparable=True)
    warnings = []
    if not model.same_host(base, new):
        what = (f"base is from {base.host.get('hostname')} ({base.host.get('cpu_model')}), "
                f"new from {new.host.get('hostname')} ({new.host.get('cpu_model')})")
        if not args.cross_host:
            raise model.InputError(args.new, f"different host: {what}; figures from two "
                                             "machines are not comparable (pass --cross-host "
                                             "to compare anyway)")
        warnings.append(f"comparing across hosts ({what}): differences may be the hardware, "
                        "not the code")
    if not model.same_remote_host(base, new):
        rb, rn = base.remote_host, new.remote_host
        what = (f"base's peer ran on {base.remote_host_label()} ({rb.get('cpu_model')}), "
                f"new's on {new.remote_host_label()} ({rn.get('cpu_model')})")
        if not args.cross_host:
            raise model.InputError(args.new, f"different remote host: {what}; figures against "
                                             "two peer machines are not comparable (pass "
                                             "--cross-host to compare anyway)")
        warnings.append(f"comparing against different remote hosts ({what}): differences "
                        "may be the peer's hardware or the network, not the code")
    result = compare.compare_runs(base, new, args.threshold, args.alpha)
    result.warnings = warnings
    for w in warnings:
        print(f"{PROG}: warning: {w}", file=sys.stderr)
    sys.stdout.write(compare.render_console(result))
    if targets:
        texts = (html.render_compare(result), compare.render_markdown(result))
        for target, text in zip(targets, texts):
            target.write(text)
            print(f"{PROG}: wrote {target}", file=target.info)
    if result.nothing_paired:
        print(f"{PROG}: {compare.nothing_paired_line(result)}", file=sys.stderr)
    return result.exit_code


def cmd_merge(args):
    with output.Outputs() as outs:
        target = outs.file(args.out, allow_stdout=True, make_parents=True)
        return _merge(args, target)


def _merge(args, target):
    from . import merge
    runs = model.load_all(args.files, args.allow_incomplete, comparable=True)
    for run in runs[1:]:
        if not model.same_host(runs[0], run):
            raise model.InputError(run.path, "different host from the first file; merging "
                                             "runs of two machines would mix their figures")
        if (runs[0].remote is None) != (run.remote is None):
            first, this = (("a remote", "a local") if run.remote is None
                           else ("a local", "a remote"))
            raise model.InputError(run.path, f"{this} run, the first file is {first} run; "
                                             "merging would pool local and across-hosts "
                                             "figures")
        if (not model.same_remote_host(runs[0], run)
                or runs[0].remote_address != run.remote_address):
            raise model.InputError(run.path, "a different remote host from the first file's; "
                                             "merging would pool figures against two peers")
    conflicts = merge.setting_conflicts(runs)
    if conflicts:
        run, label, first, differences = conflicts[0]
        more = len(conflicts) - 1
        raise model.InputError(run.path, (
            f"{label}: not merged: "
            f"{model.differences_text(differences, str(first.path), str(run.path))}; pooling "
            "the two would mix two experiments"
            + (f" ({more} more case(s) differ)" if more else "")))
    text = merge.dumps(merge.merge(runs))
    model.load(args.out, allow_incomplete=True, text=text)  # the merged file must stay valid
    target.write(text)
    where = "standard output" if args.out == output.STDOUT else args.out
    print(f"{PROG}: wrote {where} ({len(runs)} runs merged)", file=target.info)
    return 0


COMMANDS = {"report": cmd_report, "compare": cmd_compare, "merge": cmd_merge,
            "export": cmd_export, "history": cmd_history}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (model.InputError, output.OutputError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    except output.WriteError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{PROG}: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return 2
