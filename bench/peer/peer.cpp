#include "bench/peer/peer.hpp"

#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

#include "bench/core/sysinfo.hpp"
#include "bench/wire/echo_server.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/registry.hpp"

namespace ipcbench {

int run_peer(const PeerOptions& options) {
  // Normally set between fork and exec by the runner; set again here for a
  // peer started by hand, then check that the parent did not already die.
  if (options.parent > 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != options.parent) return kPeerExitRunnerLost;
  }
  std::signal(SIGPIPE, SIG_IGN);
  try {
    if (options.cpu >= 0) pin_current_thread(options.cpu);
    Mechanism* mech = find_mechanism(options.mechanism);
    if (mech == nullptr) {
      std::fprintf(stderr, "ipcbench peer: unknown mechanism '%s'\n", options.mechanism.c_str());
      return 1;
    }
    const std::size_t max_message = std::max(options.max_message, kControlBytes);
    std::unique_ptr<Endpoint> endpoint;  // outlives the channel
    std::unique_ptr<Channel> channel;
    if (!options.listen_host.empty()) {
      // The server's side of a case across hosts: listen, tell `serve` where,
      // and take the one client that set up the case.
      endpoint = mech->listen({.run_dir = "/tmp",
                               .tag = "remote-" + std::to_string(getpid()),
                               .max_message = max_message,
                               .bind_host = options.listen_host,
                               .allowed_peer = options.allow_from});
      std::printf("%s\n", endpoint->address().c_str());
      std::fflush(stdout);
      channel = endpoint->accept(options.timeout);
    } else {
      channel = mech->connect(
          options.address,
          {.max_message = max_message, .timeout = options.timeout, .same_cpu = options.same_cpu});
    }
    EchoServer server(*channel, {.max_message = options.max_message,
                                 .verify_full = options.verify_full,
                                 .lossy = options.lossy});
    server.say_hello();
    server.serve();
    return 0;
  } catch (const PeerLost&) {
    return kPeerExitRunnerLost;
  } catch (const ProtocolError& e) {
    std::fprintf(stderr, "ipcbench peer: %s\n", e.what());
    return kPeerExitVerify;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbench peer: %s\n", e.what());
    return 1;
  }
}

}  // namespace ipcbench
