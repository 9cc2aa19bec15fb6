// libFuzzer target: parse_cpu_list (the CLI's --cpus).
//
// Differential: a CPU list is one or more comma-separated items, each a
// non-empty run of decimal digits whose value fits an int. parse_cpu_list
// must return exactly those numbers, in order, or refuse with
// std::invalid_argument and a one-line reason. Anything else aborts.
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "bench/core/units.hpp"

namespace {

[[noreturn]] void fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "fuzz_parse_cpu_list: %s for input of %zu bytes: '", what, input.size());
  std::fwrite(input.data(), 1, input.size(), stderr);
  std::fprintf(stderr, "'\n");
  std::abort();
}

std::optional<std::vector<int>> reference(std::string_view text) {
  std::vector<int> cpus;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = text.find(',', start);
    const std::string_view item = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (item.empty()) return std::nullopt;
    long long value = 0;
    for (char c : item) {
      if (c < '0' || c > '9') return std::nullopt;
      value = value * 10 + (c - '0');
      if (value > INT_MAX) return std::nullopt;
    }
    cpus.push_back(static_cast<int>(value));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return cpus;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto expected = reference(input);
  std::vector<int> got;
  try {
    got = ipcbench::parse_cpu_list(input);
  } catch (const std::invalid_argument& e) {
    if (expected) fail("refused a valid CPU list", input);
    if (std::string_view(e.what()).find('\n') != std::string_view::npos) {
      fail("refusal reason spans more than one line", input);
    }
    return 0;
  }
  if (!expected) fail("accepted an invalid CPU list", input);
  if (got != *expected) fail("parsed the wrong CPUs", input);
  return 0;
}
