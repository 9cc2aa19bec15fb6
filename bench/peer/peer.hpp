// The peer process: `ipcbench peer ...`, spawned by the runner once per case.
// It connects to the runner's endpoint, says hello, then serves messages
// until told to leave: echoes, sinks, acknowledgements, statistics.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

namespace ipcbench {

struct PeerOptions {
  std::string mechanism;
  std::string address;
  int cpu = -1;  // pin to this CPU; -1 leaves placement to the scheduler
  std::size_t max_message = 0;
  bool verify_full = false;
  bool lossy = false;     // the mechanism may drop messages: count gaps
  bool same_cpu = false;  // runner and peer share a CPU (spinning must yield)
  pid_t parent = 0;       // exit at once if our parent is not this process
  std::chrono::milliseconds timeout{10'000};
  // Across hosts (spawned by `ipcbench serve`): the peer listens on this
  // address instead of connecting, prints the endpoint's address on stdout
  // (one line), and accepts only a connection from `allow_from`.
  std::string listen_host;
  std::string allow_from;
};

// Runs the peer; returns the process exit status: 0 after a clean goodbye,
// 3 when a message failed verification (reason on stderr), 4 when the runner
// went away, 1 on any other error.
int run_peer(const PeerOptions& options);

// Exit statuses, so the runner can explain a peer's death.
inline constexpr int kPeerExitVerify = 3;
inline constexpr int kPeerExitRunnerLost = 4;

}  // namespace ipcbench
