// Placeholder until the mechanism lands: the registry skips a null factory.
#include <memory>

#include "ipcbench/mechanism.hpp"

namespace ipcbench::mech {
std::unique_ptr<Mechanism> make_boost_shm() { return nullptr; }
}  // namespace ipcbench::mech
