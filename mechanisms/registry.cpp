// The registry: one entry per mechanism. To add one, write
// mechanisms/FAMILY/NAME.cpp with a make_NAME() factory, declare it below,
// list it in kFactories and add the file to mechanisms/CMakeLists.txt.
#include "mechanisms/registry.hpp"

namespace ipcbench {
namespace mech {
std::unique_ptr<Mechanism> make_pipe();
std::unique_ptr<Mechanism> make_pipe_splice();
std::unique_ptr<Mechanism> make_fifo();
std::unique_ptr<Mechanism> make_uds_stream();
std::unique_ptr<Mechanism> make_uds_dgram();
std::unique_ptr<Mechanism> make_uds_seqpacket();
std::unique_ptr<Mechanism> make_tcp();
std::unique_ptr<Mechanism> make_udp();
std::unique_ptr<Mechanism> make_shm_spin();
std::unique_ptr<Mechanism> make_shm_futex();
std::unique_ptr<Mechanism> make_shm_eventfd();
std::unique_ptr<Mechanism> make_memfd();
std::unique_ptr<Mechanism> make_cma();
std::unique_ptr<Mechanism> make_boost_shm();
std::unique_ptr<Mechanism> make_posix_mq();
std::unique_ptr<Mechanism> make_sysv_mq();
std::unique_ptr<Mechanism> make_boost_mq();
std::unique_ptr<Mechanism> make_zmq_ipc();
std::unique_ptr<Mechanism> make_zmq_tcp();
std::unique_ptr<Mechanism> make_iceoryx();
#ifdef IPCBENCH_EXTRA_MECHANISM
// A build with -DIPCBENCH_EXTRA_MECHANISM=FILE (scripts/check-new-mechanism)
// compiles FILE in, which defines this factory; other builds have no such entry.
std::unique_ptr<Mechanism> make_extra_mechanism();
#endif
}  // namespace mech

namespace {
using Factory = std::unique_ptr<Mechanism> (*)();
constexpr Factory kFactories[] = {
    mech::make_pipe,
    mech::make_pipe_splice,
    mech::make_fifo,
    mech::make_uds_stream,
    mech::make_uds_dgram,
    mech::make_uds_seqpacket,
    mech::make_tcp,
    mech::make_udp,
    mech::make_shm_spin,
    mech::make_shm_futex,
    mech::make_shm_eventfd,
    mech::make_memfd,
    mech::make_cma,
    mech::make_boost_shm,
    mech::make_posix_mq,
    mech::make_sysv_mq,
    mech::make_boost_mq,
    mech::make_zmq_ipc,
    mech::make_zmq_tcp,
    mech::make_iceoryx,
#ifdef IPCBENCH_EXTRA_MECHANISM
    mech::make_extra_mechanism,
#endif
};
}  // namespace

const std::vector<std::unique_ptr<Mechanism>>& mechanisms() {
  static const auto* all = [] {
    auto* v = new std::vector<std::unique_ptr<Mechanism>>;
    for (Factory f : kFactories) {
      if (auto m = f()) v->push_back(std::move(m));
    }
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
