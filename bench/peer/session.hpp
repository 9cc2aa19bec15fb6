// A peer session: one mechanism endpoint, one spawned peer process, one
// channel between them. Lives for one case (all of Google Benchmark's trials
// and repetitions of it) and removes everything it created when destroyed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench/wire/peer_link.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/fd.hpp"

namespace ipcbench {

class Watchdog;
class RemoteServer;

struct SessionConfig {
  Mechanism* mechanism = nullptr;
  std::string run_dir;  // private 0700 directory of the run
  std::string tag;      // unique object-name stem for this case
  std::size_t max_message = 0;
  int peer_cpu = -1;  // -1: unpinned
  bool verify_full = false;
  std::string executable;         // path of this program, to exec the peer
  bool same_cpu = false;          // runner and peer pinned to one CPU
  std::uint32_t spin_budget = 0;  // ListenOptions::spin_budget
  // Across hosts: the peer is started by `ipcbench serve` through this
  // server, listens there, and this side connects. Null: a local peer.
  RemoteServer* remote = nullptr;
};

class PeerSession {
 public:
  // Listens, spawns the peer (pinned, dying with us), accepts its connection
  // and waits for its hello, all within the watchdog's timeout. Throws
  // PeerLost / Timeout / std::system_error with a message that says why.
  PeerSession(const SessionConfig& config, Watchdog& watchdog);
  // Says goodbye, reaps the peer (killing it if it lingers) and removes every
  // object. Never throws.
  ~PeerSession();
  PeerSession(const PeerSession&) = delete;
  PeerSession& operator=(const PeerSession&) = delete;

  Channel& channel() noexcept { return *channel_; }
  // What the watchdog watches: the local peer's pid and pidfd, or across
  // hosts -1 and the control connection (see Watchdog::arm).
  pid_t peer_pid() const noexcept { return pid_; }
  int peer_pidfd() const noexcept;
  // Ends the peer at once (SIGKILL, or across hosts: drops the control
  // connection, so the server kills it). Never throws.
  void kill_peer() noexcept;
  int peer_cpu() const noexcept { return peer_cpu_; }

  // The wire protocol's runner end over the channel: sequence numbers and
  // control requests (what the patterns use).
  PeerLink& link() noexcept { return *link_; }
  bool lossy() const noexcept { return lossy_; }

  // After a failure: waits briefly for the peer to exit and describes how it
  // ended (exit status or signal, and its last words on stderr).
  std::string peer_epitaph();

 private:
  void start_remote(const SessionConfig& config, Watchdog& watchdog);
  void receive_hello(pid_t expected_pid, std::size_t max_message);
  void spawn(const SessionConfig& config, const std::string& address,
             const std::vector<int>& inherited);
  bool wait_exit(std::chrono::milliseconds timeout) noexcept;
  std::string kill_and_describe() noexcept;

  RemoteServer* remote_ = nullptr;
  std::unique_ptr<Endpoint> endpoint_;
  std::unique_ptr<Channel> channel_;
  std::unique_ptr<PeerLink> link_;  // over channel_
  pid_t pid_ = -1;
  posix::Fd pidfd_;
  posix::Fd stderr_;  // read end of the peer's stderr
  int peer_cpu_ = -1;
  bool lossy_ = false;
  bool reaped_ = false;
  int wait_status_ = 0;
};

}  // namespace ipcbench
