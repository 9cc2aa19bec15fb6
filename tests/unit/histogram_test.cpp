// Behavioural tests for ipcbench::Histogram: accuracy against exact order statistics, merge,
// bounded memory, coordinated-omission correction and argument validation.
#include "bench/core/histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

namespace ipcbench {
namespace {

constexpr std::uint64_t kHighest = 100'000'000'000ULL;
constexpr std::size_t kSamples = 200'000;
constexpr std::uint64_t kSeed = 0x1bcbe4c4ULL;

// Percentiles in parts per million so the exact rank can be computed in integer arithmetic,
// independent of the floating-point rank logic under test.
constexpr std::uint64_t kPercentilesPpm[] = {0,       10'000,  100'000, 250'000, 500'000,  750'000,
                                             900'000, 990'000, 999'000, 999'900, 1'000'000};

// The sorted sample at index ceil(p/100 * n) - 1, clamped to index 0.
std::uint64_t exact_percentile(const std::vector<std::uint64_t>& sorted, std::uint64_t ppm) {
  const std::uint64_t n = sorted.size();
  const std::uint64_t rank = (ppm * n + 999'999) / 1'000'000;
  return sorted[rank == 0 ? 0 : rank - 1];
}

Histogram histogram_of(const std::vector<std::uint64_t>& values) {
  Histogram h = make_latency_histogram();
  for (std::uint64_t v : values) EXPECT_TRUE(h.record(v));
  return h;
}

// Every checked percentile must be within 1% of the exact order statistic. The histogram reports
// the top of the slot, so it must also never be below the exact value.
void expect_percentiles_within_one_percent(std::vector<std::uint64_t> values) {
  const Histogram h = histogram_of(values);
  std::sort(values.begin(), values.end());
  for (std::uint64_t ppm : kPercentilesPpm) {
    const double p = static_cast<double>(ppm) / 10'000.0;
    const std::uint64_t exact = exact_percentile(values, ppm);
    const std::uint64_t got = h.value_at_percentile(p);
    EXPECT_GE(got, exact) << "p=" << p;
    EXPECT_LE(std::abs(static_cast<double>(got) - static_cast<double>(exact)),
              0.01 * static_cast<double>(exact))
        << "p=" << p << " exact=" << exact << " histogram=" << got;
  }
  EXPECT_EQ(h.value_at_percentile(0.0), values.front());
  EXPECT_EQ(h.value_at_percentile(100.0), values.back());
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.max(), values.back());
  EXPECT_EQ(h.count(), values.size());
}

std::vector<std::uint64_t> uniform_values() {
  std::mt19937_64 rng(kSeed);
  std::uniform_int_distribution<std::uint64_t> dist(50, 5'000'000);
  std::vector<std::uint64_t> values(kSamples);
  for (auto& v : values) v = dist(rng);
  return values;
}

// 99% log-normal around 2 us, 1% log-uniform tail from 10 us up to 1 s.
std::vector<std::uint64_t> heavy_tailed_values() {
  std::mt19937_64 rng(kSeed + 1);
  std::lognormal_distribution<double> body(std::log(2000.0), 0.25);
  std::uniform_real_distribution<double> tail_exponent(4.0, 9.0);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::vector<std::uint64_t> values(kSamples);
  for (auto& v : values) {
    const double x = coin(rng) < 0.01 ? std::pow(10.0, tail_exponent(rng)) : body(rng);
    v = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(x));
  }
  return values;
}

TEST(Histogram, ConstructorRejectsBadArguments) {
  EXPECT_THROW(Histogram(0, 1000, 2), std::invalid_argument);            // lowest < 1
  EXPECT_THROW(Histogram(10, 19, 2), std::invalid_argument);             // highest < 2*lowest
  EXPECT_THROW(Histogram(1, 1000, 0), std::invalid_argument);            // too few figures
  EXPECT_THROW(Histogram(1, 1000, 6), std::invalid_argument);            // too many figures
  EXPECT_THROW(Histogram(1ULL << 50, ~0ULL, 5), std::invalid_argument);  // lowest too coarse
  EXPECT_NO_THROW(Histogram(10, 20, 1));
  EXPECT_NO_THROW(Histogram(1, ~0ULL, 5));
}

TEST(Histogram, FactoryBuildsStandardLatencyLayout) {
  const Histogram h = make_latency_histogram();
  EXPECT_EQ(h.lowest(), 1u);
  EXPECT_EQ(h.highest(), kHighest);
  EXPECT_EQ(h.significant_figures(), 2);
  EXPECT_EQ(h.count(), 0u);
}

TEST(Histogram, EmptyHistogramReportsZeros) {
  const Histogram h = make_latency_histogram();
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.value_at_percentile(0.0), 0u);
  EXPECT_EQ(h.value_at_percentile(50.0), 0u);
  EXPECT_EQ(h.value_at_percentile(100.0), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.stddev(), 0.0);
}

