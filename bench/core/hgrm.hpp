// A latency histogram as HdrHistogram's percentile distribution text (the
// .hgrm files of HdrHistogram's outputPercentileDistribution, which its
// plotter, wrk2 and sockperf users read): a header, one line per
// percentile step (five steps per halving of the distance to 100%), the
// 100% line, and the mean / max / count footer. Checked line by line
// against HdrHistogram 2.1.11 (Debian's libhdrhistogram-java) on the same
// samples: the same steps, counts and values, except that our 100% line and
// Max are the exact largest sample, not the top of its slot.
#pragma once

#include <string>

#include "bench/core/histogram.hpp"

namespace ipcbench {

// Values are written in units of unit_ns nanoseconds (1000: microseconds,
// the unit our .hgrm files use) with `decimals` decimals.
std::string hgrm_text(const Histogram& h, double unit_ns = 1000.0, int decimals = 3);

}  // namespace ipcbench
