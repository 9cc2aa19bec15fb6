// Parsing and formatting of the CLI's sizes and CPU lists.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ipcbench {

// Parses "64", "64B", "4KiB", "4K", "1MiB", "1M", "1GiB" (binary multiples).
// Throws std::invalid_argument with a one-line reason for anything else,
// including zero and values that overflow.
std::size_t parse_size(std::string_view text);

// "64", "4KiB", "1MiB" when exact, else the byte count.
std::string format_size(std::size_t bytes);

// A duration for people: "2.31 ms", "45.20 us", or ns with `ns_decimals`
// decimals below 1 us ("230 ns", "9.7 ns").
std::string format_ns(double ns, int ns_decimals = 0);

// Parses "0,1" or "3" into CPU numbers. Throws std::invalid_argument.
std::vector<int> parse_cpu_list(std::string_view text);

// Splits "a,b,c" on commas; empty items are kept so they can be rejected.
std::vector<std::string> split_list(std::string_view text);

}  // namespace ipcbench
