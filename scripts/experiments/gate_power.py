#!/usr/bin/python3
"""Measures the CI gate's decision on this machine: its false alarms on
identical code and its power against a known slowdown.

Input: a folder of interleaved rounds, each round one result file per side,
named SIDE-ROUND.json (e.g. base-1.json, same-1.json, slow-1.json, ...,
as `ipcbench run ... --repetitions 2 --out` wrote them, the sides run one
after the other within each round). Disjoint groups of --rounds
consecutive rounds stand for separate gate runs: each group's rounds are
pooled per side (as the gate's merge does) and compared (as the gate's
compare does). For each group it prints which cases compare flagged
(regressed or improved) for the null side against base and for the slow
side against base; then how many groups flagged anything on the null side
(false alarms), and how many flagged the slowed mechanism and nothing else.

  /usr/bin/python3 scripts/experiments/gate_power.py RUNS --null same --slow slow \\
      --slowed pipe --rounds 5 --threshold 10
"""

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "reports"))
from ipcbench_report import compare, merge, model  # noqa: E402


def rounds_of(folder, side):
    found = {}
    for p in folder.glob(f"{side}-*.json"):
        m = re.fullmatch(rf"{re.escape(side)}-(\d+)\.json", p.name)
        if m:
            found[int(m.group(1))] = p
    return found


def pooled(paths, label):
    runs = [model.load(p) for p in paths]
    return model.load(Path(f"{label}.json"), data=merge.merge(runs))


def flagged(result):
    return sorted(set(result.regressed) | set(result.improved))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--base", default="base")
    ap.add_argument("--null", default="same", help="the side built from the same code as base")
    ap.add_argument("--slow", default=None, help="the side with a known slowdown")
    ap.add_argument("--slowed", default="pipe", help="the mechanism the slowdown is in")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per simulated gate run")
    ap.add_argument("--threshold", type=float, default=compare.DEFAULT_THRESHOLD)
    ap.add_argument("--alpha", type=float, default=compare.DEFAULT_ALPHA)
    args = ap.parse_args()

    sides = {s: rounds_of(args.folder, s) for s in (args.base, args.null, args.slow) if s}
    common = sorted(set.intersection(*(set(r) for r in sides.values())))
    groups = [common[i:i + args.rounds] for i in range(0, len(common) - args.rounds + 1,
                                                         args.rounds)]
    if not groups:
        sys.exit(f"fewer than {args.rounds} rounds with every side in {args.folder}")
    false_alarms = detected = only = 0
    for g, rounds in enumerate(groups, 1):
        base = pooled([sides[args.base][r] for r in rounds], f"base-{g}")
        null = compare.compare_runs(base, pooled([sides[args.null][r] for r in rounds], "null"),
                                    args.threshold, args.alpha)
        line = f"group {g} (rounds {rounds[0]}-{rounds[-1]}): null flags {flagged(null) or 'nothing'}"
        false_alarms += bool(flagged(null))
        if args.slow:
            slow = compare.compare_runs(
                base, pooled([sides[args.slow][r] for r in rounds], "slow"), args.threshold,
                args.alpha)
            hits = flagged(slow)
            ours = [c for c in slow.regressed if c.startswith(args.slowed + "/")]
            others = [c for c in hits if not c.startswith(args.slowed + "/")]
            detected += bool(ours)
            only += bool(ours) and not others
            line += f"; slow flags {len(ours)} {args.slowed} case(s), others {others or 'none'}"
        judge = sum(1 for v in null.case_verdicts().values() if v == "cannot judge")
        line += f"; {judge} case(s) too noisy/too few to judge"
        print(line)
    n = len(groups)
    print(f"\n{n} simulated gate runs of {args.rounds} rounds, threshold {args.threshold:g}%, "
          f"alpha {args.alpha:g}: null side flagged anything in {false_alarms}/{n}", end="")
    if args.slow:
        print(f"; slow side flagged {args.slowed} in {detected}/{n}, {args.slowed} and nothing "
              f"else in {only}/{n}")
    else:
        print()


if __name__ == "__main__":
    main()
