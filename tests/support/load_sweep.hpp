// Checks on a load sweep's result that hold whatever the machine's speed:
// the steps that ran are the ladder's first ones, up to the second
// saturated step in a row; the summary says how many ran, how many were
// unsaturated and whether the sweep stopped; no step echoed more than it
// was offered.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace testproc {

inline void expect_sweep_follows_its_rule(const std::vector<nlohmann::json>& steps,
                                          const std::vector<std::string>& ladder,
                                          const nlohmann::json& summary) {
  ASSERT_GE(steps.size(), 1u);
  ASSERT_LE(steps.size(), ladder.size());
  int in_a_row = 0;
  bool stopped = false;
  std::size_t unsaturated = 0;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const nlohmann::json& s = steps[i];
    EXPECT_EQ(s["load_step"], ladder[i]) << "steps run in the ladder's order";
    EXPECT_FALSE(stopped) << "a step ran after the sweep stopped: " << s.dump();
    const double offered = s["offered_rate"].get<double>();
    const double achieved = s["achieved_rate"].get<double>();
    EXPECT_EQ(s["saturated"].get<bool>(), achieved < 0.99 * offered) << s.dump();
    EXPECT_LE(achieved, 1.02 * offered) << "more echoes than messages offered: " << s.dump();
    in_a_row = s["saturated"].get<bool>() ? in_a_row + 1 : 0;
    unsaturated += s["saturated"].get<bool>() ? 0 : 1;
    if (in_a_row == 2) stopped = true;
  }
  if (!stopped) {
    EXPECT_EQ(steps.size(), ladder.size()) << "stopped with no reason";
  }
  EXPECT_EQ(summary["steps_run"], steps.size());
  EXPECT_EQ(summary["unsaturated_steps"], unsaturated);
  EXPECT_EQ(summary["stopped"].is_string(), stopped) << summary.dump();
}

}  // namespace testproc
