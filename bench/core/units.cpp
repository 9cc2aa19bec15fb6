#include "bench/core/units.hpp"

#include <charconv>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace ipcbench {
namespace {

// The user's text for an error message: control bytes (a newline would break
// the one-line reason) shown as \xNN.
std::string printable(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const auto comma = text.find(',', start);
    out.emplace_back(text.substr(start, comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

std::size_t parse_size(std::string_view text) {
  std::string quoted(1, '\'');  // (append: GCC 12 warns falsely on "'" + string)
  quoted.append(printable(text)).push_back('\'');
  std::uint64_t value = 0;
  const char* begin = text.data();
  const char* end = begin + text.size();
  auto [p, ec] = std::from_chars(begin, end, value);
  if (ec == std::errc::result_out_of_range)
    throw std::invalid_argument("size " + quoted + " is too large");
  if (ec != std::errc() || p == begin) {
    throw std::invalid_argument("malformed size " + quoted + " (use e.g. 64, 4KiB, 1MiB)");
  }
  const std::string_view suffix(p, static_cast<std::size_t>(end - p));
  unsigned shift = 0;
  if (suffix.empty() || suffix == "B") {
    shift = 0;
  } else if (suffix == "K" || suffix == "KiB") {
    shift = 10;
  } else if (suffix == "M" || suffix == "MiB") {
    shift = 20;
  } else if (suffix == "G" || suffix == "GiB") {
    shift = 30;
  } else {
    throw std::invalid_argument("malformed size " + quoted +
                                " (unknown unit; use B, KiB, MiB or GiB)");
  }
  if (value == 0) throw std::invalid_argument("size " + quoted + " is zero");
  if (value > (std::numeric_limits<std::uint32_t>::max() >> shift)) {
    throw std::invalid_argument("size " + quoted + " is too large");
  }
  return static_cast<std::size_t>(value << shift);
}

std::string format_size(std::size_t bytes) {
  if (bytes >= (1u << 30) && bytes % (1u << 30) == 0) return std::to_string(bytes >> 30) + "GiB";
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + "MiB";
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes);
}

std::vector<int> parse_cpu_list(std::string_view text) {
  std::vector<int> cpus;
  for (const std::string& item : split_list(text)) {
    int cpu = -1;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), cpu);
    if (item.empty() || item.front() == '-' || ec != std::errc() ||
        p != item.data() + item.size() || cpu < 0) {
      throw std::invalid_argument("malformed CPU '" + printable(item) + "' in '" + printable(text) +
                                  "' (expected CPU numbers like 0,1)");
    }
    cpus.push_back(cpu);
  }
  return cpus;
}

std::string format_ns(double ns, int ns_decimals) {
  char buf[32];
  if (ns >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2f ms", ns / 1e6);
  } else if (ns >= 1e3) {
    std::snprintf(buf, sizeof buf, "%.2f us", ns / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.*f ns", ns_decimals, ns);
  }
  return buf;
}

}  // namespace ipcbench
