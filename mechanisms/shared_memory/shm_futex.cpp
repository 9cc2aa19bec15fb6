// shm-futex: the same rings as shm-spin; a waiting side spins briefly, then
// sleeps on a futex until the other side wakes it.
#include "mechanisms/channels/shm_channel.hpp"

namespace ipcbench::mech {
namespace {

class ShmFutexMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "shm-futex"; }
  std::string_view family() const override { return "shm"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kMessage,
            .max_message = shm::kMaxShmMessage,
            .crosses_hosts = false,
            .pollable = false,
            .lossy = false,
            .waiting = Waiting::kSpinThenSleep,
            .readiness = Waiting::kSpinThenSleep,
            .names = Names::kSystem};
  }
  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    return std::make_unique<shm::ShmEndpoint<shm::FutexWait>>(
        shm::NamedSegment(shm::shm_name(options, "futex")), options);
  }
  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    return shm::connect_shm<shm::FutexWait>(address, options);
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_shm_futex() { return std::make_unique<ShmFutexMechanism>(); }

}  // namespace ipcbench::mech
