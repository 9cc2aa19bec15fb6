// The load sweep's rules on synthetic figures: the ladder, the bound, when a
// step is saturated or its percentile backed, and the capacity of a
// mechanism that saturates at a known rate.
#include "bench/core/load_sweep.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace ipcbench {
namespace {

TEST(LoadSweep, DefaultLadderIsDenseWhereLatencyBendsAndGoesPastThePeak) {
  const std::vector<LoadStep> ladder = default_ladder();
  int below_peak = 0, past_peak = 0, fine = 0;
  for (std::size_t i = 0; i < ladder.size(); ++i) {
    EXPECT_EQ(ladder[i].rate, 0u);
    if (i > 0) {
      EXPECT_GT(ladder[i].fraction, ladder[i - 1].fraction);
    }
    below_peak += ladder[i].fraction < 1.0 ? 1 : 0;
    past_peak += ladder[i].fraction > 1.0 ? 1 : 0;
    if (i > 0 && ladder[i].fraction >= 0.6 && ladder[i].fraction <= 1.0) {
      fine += ladder[i].fraction - ladder[i - 1].fraction <= 0.05 + 1e-9 ? 1 : 0;
    }
  }
  EXPECT_GE(below_peak, 5);
  EXPECT_GE(past_peak, 2);
  EXPECT_GE(fine, 8) << "5% steps from 60% to 100%";
  EXPECT_EQ(ladder.front().label(), "5%");
  EXPECT_EQ(ladder.front().offered(20000), 1000u);
}

TEST(LoadSweep, LadderParsesSharesAndRates) {
  const auto shares = parse_ladder("10%,50%, 90%,100%,120%");
  ASSERT_EQ(shares.size(), 5u);
  EXPECT_DOUBLE_EQ(shares[1].fraction, 0.5);
  EXPECT_EQ(shares[4].offered(1000), 1200u);
  const auto rates = parse_ladder("50k,100000,1.5M");
  ASSERT_EQ(rates.size(), 3u);
  EXPECT_EQ(rates[0].rate, 50000u);
  EXPECT_EQ(rates[2].rate, 1500000u);
  EXPECT_EQ(rates[0].offered(1e9), 50000u) << "a rate does not follow the peak";
  EXPECT_EQ(rates[0].label(), "50000/s");
}

TEST(LoadSweep, BadLaddersSayWhatIsWrong) {
  for (const char* bad :
       {"", "50%,40%", "10%,10%", "fast", "0%", "-5%", "10%,,20%", "0", "2000%"}) {
    try {
      parse_ladder(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("--load-sweep"), std::string::npos) << e.what();
    }
  }
}

TEST(LoadSweep, SloParsesAPercentileAndABound) {
  const Slo a = parse_slo("p99=20us");
  EXPECT_DOUBLE_EQ(a.percentile, 99);
  EXPECT_DOUBLE_EQ(a.bound_ns, 20000);
  EXPECT_DOUBLE_EQ(a.bound_for(1e9), 20000) << "an absolute bound ignores the unloaded figure";
  const Slo b = parse_slo("p999=1.5ms");
  EXPECT_DOUBLE_EQ(b.percentile, 99.9);
  EXPECT_DOUBLE_EQ(b.bound_ns, 1.5e6);
  EXPECT_DOUBLE_EQ(parse_slo("p50=800ns").bound_ns, 800);
  Slo relative;
  relative.factor = 3;
  EXPECT_DOUBLE_EQ(relative.bound_for(10000), 30000);
  for (const char* bad : {"p98=1us", "p99=20", "99=1us", "p99=", "p99=-1us", "p99=fast"}) {
    EXPECT_THROW(parse_slo(bad), std::invalid_argument) << bad;
  }
}

TEST(LoadSweep, APercentileIsBackedByAHundredSamplesBeyondIt) {
  EXPECT_EQ(samples_for(50), 200u);
  EXPECT_EQ(samples_for(99), 10000u);
  EXPECT_EQ(samples_for(99.9), 100000u);
  EXPECT_TRUE(backed(99, 10000));
  EXPECT_FALSE(backed(99, 9999));
}

TEST(LoadSweep, SaturatedMeansMoreThanOnePercentShort) {
  EXPECT_FALSE(saturated(1000, 990));
  EXPECT_TRUE(saturated(1000, 989));
  EXPECT_FALSE(saturated(1000, 1003)) << "a little over is not short";
}

// A mechanism that carries at most 60k msg/s, with a queue's latency:
// p99 = unloaded / (1 - offered / 60k) below its limit.
std::vector<StepFigures> synthetic(double unloaded_ns) {
  std::vector<StepFigures> steps;
  for (double offered = 5000; offered <= 70000; offered += 5000) {
    StepFigures f;
    f.offered = offered;
    f.achieved = std::min(offered, 60000.0);
    f.samples = 20000;
    f.value_ns = offered < 60000 ? unloaded_ns / (1 - offered / 60000) : 1e9;
    steps.push_back(f);
  }
  return steps;
}

TEST(LoadSweep, CapacityOfAMechanismThatSaturatesAtAKnownRate) {
  const double unloaded = 10000;
  std::vector<StepFigures> steps = synthetic(unloaded);
  Slo relative;  // p99 within 2x the unloaded p99: offered <= 30k
  EXPECT_EQ(capacity(steps, relative, relative.bound_for(unloaded)), 30000);
  Slo absolute = parse_slo("p99=40us");  // offered <= 45k
  EXPECT_EQ(capacity(steps, absolute, absolute.bound_for(unloaded)), 45000);
  Slo loose = parse_slo("p99=10s");  // every unsaturated step qualifies: the limit itself
  EXPECT_EQ(capacity(steps, loose, loose.bound_for(unloaded)), 60000);
  // A step whose percentile its samples do not back does not count.
  steps[5].samples = 5000;  // the 30k step
  EXPECT_EQ(capacity(steps, relative, relative.bound_for(unloaded)), 25000);
  // Nothing within the bound: no capacity, not zero.
  Slo tight = parse_slo("p99=1us");
  EXPECT_FALSE(capacity(steps, tight, tight.bound_for(unloaded)).has_value());
}

}  // namespace
}  // namespace ipcbench
