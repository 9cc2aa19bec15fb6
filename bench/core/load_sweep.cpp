#include "bench/core/load_sweep.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "bench/core/units.hpp"

namespace ipcbench {
namespace {

std::string trimmed(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// "12.5" -> 12.5; anything else is nullopt.
std::optional<double> number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used != s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace

std::string LoadStep::label() const {
  char buf[32];
  if (rate > 0) {
    std::snprintf(buf, sizeof buf, "%llu/s", static_cast<unsigned long long>(rate));
  } else {
    std::snprintf(buf, sizeof buf, "%g%%", fraction * 100);
  }
  return buf;
}

std::uint64_t LoadStep::offered(double peak_echo_rate) const {
  if (rate > 0) return rate;
  return std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::llround(fraction * peak_echo_rate)));
}

std::vector<LoadStep> default_ladder() {
  std::vector<LoadStep> out;
  for (int pct : {5, 10, 20, 30, 40, 50, 60, 65, 70, 75, 80, 85, 90, 95, 100, 105, 110, 120}) {
    out.push_back(LoadStep{pct / 100.0, 0});
  }
  return out;
}

std::vector<LoadStep> parse_ladder(std::string_view text) {
  std::vector<LoadStep> out;
  for (const std::string& raw : split_list(text)) {
    const std::string item = trimmed(raw);
    const auto bad = [&item](const std::string& why) {
      std::string message = "--load-sweep step '";
      message.append(item).append("' ").append(why).append(
          " (steps are shares of the peak echo rate like 50% or rates like 20000 or 50k, "
          "ascending, comma-separated)");
      return std::invalid_argument(message);
    };
    if (item.empty()) throw bad("is empty");
    LoadStep step;
    if (item.back() == '%') {
      const auto v = number(item.substr(0, item.size() - 1));
      if (!v || *v <= 0 || *v > 1000) throw bad("is not a share between 0% and 1000%");
      step.fraction = *v / 100;
    } else {
      double scale = 1;
      std::string digits = item;
      if (digits.back() == 'k' || digits.back() == 'K') scale = 1e3;
      if (digits.back() == 'm' || digits.back() == 'M') scale = 1e6;
      if (scale > 1) digits.pop_back();
      const auto v = number(digits);
      if (!v || *v * scale < 1 || *v * scale > 1e9)
        throw bad("is not a rate of 1 to 10^9 messages/s");
      step.rate = static_cast<std::uint64_t>(std::llround(*v * scale));
    }
    out.push_back(step);
  }
  // Ascending within each kind; shares and rates may be mixed (the order of
  // a mix is known only once the peak is).
  for (std::size_t i = 1; i < out.size(); ++i) {
    const LoadStep& a = out[i - 1];
    const LoadStep& b = out[i];
    const bool same_kind = (a.rate > 0) == (b.rate > 0);
    if (same_kind && (a.rate > 0 ? b.rate <= a.rate : b.fraction <= a.fraction)) {
      throw std::invalid_argument("--load-sweep steps must ascend without repeats: '" + a.label() +
                                  "' then '" + b.label() + "'");
    }
  }
  return out;
}

std::string Slo::text() const {
  char buf[64];
  if (bound_ns > 0) {
    std::snprintf(buf, sizeof buf, "p%g <= %g ns", percentile, bound_ns);
  } else {
    std::snprintf(buf, sizeof buf, "p%g <= %gx unloaded", percentile, factor);
  }
  return buf;
}

Slo parse_slo(std::string_view text) {
  const std::string s = trimmed(text);
  const auto bad = [&s](const std::string& why) {
    std::string message = "--slo '";
    message.append(s).append("' ").append(why).append(
        " (give a percentile and a bound: p99=20us, p50=800ns, p999=1ms)");
    return std::invalid_argument(message);
  };
  const std::size_t eq = s.find('=');
  if (s.size() < 2 || s[0] != 'p' || eq == std::string::npos) throw bad("is not pNN=TIME");
  const std::string pct = s.substr(1, eq - 1);
  double percentile = 0;
  if (pct == "50" || pct == "90" || pct == "99") {
    percentile = std::stod(pct);
  } else if (pct == "999") {
    percentile = 99.9;
  } else {
    throw bad("names no percentile it knows (p50, p90, p99, p999)");
  }
  std::string bound = s.substr(eq + 1);
  double unit = 0;
  for (const auto& [suffix, ns] :
       {std::pair<const char*, double>{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}}) {
    const std::string_view sv(suffix);
    if (bound.size() > sv.size() && bound.ends_with(sv)) {
      unit = ns;
      bound.resize(bound.size() - sv.size());
      break;
    }
  }
  const auto v = number(bound);
  if (unit == 0 || !v || *v <= 0) throw bad("has no bound with a unit (ns, us, ms, s)");
  Slo slo;
  slo.percentile = percentile;
  slo.bound_ns = *v * unit;
  return slo;
}

std::uint64_t samples_for(double percentile) {
  if (percentile <= 0) return static_cast<std::uint64_t>(kSamplesBeyond);
  // (1 - 1e-12): 100 / (100 - 99.9) is a hair above 1000 in binary.
  return static_cast<std::uint64_t>(
      std::ceil(kSamplesBeyond * 100 / (100 - percentile) * (1 - 1e-12)));
}

bool backed(double percentile, std::uint64_t samples) { return samples >= samples_for(percentile); }

bool saturated(double offered, double achieved) { return achieved < 0.99 * offered; }

std::optional<double> capacity(const std::vector<StepFigures>& steps, const Slo& slo,
                               double bound_ns) {
  std::optional<double> best;
  for (const StepFigures& s : steps) {
    if (saturated(s.offered, s.achieved)) continue;
    if (!backed(slo.percentile, s.samples) || s.value_ns > bound_ns) continue;
    if (!best || s.offered > *best) best = s.offered;
  }
  return best;
}

}  // namespace ipcbench
