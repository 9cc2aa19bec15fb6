// The .hgrm text (HdrHistogram's percentile distribution) of known
// distributions: the iteration's percentile steps, the values and counts at
// them, the 100% line and the footer.
#include "bench/core/hgrm.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace ipcbench {
namespace {

struct Line {
  double value, percentile;
  std::uint64_t count;
};

// The percentile lines (not the header, the 100% line or the footer).
std::vector<Line> lines_of(const std::string& text) {
  std::vector<Line> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    Line l{};
    double inverse = 0;
    if (std::sscanf(line.c_str(), "%lf %lf %lu %lf", &l.value, &l.percentile, &l.count, &inverse) ==
        4) {
      out.push_back(l);
    }
  }
  return out;
}

// 1..100 ns once each: every value has its own slot, so each line's value
// and count are exact.
Histogram one_to_hundred() {
  Histogram h = make_latency_histogram();
  for (std::uint64_t v = 1; v <= 100; ++v) h.record(v);
  return h;
}

TEST(Hgrm, HeaderAndFirstLinesAsHdrHistogramWritesThem) {
  const std::string text = hgrm_text(one_to_hundred(), 1.0);
  EXPECT_EQ(text.substr(0, text.find("\n\n") + 2),
            "       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
  EXPECT_NE(text.find("\n       1.000 0.000000000000          1           1.00\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\n      10.000 0.100000000000         10           1.11\n"),
            std::string::npos)
      << text;
}

TEST(Hgrm, StepsHalveTheDistanceToTheTopFiveTimesEach) {
  const std::vector<Line> l = lines_of(hgrm_text(one_to_hundred(), 1.0));
  // 0, then tenths to 50%, twentieths to 75%, fortieths to 87.5%, ...
  const std::vector<double> want = {0,      0.1, 0.2,    0.3,   0.4,    0.5,    0.55, 0.6,
                                    0.65,   0.7, 0.75,   0.775, 0.8,    0.825,  0.85, 0.875,
                                    0.8875, 0.9, 0.9125, 0.925, 0.9375, 0.94375};
  ASSERT_GE(l.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(l[i].percentile, want[i], 1e-12) << i;
    // The value is the smallest whose share of samples reaches the level.
    const auto rank = static_cast<std::uint64_t>(std::max(1.0, std::ceil(want[i] * 100 - 1e-9)));
    EXPECT_EQ(l[i].value, static_cast<double>(rank)) << i;
    EXPECT_EQ(l[i].count, rank) << i;
  }
}

TEST(Hgrm, EndsWithTheHundredPercentLineAndTheFooter) {
  const Histogram h = one_to_hundred();
  const std::string text = hgrm_text(h, 1.0);
  EXPECT_NE(text.find("\n     100.000 1.000000000000        100\n#[Mean    ="), std::string::npos)
      << text;
  EXPECT_NE(text.find("#[Mean    =       50.500, StdDeviation   =       28.866]\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("#[Max     =      100.000, Total count    =          100]\n"),
            std::string::npos);
  EXPECT_NE(
      text.find("#[Buckets = " + std::string(12 - std::to_string(h.bucket_count()).size(), ' ') +
                std::to_string(h.bucket_count()) + ", SubBuckets     ="),
      std::string::npos);
  // Every line's values and counts grow; the last percentile line holds all samples.
  const std::vector<Line> l = lines_of(text);
  for (std::size_t i = 1; i < l.size(); ++i) {
    EXPECT_GE(l[i].value, l[i - 1].value);
    EXPECT_GE(l[i].count, l[i - 1].count);
    EXPECT_GT(l[i].percentile, l[i - 1].percentile);
  }
  EXPECT_EQ(l.back().count, 100u);
}

TEST(Hgrm, MicrosecondsByDefault) {
  Histogram h = make_latency_histogram();
  h.record(52'000);  // 52 us
  const std::string text = hgrm_text(h);
  EXPECT_NE(text.find("\n      52.000 0.000000000000          1           1.00\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\n      52.000 1.000000000000          1\n"), std::string::npos) << text;
}

TEST(Hgrm, EmptyHistogramHasHeaderAndFooterOnly) {
  const std::string text = hgrm_text(make_latency_histogram());
  EXPECT_TRUE(lines_of(text).empty());
  EXPECT_NE(text.find("Total count    =            0]"), std::string::npos) << text;
}

}  // namespace
}  // namespace ipcbench
