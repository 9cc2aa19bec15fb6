// shm-spin: POSIX shared memory with an SPSC ring per direction; waiting
// sides busy-poll (yielding the CPU when both share one).
#include "mechanisms/channels/shm_channel.hpp"

namespace ipcbench::mech {
namespace {

class ShmSpinMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "shm-spin"; }
  std::string_view family() const override { return "shm"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kMessage,
            .max_message = shm::kMaxShmMessage,
            .crosses_hosts = false,
            .pollable = false,
            .lossy = false,
            .waiting = Waiting::kSpin,
            .readiness = Waiting::kSpin,
            .names = Names::kSystem};
  }
  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    return std::make_unique<shm::ShmEndpoint<shm::SpinWait>>(
        shm::NamedSegment(shm::shm_name(options, "spin")), options);
  }
  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    return shm::connect_shm<shm::SpinWait>(address, options);
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_shm_spin() { return std::make_unique<ShmSpinMechanism>(); }

}  // namespace ipcbench::mech
