// Skips the running test when mechanism `name` cannot run on this machine
// (Mechanism::unavailable_reason: the kernel or a policy refuses it, or the
// build left out its library). Its cases are then skipped, never failed, so
// a test that needs them to run has nothing to check. Use in a test body or
// SetUp (GTEST_SKIP returns from the calling function).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "mechanisms/registry.hpp"

namespace testproc {

inline std::string unavailable_reason(const std::string& name) {
  const ipcbench::Mechanism* m = ipcbench::find_mechanism(name);
  return m == nullptr ? std::string() : m->unavailable_reason();
}

}  // namespace testproc

#define IPCBENCH_SKIP_IF_UNAVAILABLE(name)                                                \
  do {                                                                                    \
    if (const std::string reason_ = testproc::unavailable_reason(name); !reason_.empty()) \
      GTEST_SKIP() << (name) << " is unavailable here: " << reason_;                      \
  } while (false)
