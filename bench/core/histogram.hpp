// Log-linear ("HDR-style") latency histogram with bounded, up-front memory.
//
// Layout: values are split into buckets by their highest set bit. Bucket 0 covers
// [0, kSub << unit) with kSub linear sub-buckets of width (1 << unit). Every further bucket b
// covers [kSub << (unit + b - 1), kSub << (unit + b)) with kSub / 2 sub-buckets of width
// 1 << (unit + b); its lower half would duplicate bucket b - 1, so it is not stored. With
// kSub >= 2 * 10^sig_figs, every stored sub-bucket at or above (kSub / 2) << unit is at most
// 1 / (kSub / 2) of its lowest value wide, which is the precision guarantee. Below that values
// are quantised to 1 << unit <= lowest, i.e. `lowest` is the smallest discernible difference.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

namespace ipcbench {

class Histogram {
 public:
  // Tracks values (ns) in [0, highest]. Any value v >= lowest * 10^significant_figures shares its
  // slot only with values within v / 10^significant_figures of it; below that, slots are at most
  // lowest wide (exactly 1 wide when lowest == 1 and v < 2 * 10^significant_figures).
  // Requires lowest >= 1, highest >= 2 * lowest, significant_figures in [1, 5], and
  // lowest small enough that lowest * 2 * 10^significant_figures (rounded up to a power of two)
  // fits in 63 bits; throws std::invalid_argument otherwise. Allocates the counts array here
  // (may throw std::bad_alloc); no other member function allocates.
  Histogram(std::uint64_t lowest, std::uint64_t highest, int significant_figures)
      : highest_(highest), lowest_(lowest), significant_figures_(significant_figures) {
    if (lowest < 1) throw std::invalid_argument("Histogram: lowest must be >= 1");
    if (lowest > highest / 2) throw std::invalid_argument("Histogram: highest must be >= 2*lowest");
    if (significant_figures < 1 || significant_figures > 5) {
      throw std::invalid_argument("Histogram: significant_figures must be in [1, 5]");
    }
    std::uint64_t two_times_ten_pow = 2;
    for (int i = 0; i < significant_figures; ++i) two_times_ten_pow *= 10;
    // log2 of the next power of two >= 2 * 10^sf.
    const int sub_magnitude = static_cast<int>(std::bit_width(two_times_ten_pow - 1));
    unit_magnitude_ = static_cast<int>(std::bit_width(lowest)) - 1;  // floor(log2(lowest))
    // The bucket-0 mask and the shift in index_of() must stay inside 64 bits.
    if (unit_magnitude_ + sub_magnitude > 63) {
      throw std::invalid_argument("Histogram: lowest too large for the requested precision");
    }
    half_magnitude_ = sub_magnitude - 1;
    bucket0_msb_ = unit_magnitude_ + sub_magnitude - 1;
    const std::uint64_t sub_count = std::uint64_t{1} << sub_magnitude;
    sub_bucket_mask_ = (sub_count - 1) << unit_magnitude_;

    // Count buckets until the first value bucket `buckets - 1` cannot hold exceeds highest.
    std::size_t buckets = 1;
    std::uint64_t first_untracked = sub_count << unit_magnitude_;
    while (first_untracked <= highest) {
      ++buckets;
      // The bucket just added reaches 2^64, so every uint64 is covered; avoid the overflow.
      if (first_untracked > std::numeric_limits<std::uint64_t>::max() / 2) break;
      first_untracked <<= 1;
    }
    counts_.assign((buckets + 1) << half_magnitude_, 0);
  }

  // Records one value (ns). Returns false and records nothing if v > highest(); values below
  // lowest() land in the first bucket (min() still tracks them exactly). Never allocates.
  bool record(std::uint64_t v) noexcept {
    if (v > highest_) return false;
    ++counts_[index_of(v)];
    ++total_;
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
    return true;
  }

  // Records v n times (n == 0 records nothing but still returns true for an in-range v).
  // Returns false and records nothing if v > highest().
  bool record_n(std::uint64_t v, std::uint64_t n) noexcept {
    if (v > highest_) return false;
    if (n == 0) return true;
    counts_[index_of(v)] += n;
    total_ += n;
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
    return true;
  }

