// shm-eventfd: the same rings as shm-spin, woken through eventfds, so the
// channel is pollable (an event loop can wait for it beside its sockets).
// By default no spin before a wait (every wait is an eventfd wake-up, or
// it would be shm-spin in disguise); --spin-budget sets a spin first.
#include "mechanisms/channels/eventfd_wait.hpp"
#include "mechanisms/channels/shm_channel.hpp"

namespace ipcbench::mech {
namespace {

class ShmEventfdMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "shm-eventfd"; }
  std::string_view family() const override { return "shm"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kMessage,
            .max_message = shm::kMaxShmMessage,
            .crosses_hosts = false,
            .pollable = true,
            .lossy = false,
            .waiting = Waiting::kSleep,
            .readiness = Waiting::kSleep,
            .names = Names::kSystem,
            .spin_budget = true};
  }
  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    return std::make_unique<shm::ShmEndpoint<shm::EventfdWait>>(
        shm::NamedSegment(shm::shm_name(options, "eventfd")), options);
  }
  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    return shm::connect_shm<shm::EventfdWait>(address, options);
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_shm_eventfd() { return std::make_unique<ShmEventfdMechanism>(); }

}  // namespace ipcbench::mech
