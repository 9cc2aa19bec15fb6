// boost-mq and a peer that dies holding a queue's mutex (Boost 1.74's mutex
// is not robust): a call blocked on that mutex stays blocked until
// Channel::release_locks_of_dead_peer() releases it, then it and every later
// call throw PeerLost naming the lock. With nothing held, or a live peer,
// the release does nothing and the channel goes on working.
//
// The peer is a fork of this process (no threads yet when it forks).
#include "boost_mq_lock.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "ipcbench/errors.hpp"
#include "ipcbench/mechanism.hpp"
#include "ipcbench/registry.hpp"

namespace {

using namespace std::chrono_literals;
using ipcbench::Channel;
using ipcbench::Endpoint;
using ipcbench::Mechanism;

constexpr std::size_t kMax = 64;

struct Pair {
  std::unique_ptr<Endpoint> endpoint;
  std::unique_ptr<Channel> channel;
  pid_t child = -1;
};

// Listens, forks a peer that connects and then runs `then` (which must not
// return normally for the dying cases), and accepts it.
template <typename Then>
Pair connect_peer(const std::string& tag, Then then) {
  Mechanism* mech = ipcbench::find_mechanism("boost-mq");
  EXPECT_NE(mech, nullptr);
  Pair p;
  ipcbench::ListenOptions options;
  options.run_dir = "/tmp";  // unused by boost-mq
  options.tag = tag;
  options.max_message = kMax;
  p.endpoint = mech->listen(options);
  const std::string address = p.endpoint->address();
  p.child = ::fork();
  if (p.child == 0) {
    ::alarm(30);  // never outlive a hung test by much
    try {
      auto ch = mech->connect(address, {.max_message = kMax, .timeout = 5000ms});
      then(*ch, address);
      std::_Exit(0);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "peer: %s\n", e.what());
      std::_Exit(3);
    }
  }
  p.channel = p.endpoint->accept(5000ms);
  return p;
}

int reap(pid_t pid) {
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  return status;
}

TEST(BoostMqDeadPeerLock, BlockedReceiveEndsWithPeerLostOnceTheLockIsReleased) {
  Pair p = connect_peer("locktest1", [](Channel&, const std::string& address) {
    ipcbench::die_holding_queue_lock(address + ".up");  // the queue we receive on
  });
  const int status = reap(p.child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the peer should have died of SIGKILL holding the lock, status " << status;

  std::atomic<bool> done{false};
  std::string error;
  std::thread receiver([&] {
    std::array<std::byte, kMax> buf{};
    try {
      (void)p.channel->receive(buf);
      error = "receive returned a message";
    } catch (const ipcbench::PeerLost& e) {
      error = e.what();
    } catch (const std::exception& e) {
      error = std::string("not PeerLost: ") + e.what();
    }
    done.store(true);
  });
  // The wedge is real: the dead peer's pid is known, yet the call waits for
  // the mutex (no slice or pidfd check can run).
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(done.load()) << "receive ended without the release: " << error;

  EXPECT_TRUE(p.channel->release_locks_of_dead_peer());
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!done.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  if (!done.load()) {
    ADD_FAILURE() << "receive still blocked 5 s after the release";
    std::fflush(nullptr);
    std::_Exit(1);  // the thread cannot be joined
  }
  receiver.join();
  EXPECT_NE(error.find("holding a queue's lock"), std::string::npos) << error;

  // Every later call says the same; none blocks.
  std::array<std::byte, kMax> buf{};
  EXPECT_THROW((void)p.channel->try_receive(buf), ipcbench::PeerLost);
  EXPECT_THROW(p.channel->send(std::span<const std::byte>(buf.data(), 8)), ipcbench::PeerLost);
}

TEST(BoostMqDeadPeerLock, NothingHeldNothingReleased) {
  // A live peer: never touched, the channel works after the call.
  Pair live = connect_peer("locktest2", [](Channel& ch, const std::string&) {
    std::array<std::byte, kMax> buf{};
    const std::size_t n = ch.receive(buf);
    ch.send(std::span<const std::byte>(buf.data(), n));
    try {
      (void)ch.receive(buf);  // until the listener says goodbye
    } catch (const ipcbench::PeerLost&) {
    }
  });
  EXPECT_FALSE(live.channel->release_locks_of_dead_peer());
  std::array<std::byte, kMax> out{};
  std::memset(out.data(), 0x5a, out.size());
  live.channel->send(std::span<const std::byte>(out.data(), 16));
  std::array<std::byte, kMax> in{};
  ASSERT_EQ(live.channel->receive(in), 16u);
  EXPECT_EQ(std::memcmp(in.data(), out.data(), 16), 0);
  live.channel.reset();  // the empty goodbye ends the peer's receive
  EXPECT_EQ(reap(live.child), 0);

  // A peer that died holding nothing: nothing to release, and the channel
  // reports the peer's end as usual.
  Pair dead = connect_peer("locktest3", [](Channel&, const std::string&) { ::raise(SIGKILL); });
  reap(dead.child);
  EXPECT_FALSE(dead.channel->release_locks_of_dead_peer());
  std::array<std::byte, kMax> buf{};
  EXPECT_THROW((void)dead.channel->receive(buf), ipcbench::PeerLost);
}

}  // namespace
