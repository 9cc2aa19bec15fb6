"""compare's decision over many figures at once, on synthetic samples:
identical distributions flag nothing, one shifted figure is flagged alone,
too few samples or too much noise is said, never called unchanged."""

import random

from ipcbench_report import compare


class Side:
    """What compare_metric reads of a case: its median and its samples."""

    def __init__(self, samples):
        self._samples = list(samples)

    def value(self, _field):
        return sorted(self._samples)[len(self._samples) // 2]

    def samples(self, _field):
        return self._samples


LATENCY = compare.METRICS["latency"][0]
THROUGHPUT = compare.METRICS["throughput"][0]


def draw(rng, n, median, noise):
    return [median * rng.lognormvariate(0, noise) for _ in range(n)]


def judge(pairs, threshold=5.0, alpha=0.05, metric=LATENCY):
    """pairs: [(base samples, new samples)] -> their MetricChanges, decided together."""
    changes = [compare.compare_metric(f"case{i}", Side(b), Side(n), metric, threshold, alpha)
               for i, (b, n) in enumerate(pairs)]
    compare.decide(changes, threshold, alpha)
    return changes


def test_identical_distributions_flag_nothing_across_many_figures():
    """50 figures of identical code, 10 samples a side, +-10% noise: over 20
    comparisons at most one flags anything (Holm holds the whole comparison
    to alpha 0.05; testing each figure at 0.05 flags almost every one)."""
    flagged_runs = 0
    per_figure_flags = 0
    for seed in range(20):
        rng = random.Random(seed)
        pairs = [(draw(rng, 10, 1000, 0.1), draw(rng, 10, 1000, 0.1)) for _ in range(50)]
        changes = judge(pairs)
        if any(c.verdict in ("regressed", "improved") for c in changes):
            flagged_runs += 1
        per_figure_flags += any(c.p_value < 0.05 and abs(c.worse_pct) > 5 for c in changes)
    assert flagged_runs <= 1
    assert per_figure_flags >= 15  # what the uncorrected test did


def test_one_shifted_figure_is_flagged_alone():
    rng = random.Random(7)
    pairs = [(draw(rng, 10, 1000, 0.03), draw(rng, 10, 1000, 0.03)) for _ in range(49)]
    pairs.append((draw(rng, 10, 1000, 0.03), draw(rng, 10, 1250, 0.03)))
    changes = judge(pairs)
    assert changes[-1].verdict == "regressed"
    assert [c.case for c in changes if c.verdict != "unchanged"] == ["case49"]
    assert changes[-1].detectable_pct is not None and changes[-1].detectable_pct < 25


def test_a_throughput_drop_is_a_regression_and_a_rise_an_improvement():
    rng = random.Random(3)
    drop = judge([(draw(rng, 10, 1e9, 0.02), draw(rng, 10, 0.7e9, 0.02))], metric=THROUGHPUT)
    rise = judge([(draw(rng, 10, 1e9, 0.02), draw(rng, 10, 1.3e9, 0.02))], metric=THROUGHPUT)
    assert drop[0].verdict == "regressed" and rise[0].verdict == "improved"


def test_too_few_samples_is_cannot_judge_not_unchanged():
    """5 against 5 can give p 2/252 at best: below 0.05 for one figure, but
    not below 0.05/12 when twelve are judged together."""
    rng = random.Random(1)
    pairs = [(draw(rng, 5, 1000, 0.05), draw(rng, 5, 1000, 0.05)) for _ in range(11)]
    pairs.append((draw(rng, 5, 1000, 0.01), draw(rng, 5, 1500, 0.01)))
    changes = judge(pairs)
    assert {c.verdict for c in changes} == {"too few samples"}
    alone = judge(pairs[-1:])
    assert alone[0].verdict == "regressed"  # one figure alone: 2/252 < 0.05


def test_too_noisy_is_said_with_what_could_have_been_seen():
    rng = random.Random(5)
    changes = judge([(draw(rng, 10, 1000, 0.6), draw(rng, 10, 1000, 0.6))])
    assert changes[0].verdict == "too noisy"
    assert changes[0].detectable_pct is None or changes[0].detectable_pct > 15
    quiet = judge([(draw(rng, 10, 1000, 0.01), draw(rng, 10, 1000, 0.01))])
    assert quiet[0].verdict == "unchanged"
    # Barely any noise: the threshold is the smallest change that would count.
    assert quiet[0].detectable_pct == 5.0
    assert 0.5 < quiet[0].noise_base_pct < 2.0


def test_holm_levels_step_down_and_stop_at_the_first_miss():
    class C:
        method = "U test"

        def __init__(self, p):
            self.p_value = p
            self.level = None

    cs = [C(0.001), C(0.03), C(0.012), C(0.04)]
    rejected = compare.holm_levels(cs, 0.05)
    # sorted: 0.001 <= 0.05/4, 0.012 <= 0.05/3, 0.03 > 0.05/2: stop there (0.04 < 0.05 is not reached)
    assert rejected == {id(cs[0]), id(cs[2])}
    assert cs[0].level == 0.05 / 4 and cs[2].level == 0.05 / 3 and cs[1].level == 0.05 / 2


def test_a_call_more_per_message_is_listed_and_timing_dependent_counts_are_not():
    base = Side([2.0, 2.0, 2.001, 2.0])
    one_more = Side([3.0, 3.001, 3.0, 3.0])
    moved = compare.syscall_changes("pipe/sync/latency/64 B", base, one_more)
    assert [(c.side, round(c.new - c.base, 2)) for c in moved] == [("runner", 1.0), ("peer", 1.0)]
    assert "+1.00" in moved[0].text()
    # An async wait finds the data there or not: counts that overlap across
    # repetitions are not a finding, even with medians a call apart.
    wobbly = compare.syscall_changes("x", Side([4.0, 5.9, 4.2, 5.5]), Side([5.2, 6.1, 4.1, 5.8]))
    assert wobbly == []
    assert compare.syscall_changes("x", Side([2.0]), Side([2.0])) == []


def test_no_counts_on_a_side_is_not_a_comparison():
    class Bare(Side):
        def samples(self, _field):
            return []
    assert compare.syscall_changes("x", Bare([1.0]), Side([2.0])) is None


def test_without_tracepoint_counts_ipcbenchs_own_calls_are_compared():
    class AdapterOnly(Side):
        def samples(self, field):
            return self._samples if "_own_" in field else []
    moved = compare.syscall_changes("pipe/sync/latency/64 B", AdapterOnly([2.0, 2.0, 2.0]),
                                    AdapterOnly([3.0, 3.0, 3.0]))
    assert [(c.side, c.own_only) for c in moved] == [("runner", True), ("peer", True)]
    assert "own system calls (ipcbench's code) per message 2.00 -> 3.00" in moved[0].text()
    # With tracepoint counts on both sides those are compared, not the adapter's.
    assert all(not c.own_only for c in compare.syscall_changes(
        "x", Side([2.0, 2.0, 2.0]), Side([3.0, 3.0, 3.0])))
