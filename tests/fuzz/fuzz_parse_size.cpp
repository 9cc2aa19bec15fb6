// libFuzzer target: parse_size (the CLI's --sizes items).
//
// Differential: an independent reading of the documented grammar (decimal
// digits, then nothing, B, K/KiB, M/MiB or G/GiB; not zero; at most
// 2^32 - 1 bytes) must agree with parse_size on every input, accepted or
// refused; an accepted size must survive format_size and parse it back; a
// refusal is std::invalid_argument with a one-line reason. Anything else
// aborts, and ASan/UBSan catch overruns and overflow.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "bench/core/units.hpp"

namespace {

[[noreturn]] void fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "fuzz_parse_size: %s for input of %zu bytes: '", what, input.size());
  std::fwrite(input.data(), 1, input.size(), stderr);
  std::fprintf(stderr, "'\n");
  std::abort();
}

// The grammar, read independently of the implementation.
std::optional<std::uint64_t> reference(std::string_view text) {
  std::size_t i = 0;
  std::uint64_t value = 0;
  bool big = false;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    value = value * 10 + static_cast<std::uint64_t>(text[i] - '0');
    if (value > 0xFFFFFFFFull) big = true, value = 0xFFFFFFFFull + 1;  // saturate: too large
    ++i;
  }
  if (i == 0) return std::nullopt;
  const std::string_view unit = text.substr(i);
  unsigned shift = 0;
  if (unit.empty() || unit == "B") {
    shift = 0;
  } else if (unit == "K" || unit == "KiB") {
    shift = 10;
  } else if (unit == "M" || unit == "MiB") {
    shift = 20;
  } else if (unit == "G" || unit == "GiB") {
    shift = 30;
  } else {
    return std::nullopt;
  }
  if (big || value == 0) return std::nullopt;
  const std::uint64_t bytes = value << shift;  // value <= 2^32, shift <= 30: no overflow
  if (bytes > 0xFFFFFFFFull) return std::nullopt;
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::optional<std::uint64_t> expected = reference(input);
  std::size_t got = 0;
  try {
    got = ipcbench::parse_size(input);
  } catch (const std::invalid_argument& e) {
    if (expected) fail("refused a valid size", input);
    if (std::string_view(e.what()).find('\n') != std::string_view::npos) {
      fail("refusal reason spans more than one line", input);
    }
    return 0;
  }
  if (!expected) fail("accepted an invalid size", input);
  if (got != *expected) fail("parsed the wrong value", input);
  const std::string formatted = ipcbench::format_size(got);
  if (ipcbench::parse_size(formatted) != got) fail("format_size does not parse back", input);
  return 0;
}