  // Coordinated-omission correction with HdrHistogram_c's hdr_record_corrected_value semantics:
  // records v, then, if expected_interval > 0 and v > expected_interval, also records
  // v - k * expected_interval for k = 1, 2, ... while that value is >= expected_interval
  // (floor(v / expected_interval) - 1 synthetic samples). Returns false and records nothing if
  // v > highest(). Cost is bounded by the number of counts slots, not by v / expected_interval,
  // so a tiny interval cannot stall the caller.
  bool record_corrected(std::uint64_t v, std::uint64_t expected_interval) noexcept {
    if (!record(v)) return false;
    if (expected_interval == 0 || v <= expected_interval) return true;
    const std::uint64_t interval = expected_interval;
    const std::uint64_t synthetic = v / interval - 1;
    if (synthetic == 0) return true;
    const std::uint64_t smallest = v - synthetic * interval;
    const std::uint64_t largest = v - interval;
    const std::size_t first = index_of(smallest);
    const std::size_t last = index_of(largest);
    if (synthetic <= last - first + 1) {
      // Few samples: recording them one by one is cheaper than the per-slot divisions below.
      for (std::uint64_t k = 1; k <= synthetic; ++k) counts_[index_of(v - k * interval)] += 1;
    } else {
      // Many samples: for each slot, count the k with v - k*interval inside the slot's range.
      for (std::size_t i = first; i <= last; ++i) {
        const std::uint64_t lo = std::max(value_from_index(i), smallest);
        const std::uint64_t hi = std::min(value_from_index(i) + width_at_index(i) - 1, largest);
        const std::uint64_t k_hi = (v - lo) / interval;
        const std::uint64_t k_lo = (v - hi) / interval + ((v - hi) % interval != 0 ? 1 : 0);
        if (k_hi >= k_lo) counts_[i] += k_hi - k_lo + 1;
      }
    }
    total_ += synthetic;
    min_ = std::min(min_, smallest);
    return true;
  }

  // Adds every count of `other` (which may be *this). Throws std::invalid_argument, leaving
  // *this unchanged, unless lowest(), highest() and significant_figures() all match.
  void merge(const Histogram& other) {
    if (other.lowest_ != lowest_ || other.highest_ != highest_ ||
        other.significant_figures_ != significant_figures_) {
      throw std::invalid_argument("Histogram::merge: histogram layouts differ");
    }
    if (other.total_ == 0) return;
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  // Value (ns) at percentile p in [0, 100] (clamped; NaN counts as 0). Finds the smallest
  // recorded value v with at least p% of samples <= v (rank ceil(p/100 * count()), at least 1)
  // and returns the highest value in v's slot, capped at max(). Hence the result is >= the exact
  // order statistic and within the slot's relative width (< 1% at 2 significant figures) above
  // it. p <= 0 returns min(), p >= 100 returns max(), both exact. Returns 0 when empty.
  std::uint64_t value_at_percentile(double p) const noexcept {
    if (total_ == 0) return 0;
    if (!(p > 0.0)) return min_;
    if (p >= 100.0) return max_;
    // p is usually a decimal such as 99.9 that binary floating point cannot represent, so
    // p/100 * n may land a hair above an integer rank; snap those back instead of rounding up.
    const double exact_rank = p / 100.0 * static_cast<double>(total_);
    const double nearest = std::round(exact_rank);
    const double rank_d = std::abs(exact_rank - nearest) <= 1e-9 * std::max(1.0, exact_rank)
                              ? nearest
                              : std::ceil(exact_rank);
    const std::uint64_t rank =
        std::clamp<std::uint64_t>(static_cast<std::uint64_t>(rank_d), 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        const std::uint64_t top = value_from_index(i) + width_at_index(i) - 1;
        return std::clamp(top, min_, max_);
      }
    }
    return max_;  // Unreachable while counts_ and total_ agree.
  }

  // Exact smallest recorded value (ns); 0 when empty.
  std::uint64_t min() const noexcept { return total_ == 0 ? 0 : min_; }
  // Exact largest recorded value (ns); 0 when empty.
  std::uint64_t max() const noexcept { return max_; }

