// The client side of a run across hosts (`ipcbench run --remote HOST:PORT`):
// one control connection to `ipcbench serve`, kept for the whole run and
// opened again when a case broke it. See control.hpp for the protocol.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "bench/control/control.hpp"

namespace ipcbench {

struct RemoteOptions {
  std::string address;  // HOST:PORT of `ipcbench serve`
  std::string token;    // empty: none
  int cpu = -1;         // the server's CPU for the peer; -1: the server's choice
  std::chrono::milliseconds timeout{10'000};
};

class RemoteServer {
 public:
  explicit RemoteServer(RemoteOptions options) : options_(std::move(options)) {}

  // Connects and says hello; throws std::runtime_error with one line (cannot
  // connect, busy, bad token, version mismatch, ...). Called once before any
  // case runs, and again by setup() when the connection was lost.
  void greet();

  // The server's welcome: its host facts and CPUs (for the result file).
  const nlohmann::json& welcome() const noexcept { return welcome_; }
  const RemoteOptions& options() const noexcept { return options_; }

  struct Ready {
    std::string address;  // where the server's peer listens
    pid_t peer_pid = -1;  // the peer's pid on the server (its hello carries it)
  };
  // Asks the server to start a peer for one case. Throws with the reason.
  Ready setup(const std::string& mechanism, std::size_t max_message, bool verify_full);

  // Ends the case on the server (which reaps its peer) and returns how the
  // peer ended. Never throws; on any trouble the connection is dropped (the
  // server then kills the peer) and the next setup connects again.
  std::string teardown() noexcept;

  // After a failure: how the peer ended, if the server said so within `wait`.
  std::string epitaph(std::chrono::milliseconds wait) noexcept;

  // The control connection's descriptor (the watchdog polls it), -1 if none.
  int control_fd() const noexcept { return connection_ ? connection_->fd() : -1; }

  // Says goodbye at the end of the run. Never throws.
  void bye() noexcept;

 private:
  nlohmann::json expect(const char* type, std::chrono::milliseconds timeout);
  void drop() noexcept { connection_.reset(); }

  RemoteOptions options_;
  std::unique_ptr<control::Connection> connection_;
  nlohmann::json welcome_;
  std::string peer_status_;  // from a peer_exit message
};

}  // namespace ipcbench
