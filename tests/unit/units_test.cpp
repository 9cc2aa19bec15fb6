// Parsers of the command line's sizes and CPU lists.
#include "bench/core/units.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace ipcbench {
namespace {

TEST(ParseSize, AcceptsPlainBytesAndBinaryUnits) {
  EXPECT_EQ(parse_size("64"), 64u);
  EXPECT_EQ(parse_size("64B"), 64u);
  EXPECT_EQ(parse_size("4KiB"), 4096u);
  EXPECT_EQ(parse_size("4K"), 4096u);
  EXPECT_EQ(parse_size("1MiB"), 1048576u);
  EXPECT_EQ(parse_size("1GiB"), 1073741824u);
}

TEST(ParseSize, RejectsMalformedZeroAndHuge) {
  for (const char* bad : {"", "abc", "12XB", "KiB", "-4", "4 KiB", "1.5KiB", "0", "0KiB",
                          "99999999999999999999", "5GiB"}) {
    EXPECT_THROW(parse_size(bad), std::invalid_argument) << bad;
  }
}

TEST(ParseSize, ErrorNamesTheInput) {
  try {
    parse_size("12XB");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'12XB'"), std::string::npos) << e.what();
  }
}

// Found by fuzz_parse_size: the reason quoted the input raw, so a newline in
// it made the one-line error two lines. Control bytes are shown as \xNN.
TEST(ParseSize, ReasonStaysOnOneLineWhateverTheInput) {
  for (const std::string& bad :
       {std::string("4\nKiB"), std::string("\n"), std::string("1\r\x7f", 3)}) {
    try {
      parse_size(bad);
      FAIL() << "no exception";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).find_first_of("\n\r\x7f"), std::string::npos) << e.what();
    }
  }
  try {
    parse_size("4\nKiB");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'4\\x0aKiB'"), std::string::npos) << e.what();
  }
}

TEST(FormatSize, UsesTheLargestExactUnit) {
  EXPECT_EQ(format_size(64), "64");
  EXPECT_EQ(format_size(4096), "4KiB");
  EXPECT_EQ(format_size(1536), "1536");
  EXPECT_EQ(format_size(262144), "256KiB");
  EXPECT_EQ(format_size(1048576), "1MiB");
}

TEST(ParseCpuList, ParsesCommaSeparatedNumbers) {
  EXPECT_EQ(parse_cpu_list("0,1"), (std::vector<int>{0, 1}));
  EXPECT_EQ(parse_cpu_list("3"), (std::vector<int>{3}));
}

TEST(ParseCpuList, RejectsGarbage) {
  for (const char* bad : {"", ",", "0,", "a", "0,-1", "1;2", "0,1x"}) {
    EXPECT_THROW(parse_cpu_list(bad), std::invalid_argument) << bad;
  }
}

// Found by fuzz_parse_cpu_list: from_chars reads "-0" as 0, so it passed
// the "cpu < 0" check; a CPU number has no sign.
TEST(ParseCpuList, RejectsASignedZero) {
  EXPECT_THROW(parse_cpu_list("-0"), std::invalid_argument);
  EXPECT_THROW(parse_cpu_list("0,-0"), std::invalid_argument);
}

// Found by fuzz_parse_cpu_list (input "\n,"): as for sizes, one line.
TEST(ParseCpuList, ReasonStaysOnOneLineWhateverTheInput) {
  for (const char* bad : {"\n,", "0,\n", "1\t2"}) {
    try {
      parse_cpu_list(bad);
      FAIL() << "no exception for " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).find_first_of("\n\t"), std::string::npos) << e.what();
    }
  }
}

TEST(SplitList, KeepsEmptyItemsSoTheyCanBeRejected) {
  EXPECT_EQ(split_list("a,,b"), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(split_list("a"), (std::vector<std::string>{"a"}));
}

}  // namespace
}  // namespace ipcbench