  // Mean (ns) computed from slot midpoints (not an exact running sum: that would cost the hot
  // path an extra add and could overflow). Midpoints are clamped to [min(), max()], so a
  // constant distribution is exact; otherwise the error is below half a slot width. 0 if empty.
  double mean() const noexcept {
    if (total_ == 0) return 0.0;
    double sum = 0.0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i] != 0) sum += static_cast<double>(counts_[i]) * midpoint(i);
    }
    return sum / static_cast<double>(total_);
  }

  // Population standard deviation (ns) over the same clamped slot midpoints as mean(); 0 when
  // empty.
  double stddev() const noexcept {
    if (total_ == 0) return 0.0;
    const double mu = mean();
    double sum_sq = 0.0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i] == 0) continue;
      const double d = midpoint(i) - mu;
      sum_sq += static_cast<double>(counts_[i]) * d * d;
    }
    return std::sqrt(sum_sq / static_cast<double>(total_));
  }

  // Total number of samples recorded (including synthetic ones from record_corrected()).
  std::uint64_t count() const noexcept { return total_; }

  // Forgets all samples; keeps the counts array (no allocation or deallocation).
  void reset() noexcept {
    std::fill(counts_.begin(), counts_.end(), std::uint64_t{0});
    total_ = 0;
    min_ = std::numeric_limits<std::uint64_t>::max();
    max_ = 0;
  }

  // Bytes used by the counts array; fixed for the object's lifetime.
  std::size_t memory_bytes() const noexcept { return counts_.size() * sizeof(std::uint64_t); }

  // Calls f(highest value of the slot, count) for every slot that holds a
  // sample, lowest first; the highest value is capped at max(), as
  // value_at_percentile reports it. For exporters (the .hgrm text), never
  // on a hot path.
  template <typename F>
  void for_each_recorded(F&& f) const {
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i] == 0) continue;
      f(std::clamp(value_from_index(i) + width_at_index(i) - 1, min_, max_), counts_[i]);
    }
  }

  // HdrHistogram's names for the layout: buckets (doubling ranges) and
  // sub-buckets per bucket.
  std::size_t bucket_count() const noexcept { return (counts_.size() >> half_magnitude_) - 1; }
  std::size_t sub_bucket_count() const noexcept { return std::size_t{2} << half_magnitude_; }

  // Construction parameters, as passed.
  std::uint64_t lowest() const noexcept { return lowest_; }
  std::uint64_t highest() const noexcept { return highest_; }
  int significant_figures() const noexcept { return significant_figures_; }

 private:
  // Slot of v; v must be <= highest_. Branch- and division-free: OR-ing the bucket-0 mask in
  // forces the top bit to at least bucket0_msb_, so small values fall into bucket 0 with no test.
  std::size_t index_of(std::uint64_t v) const noexcept {
    const int msb = 63 - std::countl_zero(v | sub_bucket_mask_);
    const int bucket = msb - bucket0_msb_;
    const std::uint64_t sub = v >> (bucket + unit_magnitude_);
    return (static_cast<std::size_t>(bucket) << half_magnitude_) + static_cast<std::size_t>(sub);
  }

  // Bucket number of slot i (slots [0, 2*half) are bucket 0, then half slots per bucket).
  int bucket_of_index(std::size_t i) const noexcept {
    const int b = static_cast<int>(i >> half_magnitude_) - 1;
    return b < 0 ? 0 : b;
  }

  // Lowest value that maps to slot i.
  std::uint64_t value_from_index(std::size_t i) const noexcept {
    const int b = bucket_of_index(i);
    const std::uint64_t sub = i - (static_cast<std::size_t>(b) << half_magnitude_);
    return sub << (b + unit_magnitude_);
  }

  // Number of distinct values that map to slot i.
  std::uint64_t width_at_index(std::size_t i) const noexcept {
    return std::uint64_t{1} << (bucket_of_index(i) + unit_magnitude_);
  }

  // Representative value of slot i for mean/stddev, clamped to the exact recorded range.
  double midpoint(std::size_t i) const noexcept {
    const std::uint64_t mid = value_from_index(i) + width_at_index(i) / 2;
    return static_cast<double>(std::clamp(mid, min_, max_));
  }

  // Hot members first so record() touches one cache line besides its counts slot.
  std::uint64_t highest_;
  std::uint64_t sub_bucket_mask_ = 0;
  int unit_magnitude_ = 0;
  int half_magnitude_ = 0;  // log2(sub-buckets per bucket / 2)
  int bucket0_msb_ = 0;     // highest bit position a bucket-0 value can have
  std::uint64_t total_ = 0;
  std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t max_ = 0;
  std::vector<std::uint64_t> counts_;
  std::uint64_t lowest_;
  int significant_figures_;
};

// The suite's standard latency histogram: 1 ns .. 100 s (1e11 ns), 2 significant figures, so
// every slot is under 1% wide relative to its values (exact below 256 ns); ~31 KiB of counts.
inline Histogram make_latency_histogram() { return Histogram(1, 100'000'000'000ULL, 2); }

}  // namespace ipcbench
