// Placeholder: implemented in issue 9 (owner records).
#include "owners.hpp"

#include <cstdio>

namespace ipcbench {

std::unique_ptr<OwnerRecord> OwnerRecord::start(const std::string&) { return nullptr; }

int run_clean(bool) {
  std::fprintf(stderr, "ipcbench clean: not implemented yet\n");
  return 1;
}

}  // namespace ipcbench
