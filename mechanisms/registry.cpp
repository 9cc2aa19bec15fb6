// The registry: one entry per mechanism. To add one, write mechanisms/NAME.cpp
// with a make_NAME() factory, declare it below and list it in kFactories.
#include "ipcbench/registry.hpp"

namespace ipcbench {
namespace mech {
std::unique_ptr<Mechanism> make_pipe();
std::unique_ptr<Mechanism> make_uds_stream();
std::unique_ptr<Mechanism> make_tcp();
}  // namespace mech

namespace {
using Factory = std::unique_ptr<Mechanism> (*)();
constexpr Factory kFactories[] = {
    mech::make_pipe,
    mech::make_uds_stream,
    mech::make_tcp,
};
}  // namespace

const std::vector<std::unique_ptr<Mechanism>>& mechanisms() {
  static const auto* all = [] {
    auto* v = new std::vector<std::unique_ptr<Mechanism>>;
    for (Factory f : kFactories) v->push_back(f());
    return v;
  }();
  return *all;
}

Mechanism* find_mechanism(std::string_view name) {
  for (const auto& m : mechanisms()) {
    if (m->name() == name) return m.get();
  }
  return nullptr;
}

std::vector<std::string> mechanism_names() {
  std::vector<std::string> names;
  for (const auto& m : mechanisms()) names.emplace_back(m->name());
  return names;
}

}  // namespace ipcbench
