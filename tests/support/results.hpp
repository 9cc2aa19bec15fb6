// Checks of the result file's entries (benchmarks[] of docs/result.schema.json) in C++: the
// fields every entry must have, with their types, and how an entry's figures agree with each
// other and with its name. Header-only, shared by the tests that read result files.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "text.hpp"

namespace testproc {

using nlohmann::json;

// What to call entry `b` in a message: its name, or the whole entry when it has none.
inline std::string entry_label(const json& b) {
  return b.contains("name") && b["name"].is_string() ? b["name"].get<std::string>() : b.dump();
}

// The number `key` of entry `b`, NaN (which fails every comparison) when it is not one.
inline double number(const json& b, const char* key) {
  return b.contains(key) && b[key].is_number() ? b[key].get<double>() : std::nan("");
}

// Whether `b` is a measured row: an iteration (not an aggregate), neither skipped nor failed.
inline bool is_measured_iteration(const json& b) {
  return b.value("run_type", "") == "iteration" && !b.value("skipped", false) &&
         !b.value("error_occurred", false);
}

// The counters every measured row has, and the statistics every measured latency row adds.
inline constexpr const char* kCounterFields[] = {"messages",
                                                 "messages_lost",
                                                 "bytes_per_second",
                                                 "items_per_second",
                                                 "runner_cpu_ns_per_msg",
                                                 "peer_cpu_ns_per_msg",
                                                 "runner_ctx_switches_per_msg",
                                                 "peer_ctx_switches_per_msg"};
inline constexpr const char* kLatencyFields[] = {"samples", "min_ns",   "p50_ns",   "p90_ns",
                                                 "p99_ns",  "p999_ns",  "p9999_ns", "max_ns",
                                                 "mean_ns", "stddev_ns"};

// Every field the contract requires of an entry, with its type: the C++ twin of the schema's
// rules for benchmark entries.
inline void expect_required_fields(const json& b) {
  SCOPED_TRACE(entry_label(b));
  ASSERT_TRUE(b.is_object());
  for (const char* key : {"name", "run_name", "mechanism", "mode", "pattern"}) {
    ASSERT_TRUE(b.contains(key) && b[key].is_string()) << key;
    EXPECT_FALSE(b[key].get<std::string>().empty()) << key;
  }
  ASSERT_TRUE(b.contains("run_type") && b["run_type"].is_string());
  EXPECT_TRUE(b["run_type"] == "iteration" || b["run_type"] == "aggregate") << b["run_type"];
  ASSERT_TRUE(b.contains("iterations") && b["iterations"].is_number_integer());
  EXPECT_GE(b["iterations"].get<std::int64_t>(), 0);
  for (const char* key : {"real_time", "cpu_time"}) {
    EXPECT_TRUE(b.contains(key) && b[key].is_number()) << key;
  }
  EXPECT_EQ(b.value("time_unit", ""), "ns");
  ASSERT_TRUE(b.contains("message_size") && b["message_size"].is_number_integer());
  EXPECT_GE(b["message_size"].get<std::int64_t>(), 16);
  ASSERT_TRUE(b.contains("placement") && b["placement"].is_string());
  const std::string placement = b["placement"];
  EXPECT_TRUE(placement == "cross-cpu" || placement == "same-cpu" || placement == "unpinned")
      << placement;
  ASSERT_TRUE(b.contains("cpus") && b["cpus"].is_array());
  for (const json& c : b["cpus"]) EXPECT_TRUE(c.is_number_integer() && c.get<int>() >= 0) << c;

  if (b.value("skipped", false)) {
    EXPECT_TRUE(b.contains("skip_message") && b["skip_message"].is_string());
    EXPECT_FALSE(b.contains("error_occurred"));
  }
  if (b.value("error_occurred", false)) {
    EXPECT_TRUE(b.contains("error_message") && b["error_message"].is_string());
  }
  if (!is_measured_iteration(b)) return;
  for (const char* key : kCounterFields) {
    ASSERT_TRUE(b.contains(key) && b[key].is_number()) << key;
    EXPECT_GE(b[key].get<double>(), 0) << key;
  }
  if (b["pattern"] != "latency") return;
  for (const char* key : kLatencyFields) {
    ASSERT_TRUE(b.contains(key) && b[key].is_number()) << key;
    EXPECT_GE(b[key].get<double>(), 0) << key;
  }
  ASSERT_TRUE(b.contains("histogram") && b["histogram"].is_array());
  ASSERT_GE(b["histogram"].size(), 2u);
  for (const json& point : b["histogram"]) {
    ASSERT_TRUE(point.is_object());
    ASSERT_TRUE(point.contains("percentile") && point["percentile"].is_number());
    ASSERT_TRUE(point.contains("value_ns") && point["value_ns"].is_number());
    EXPECT_GE(point["percentile"].get<double>(), 0);
    EXPECT_LE(point["percentile"].get<double>(), 100);
    EXPECT_GE(point["value_ns"].get<double>(), 0);
  }
}

// The spectrum is ordered: percentiles rise, values never fall.
inline void expect_ordered_histogram(const json& histogram) {
  for (std::size_t i = 1; i < histogram.size(); ++i) {
    EXPECT_LT(histogram[i - 1]["percentile"].get<double>(),
              histogram[i]["percentile"].get<double>())
        << "at point " << i;
    EXPECT_LE(histogram[i - 1]["value_ns"].get<double>(), histogram[i]["value_ns"].get<double>())
        << "at point " << i;
  }
}

// The histogram's value at exactly `percentile`, if it has that point.
inline std::optional<double> spectrum_at(const json& histogram, double percentile) {
  for (const json& point : histogram) {
    if (point["percentile"].get<double>() == percentile) return point["value_ns"].get<double>();
  }
  return std::nullopt;
}

// Checks one measured latency iteration entry's statistics against each other.
inline void expect_consistent_latency(const json& b) {
  SCOPED_TRACE(entry_label(b));
  const double min = number(b, "min_ns"), p50 = number(b, "p50_ns"), p90 = number(b, "p90_ns"),
               p99 = number(b, "p99_ns"), p999 = number(b, "p999_ns"),
               p9999 = number(b, "p9999_ns"), max = number(b, "max_ns");
  EXPECT_LE(min, p50);
  EXPECT_LE(p50, p90);
  EXPECT_LE(p90, p99);
  EXPECT_LE(p99, p999);
  EXPECT_LE(p999, p9999);
  EXPECT_LE(p9999, max);
  EXPECT_GT(min, 0) << "a round trip through the kernel takes time";
  EXPECT_EQ(number(b, "samples"), number(b, "messages"));
  EXPECT_LE(min, number(b, "mean_ns"));
  EXPECT_LE(number(b, "mean_ns"), max);
  // real_time is the timed span per round trip, i.e. the mean round-trip time; the histogram's
  // mean is within a bucket's width (< 1%) of it.
  EXPECT_NEAR(number(b, "mean_ns"), number(b, "real_time"), 0.02 * number(b, "real_time"));

  const json& h = b["histogram"];
  expect_ordered_histogram(h);
  EXPECT_EQ(h.front()["value_ns"].get<double>(), min) << "percentile 0 is the minimum";
  EXPECT_EQ(h.back()["value_ns"].get<double>(), max) << "percentile 100 is the maximum";
  EXPECT_EQ(h.front()["percentile"].get<double>(), 0);
  EXPECT_EQ(h.back()["percentile"].get<double>(), 100);
  for (const auto& [percentile, key] : {std::pair{50.0, "p50_ns"}, std::pair{90.0, "p90_ns"},
                                        std::pair{99.0, "p99_ns"}, std::pair{99.9, "p999_ns"}}) {
    const std::optional<double> v = spectrum_at(h, percentile);
    if (v) {
      EXPECT_EQ(*v, number(b, key)) << "histogram at " << percentile << " vs " << key;
    }
  }
}

// Counts and rates of one measured iteration entry agree with each other and with its size.
inline void expect_consistent_counters(const json& b, bool lossy) {
  SCOPED_TRACE(entry_label(b));
  const double messages = number(b, "messages");
  EXPECT_GT(messages, 0);
  EXPECT_TRUE(b["messages"].is_number_integer()) << "a count is a whole number";
  EXPECT_EQ(b["iterations"].get<double>(), 1) << "each case is one iteration per trial";
  if (!lossy) {
    EXPECT_EQ(number(b, "messages_lost"), 0);
  }
  const double size = b["message_size"].get<double>();
  const double per_message = b["pattern"] == "latency" ? 2 * size : size;
  const double items = number(b, "items_per_second");
  EXPECT_NEAR(number(b, "bytes_per_second"), items * per_message, 1e-6 * items * per_message);
  // real_time (ns per message) and items_per_second come from the same timed span.
  EXPECT_NEAR(items * number(b, "real_time"), 1e9, 1e3);
}

// Splits "<mechanism>/<mode>/<pattern>/<size>/manual_time" and checks the entry's fields
// against it.
inline void expect_fields_match_name(const json& b) {
  SCOPED_TRACE(entry_label(b));
  const std::string run_name = b["run_name"];
  const std::vector<std::string> parts = split(run_name, '/');
  ASSERT_EQ(parts.size(), 5u) << run_name;
  EXPECT_EQ(b["mechanism"], parts[0]);
  EXPECT_EQ(b["mode"], parts[1]);
  EXPECT_EQ(b["pattern"], parts[2]);
  EXPECT_EQ(std::to_string(b["message_size"].get<std::uint64_t>()), parts[3]);
  EXPECT_EQ(parts[4], "manual_time");
  if (b["run_type"] == "iteration") {
    EXPECT_EQ(b["name"], run_name);
  } else {
    EXPECT_EQ(b["name"], run_name + "_" + b.value("aggregate_name", "?"));
  }
}

// The entry's CPUs: two of them, and the placement says whether they are one or two.
inline void expect_placement(const json& b, const json& requested_cpus) {
  SCOPED_TRACE(entry_label(b));
  ASSERT_EQ(b["cpus"].size(), 2u);
  EXPECT_EQ(b["cpus"], requested_cpus) << "each side runs on the CPU it was pinned to";
  EXPECT_EQ(b["placement"], b["cpus"][0] == b["cpus"][1] ? "same-cpu" : "cross-cpu");
}

}  // namespace testproc
