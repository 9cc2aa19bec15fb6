#include "bench/core/hgrm.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>

namespace ipcbench {
namespace {

constexpr int kTicksPerHalfDistance = 5;

// HdrHistogram's PercentileIterator step: the distance to 100% is halved
// again and again, and each half is cut in kTicksPerHalfDistance steps.
double next_level(double level) {
  const auto halvings =
      static_cast<std::int64_t>(std::log(100.0 / (100.0 - level)) / std::log(2.0));
  const double ticks = kTicksPerHalfDistance * std::pow(2.0, static_cast<double>(halvings + 1));
  return level + 100.0 / ticks;
}

void append(std::string& out, const char* fmt, auto... args) {
  char line[160];
  const int n = std::snprintf(line, sizeof line, fmt, args...);
  if (n > 0) out.append(line, static_cast<std::size_t>(std::min<int>(n, sizeof line - 1)));
}

}  // namespace

std::string hgrm_text(const Histogram& h, double unit_ns, int decimals) {
  std::string out;
  append(out, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
  const std::uint64_t total = h.count();
  const double scale = std::pow(10.0, decimals);
  if (total > 0) {
    double level = 0;
    std::uint64_t seen = 0;
    bool done = false;
    h.for_each_recorded([&](std::uint64_t top, std::uint64_t n) {
      if (done) return;
      seen += n;
      // Rounded half up from the integer, as HdrHistogram (Java) prints
      // it: printf's rounding of 60.415 (in binary a hair below) gives 60.41.
      const double value = std::floor(static_cast<double>(top) * scale / unit_ns + 0.5) / scale;
      // Every level this slot reaches, as the iterator reports them; the
      // slot that holds the last sample reports once, then the 100% line.
      while (100.0 * static_cast<double>(seen) / static_cast<double>(total) >= level) {
        append(out, "%12.*f %2.12f %10llu %14.2f\n", decimals, value,
               std::floor(level * 1e10 + 0.5) / 1e12, static_cast<unsigned long long>(seen),
               1.0 / (1.0 - level / 100.0));
        level = next_level(level);
        if (seen == total) break;
      }
      if (seen == total) {
        append(out, "%12.*f %2.12f %10llu\n", decimals, value, 1.0,
               static_cast<unsigned long long>(seen));
        done = true;
      }
    });
  }
  append(out, "#[Mean    = %12.*f, StdDeviation   = %12.*f]\n", decimals, h.mean() / unit_ns,
         decimals, h.stddev() / unit_ns);
  append(out, "#[Max     = %12.*f, Total count    = %12llu]\n", decimals,
         std::floor(static_cast<double>(h.max()) * scale / unit_ns + 0.5) / scale,
         static_cast<unsigned long long>(total));
  append(out, "#[Buckets = %12zu, SubBuckets     = %12zu]\n", h.bucket_count(),
         h.sub_bucket_count());
  return out;
}

}  // namespace ipcbench
