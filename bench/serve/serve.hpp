// `ipcbench serve`: the other host's half of a run across hosts.
//
// One control connection at a time (another client is told "busy"). For
// each case the client sets up, it starts the same peer the local runner
// starts (`ipcbench peer`, pinned to the server's CPUs, dying with the
// server), in listening mode: the peer binds the address the client reached
// the server on and accepts only that client. It tears the peer down after
// the case, and whatever a client does (disconnect, die, send garbage)
// nothing is left behind and the next client is served. Runs until SIGINT /
// SIGTERM. Protocol: control.hpp.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace ipcbench {

struct ServeOptions {
  std::string listen = "127.0.0.1:7070";  // HOST:PORT
  std::string token;                      // empty: no token required
  std::vector<int> cpus;                  // CPUs for the peer; empty: unpinned
  std::chrono::milliseconds handshake_timeout{5'000};
  std::chrono::milliseconds idle_timeout{60'000};     // between cases
  std::chrono::milliseconds case_timeout{3'600'000};  // longest case
  std::chrono::milliseconds peer_timeout{10'000};     // peer: wait for the client's connection
  std::string executable;                             // this program, to exec the peer
};

// Serves until SIGINT/SIGTERM; returns the exit status (0 after a signal,
// 1 when the listening socket cannot be set up).
int run_serve(const ServeOptions& options);

}  // namespace ipcbench
