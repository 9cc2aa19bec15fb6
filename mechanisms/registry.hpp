// The registry: every mechanism the suite knows, in a fixed order.
// Adding a mechanism: one file in its family folder (mechanisms/FAMILY/) with
// a make_*() factory, one entry in mechanisms/registry.cpp, one line in
// mechanisms/CMakeLists.txt.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mechanisms/mechanism.hpp"

namespace ipcbench {

// All registered mechanisms, constructed once on first use, in registry order.
const std::vector<std::unique_ptr<Mechanism>>& mechanisms();

// The mechanism called `name`, or nullptr when there is none.
Mechanism* find_mechanism(std::string_view name);

// The registered names, in registry order.
std::vector<std::string> mechanism_names();

}  // namespace ipcbench