TEST(Histogram, RecordAboveHighestReturnsFalse) {
  Histogram h = make_latency_histogram();
  ASSERT_TRUE(h.record(500));
  EXPECT_FALSE(h.record(kHighest + 1));
  EXPECT_FALSE(h.record(~0ULL));
  EXPECT_FALSE(h.record_n(kHighest + 1, 10));
  EXPECT_FALSE(h.record_corrected(kHighest + 1, 1000));
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(h.max(), 500u);
  EXPECT_EQ(h.value_at_percentile(100.0), 500u);
}

TEST(Histogram, RecordAtHighestIsAccepted) {
  Histogram h = make_latency_histogram();
  EXPECT_TRUE(h.record(kHighest));
  EXPECT_EQ(h.max(), kHighest);
  EXPECT_EQ(h.value_at_percentile(50.0), kHighest);

  Histogram full_range(1, ~0ULL, 3);
  EXPECT_TRUE(full_range.record(~0ULL));
  EXPECT_TRUE(full_range.record(0));
  EXPECT_EQ(full_range.value_at_percentile(100.0), ~0ULL);
  EXPECT_EQ(full_range.value_at_percentile(0.0), 0u);
}

TEST(Histogram, RecordBelowLowestCounts) {
  Histogram h(1000, 1'000'000'000, 2);
  EXPECT_TRUE(h.record(5));
  EXPECT_TRUE(h.record(0));
  EXPECT_EQ(h.count(), 2u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 5u);
  EXPECT_EQ(h.value_at_percentile(100.0), 5u);
}

TEST(Histogram, ValueAtPercentileUsesCeilingRank) {
  // Below 256 ns the standard histogram has 1 ns slots, so order statistics are exact.
  Histogram h = make_latency_histogram();
  for (std::uint64_t v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(h.value_at_percentile(0.0), 1u);
  EXPECT_EQ(h.value_at_percentile(1.0), 1u);
  EXPECT_EQ(h.value_at_percentile(1.5), 2u);
  EXPECT_EQ(h.value_at_percentile(50.0), 50u);
  EXPECT_EQ(h.value_at_percentile(50.5), 51u);
  EXPECT_EQ(h.value_at_percentile(99.0), 99u);
  EXPECT_EQ(h.value_at_percentile(99.9), 100u);
  EXPECT_EQ(h.value_at_percentile(100.0), 100u);
  EXPECT_EQ(h.value_at_percentile(-5.0), 1u);     // clamped
  EXPECT_EQ(h.value_at_percentile(250.0), 100u);  // clamped
}

TEST(Histogram, DecimalPercentileDoesNotOvershootRank) {
  // 99.9% of 1000 samples is rank 999 exactly; floating-point noise must not push it to 1000.
  Histogram h = make_latency_histogram();
  for (std::uint64_t v = 1; v <= 999; ++v) h.record(10);
  h.record(1'000'000);
  EXPECT_EQ(h.value_at_percentile(99.9), 10u);
}

TEST(Histogram, PercentilesWithinOnePercentOnUniformData) {
  expect_percentiles_within_one_percent(uniform_values());
}

TEST(Histogram, PercentilesWithinOnePercentOnHeavyTailedData) {
  expect_percentiles_within_one_percent(heavy_tailed_values());
}

TEST(Histogram, PercentilesExactOnConstantData) {
  const std::vector<std::uint64_t> values(kSamples, 123'457);
  expect_percentiles_within_one_percent(values);
  const Histogram h = histogram_of(values);
  for (double p : {0.0, 1.0, 50.0, 99.99, 100.0}) EXPECT_EQ(h.value_at_percentile(p), 123'457u);
  EXPECT_DOUBLE_EQ(h.mean(), 123'457.0);
  EXPECT_DOUBLE_EQ(h.stddev(), 0.0);
}

TEST(Histogram, MeanAndStddevWithinOnePercentOnUniformData) {
  const std::vector<std::uint64_t> values = uniform_values();
  const Histogram h = histogram_of(values);
  long double sum = 0;
  for (std::uint64_t v : values) sum += static_cast<long double>(v);
  const long double exact_mean = sum / static_cast<long double>(values.size());
  long double sum_sq = 0;
  for (std::uint64_t v : values) {
    const long double d = static_cast<long double>(v) - exact_mean;
    sum_sq += d * d;
  }
  const double exact_stddev =
      static_cast<double>(std::sqrt(sum_sq / static_cast<long double>(values.size())));
  EXPECT_NEAR(h.mean(), static_cast<double>(exact_mean), 0.01 * static_cast<double>(exact_mean));
  EXPECT_NEAR(h.stddev(), exact_stddev, 0.01 * exact_stddev);
}

TEST(Histogram, RecordNEqualsRepeatedRecord) {
  Histogram repeated = make_latency_histogram();
  Histogram bulk = make_latency_histogram();
  for (int i = 0; i < 7; ++i) repeated.record(31'337);
  repeated.record(12);
  EXPECT_TRUE(bulk.record_n(31'337, 7));
  EXPECT_TRUE(bulk.record_n(12, 1));
  EXPECT_TRUE(bulk.record_n(5, 0));  // zero copies: accepted, changes nothing
  EXPECT_EQ(bulk.count(), repeated.count());
  EXPECT_EQ(bulk.min(), repeated.min());
  EXPECT_EQ(bulk.max(), repeated.max());
  for (double p : {0.0, 10.0, 12.5, 13.0, 50.0, 100.0}) {
    EXPECT_EQ(bulk.value_at_percentile(p), repeated.value_at_percentile(p)) << "p=" << p;
  }
}

TEST(Histogram, MergeOfHalvesEqualsWhole) {
  const std::vector<std::uint64_t> values = heavy_tailed_values();
  const std::size_t half = values.size() / 2;
  Histogram whole = histogram_of(values);
  Histogram first = make_latency_histogram();
  Histogram second = make_latency_histogram();
  for (std::size_t i = 0; i < values.size(); ++i) (i < half ? first : second).record(values[i]);

  first.merge(second);
  EXPECT_EQ(first.count(), whole.count());
  EXPECT_EQ(first.min(), whole.min());
  EXPECT_EQ(first.max(), whole.max());
  for (std::uint64_t ppm : kPercentilesPpm) {
    const double p = static_cast<double>(ppm) / 10'000.0;
    EXPECT_EQ(first.value_at_percentile(p), whole.value_at_percentile(p)) << "p=" << p;
  }
  EXPECT_DOUBLE_EQ(first.mean(), whole.mean());
}

TEST(Histogram, MergeIntoEmptyAndFromEmptyKeepsMinMax) {
  Histogram filled = make_latency_histogram();
  filled.record(700);
  filled.record(9'000);
  Histogram empty = make_latency_histogram();

  filled.merge(empty);
  EXPECT_EQ(filled.count(), 2u);
  EXPECT_EQ(filled.min(), 700u);
  EXPECT_EQ(filled.max(), 9'000u);

  empty.merge(filled);
  EXPECT_EQ(empty.count(), 2u);
  EXPECT_EQ(empty.min(), 700u);
  EXPECT_EQ(empty.max(), 9'000u);
}

TEST(Histogram, MergeOfDifferentLayoutsThrows) {
  Histogram h = make_latency_histogram();
  h.record(42);
  EXPECT_THROW(h.merge(Histogram(2, kHighest, 2)), std::invalid_argument);
  EXPECT_THROW(h.merge(Histogram(1, kHighest / 2, 2)), std::invalid_argument);
  EXPECT_THROW(h.merge(Histogram(1, kHighest, 3)), std::invalid_argument);
  EXPECT_EQ(h.count(), 1u);  // failed merges leave the target untouched
}

TEST(Histogram, MemoryIsBoundedAndFixed) {
  Histogram h = make_latency_histogram();
  const std::size_t before = h.memory_bytes();
  EXPECT_GT(before, 0u);
  EXPECT_LT(before, std::size_t{1} << 20);

  // Log-uniform over the whole trackable range, so every bucket gets touched.
  std::mt19937_64 rng(kSeed + 2);
  std::uniform_real_distribution<double> exponent(0.0, std::log10(static_cast<double>(kHighest)));
  for (int i = 0; i < 1'000'000; ++i) {
    const auto v = static_cast<std::uint64_t>(std::pow(10.0, exponent(rng)));
    ASSERT_TRUE(h.record(std::min(v, kHighest)));
  }
  h.record(0);
  h.record(kHighest);
  EXPECT_EQ(h.memory_bytes(), before);
  EXPECT_EQ(h.count(), 1'000'002u);
}

TEST(Histogram, ResetClearsSamplesButKeepsMemory) {
  Histogram h = make_latency_histogram();
  for (std::uint64_t v : uniform_values()) h.record(v);
  const std::size_t bytes = h.memory_bytes();
  h.reset();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.value_at_percentile(50.0), 0u);
  EXPECT_EQ(h.value_at_percentile(100.0), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.memory_bytes(), bytes);

  // Usable again, with no leftovers from before the reset.
  h.record(1'000);
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(h.min(), 1'000u);
  EXPECT_EQ(h.max(), 1'000u);
  EXPECT_EQ(h.value_at_percentile(0.0), 1'000u);
  EXPECT_EQ(h.value_at_percentile(100.0), 1'000u);
}

TEST(Histogram, RecordCorrectedAddsSyntheticSamples) {
  // 100 with interval 10 also records 90, 80, ..., 10: ten samples in all (HdrHistogram_c).
  Histogram h = make_latency_histogram();
  EXPECT_TRUE(h.record_corrected(100, 10));
  EXPECT_EQ(h.count(), 10u);
  EXPECT_EQ(h.min(), 10u);
  EXPECT_EQ(h.max(), 100u);
  EXPECT_EQ(h.value_at_percentile(50.0), 50u);

  // 1000 with interval 300 adds 700 and 400 (100 < 300 stops the series).
  Histogram g = make_latency_histogram();
  EXPECT_TRUE(g.record_corrected(1'000, 300));
  EXPECT_EQ(g.count(), 3u);
  EXPECT_EQ(g.min(), 400u);
}

TEST(Histogram, RecordCorrectedWithoutStallRecordsOnlyValue) {
  Histogram h = make_latency_histogram();
  EXPECT_TRUE(h.record_corrected(100, 0));    // no expected interval
  EXPECT_TRUE(h.record_corrected(100, 100));  // not slower than expected
  EXPECT_TRUE(h.record_corrected(100, 500));
  EXPECT_TRUE(h.record_corrected(100, 51));  // 100 - 51 = 49 < 51: nothing synthetic
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(h.min(), 100u);
}

// The bulk (per-slot) path of record_corrected must match recording the series one by one.
TEST(Histogram, RecordCorrectedLongStallMatchesNaiveSeries) {
  struct Case {
    std::uint64_t value;
    std::uint64_t interval;
  };
  for (const Case c : {Case{10'000'000, 7}, Case{123'456'789, 1'000}, Case{5'000, 1},
                       Case{kHighest, 99'999'989}, Case{1'000'003, 3}}) {
    Histogram fast = make_latency_histogram();
    Histogram naive = make_latency_histogram();
    ASSERT_TRUE(fast.record_corrected(c.value, c.interval));
    naive.record(c.value);
    for (std::uint64_t m = c.value - c.interval; m >= c.interval; m -= c.interval) naive.record(m);
    EXPECT_EQ(fast.count(), naive.count()) << c.value << "/" << c.interval;
    EXPECT_EQ(fast.count(), c.value / c.interval);
    EXPECT_EQ(fast.min(), naive.min());
    EXPECT_EQ(fast.max(), naive.max());
    for (double p = 0.0; p <= 100.0; p += 0.5) {
      ASSERT_EQ(fast.value_at_percentile(p), naive.value_at_percentile(p))
          << c.value << "/" << c.interval << " p=" << p;
    }
    EXPECT_DOUBLE_EQ(fast.mean(), naive.mean());
  }
}

}  // namespace
}  // namespace ipcbench
