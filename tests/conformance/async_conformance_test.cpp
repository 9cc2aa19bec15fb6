// Asynchronous conformance suite, run against every registered mechanism:
// the non-blocking half of Channel (try_send, try_receive, the readiness
// waits, receive_for and the descriptors for poll/epoll) must move whole
// messages exactly once and in order, report "would block" as a value, and
// never miss a wake-up. A new mechanism is covered by registering it.
//
// Each test listens here, forks a peer that connects, and drives the exchange
// from this side. The peer checks what it receives and reports a failure
// through a pipe and its exit status; where the peer must hold still until
// this side is ready (a full channel, an idle one), it waits on a separate
// "gate" pipe created before the fork. Every wait has a deadline: the peer
// runs under alarm(), this side under its own alarm, and TearDown kills a
// peer that is still running.
//
// Lossy mechanisms (capabilities().lossy) may drop datagrams. On an idle
// loopback with a bounded window they should not, so only where a test says
// so is a loss accepted, and then only if the sequence numbers account for it
// exactly (it is reported in the test's output); a duplicate or a reordering
// always fails.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "fork_peer.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/registry.hpp"

namespace ipcbench {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using namespace std::chrono_literals;

constexpr milliseconds kAcceptTimeout{10'000};
constexpr milliseconds kConnectTimeout{10'000};

// This process: the first alarm interrupts blocking calls, the second (after
// a grace period, see fork_peer.hpp) ends the process.
constexpr unsigned kTestAlarmSeconds = 30;
constexpr unsigned kWindowedTestAlarmSeconds = 75;
constexpr milliseconds kReapTimeout{10'000};

// A readiness wait that lasts this long while the other side has already
// sent is a missed wake-up: on an idle machine answers take microseconds.
constexpr milliseconds kStall{1'000};

// Windowed echo.
constexpr std::uint64_t kEchoCount = 100'000;
constexpr std::size_t kEchoSize = 64;
constexpr std::uint64_t kEchoWindow = 64;
constexpr seconds kEchoDeadline{45};  // typically 1-5 s
// The peer queues at most this many echoes it could not send yet.
constexpr std::size_t kPeerBacklog = 256;

// Filling a channel.
constexpr std::size_t kFillSize = 4096;
constexpr std::uint64_t kFillAttempts = 1'000'000;
constexpr std::uint64_t kFillBytes = 64ull << 20;
// try_send must refuse for this long, while the peer does not read, before
// the channel counts as full (a TCP sender may get room back from ACKs of
// data already sent for a moment after the first refusal; behind zmq-tcp,
// ZeroMQ's I/O thread kept moving messages into a growing TCP buffer: 486
// more were accepted after 50 ms of refusals in an ASan run).
constexpr milliseconds kFullAfter{250};
constexpr int kRefusalsWhenFull = 1'000;
// A lossy peer stops draining after this long without a datagram.
constexpr milliseconds kDrainIdle{300};

// Mixed sizes.
constexpr std::array<std::size_t, 4> kMixedSizes = {1, 100, 4095, 65536};
constexpr std::uint64_t kMixedCount = 1'000;
// Lossy mechanisms get an acknowledgement every this many messages (two
// rounds of the sizes, ~140 KiB) so a burst never overflows a socket buffer.
constexpr std::uint64_t kMixedLossyWindow = 8;

// Idle waits.
constexpr milliseconds kIdleWait{50};
constexpr milliseconds kIdleWaitAtLeast{40};
constexpr milliseconds kIdleWaitAtMost{1'000};
constexpr milliseconds kPrompt{1'000};
constexpr int kIdleRounds = 3;

// ---------------------------------------------------------------------------
// Message content. Bytes 0..7 carry the sequence number (salted so that no
// byte is constant, little-endian, cut short in shorter messages); every
// further 8-byte word is a hash of (sequence, word index), so a message
// can only ever match the one sequence number it was made for.

constexpr std::uint64_t kSequenceSalt = 0xd1b54a32d192ed03ULL;
// Control messages are 8 bytes, never the size of a data message here.
constexpr std::size_t kControlSize = 8;
constexpr std::uint64_t kEndMarker = 0x4b52414d2d444e45ULL;  // "END-MARK"
constexpr std::uint64_t kByeMarker = 0x4b52414d2d455942ULL;  // "BYE-MARK"
constexpr std::uint64_t kAckMarker = 0x4b52414d2d4b4341ULL;  // "ACK-MARK"

class CheckFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::uint64_t hash64(std::uint64_t x) {
  // splitmix64's finaliser: a bijection, so distinct inputs never collide.
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t content_word(std::uint64_t sequence, std::size_t word) {
  if (word == 0) return sequence ^ kSequenceSalt;
  // sequence < 2^40 and word < 2^24 here: the pair maps to distinct inputs.
  return hash64((sequence << 24) ^ static_cast<std::uint64_t>(word));
}

void make_message(std::span<std::byte> out, std::uint64_t sequence) {
  std::uint64_t w = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (i % 8 == 0) w = content_word(sequence, i / 8);
    out[i] = static_cast<std::byte>(w >> (8 * (i % 8)));
  }
}

std::uint64_t load_u64(std::span<const std::byte> in) {
  std::uint64_t v = 0;
  for (std::size_t k = 0; k < 8 && k < in.size(); ++k) {
    v |= std::to_integer<std::uint64_t>(in[k]) << (8 * k);
  }
  return v;
}

void store_u64(std::span<std::byte> out, std::uint64_t v) {
  for (std::size_t k = 0; k < 8 && k < out.size(); ++k)
    out[k] = static_cast<std::byte>(v >> (8 * k));
}

// The sequence number a message of at least 8 bytes says it carries.
std::uint64_t carried_sequence(std::span<const std::byte> message) {
  return load_u64(message) ^ kSequenceSalt;
}

// Empty if `got` is message `sequence` of `size` bytes, else what differs.
std::string check_message(std::span<const std::byte> got, std::size_t size,
                          std::uint64_t sequence) {
  const std::string which = "message " + std::to_string(sequence);
  if (got.size() != size) {
    std::string text = which + " arrived with " + std::to_string(got.size()) +
                       " bytes instead of " + std::to_string(size);
    if (got.size() >= 8)
      text += " (it carries sequence " + std::to_string(carried_sequence(got)) + ")";
    return text + ": a partial, merged, lost or reordered message";
  }
  std::uint64_t w = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (i % 8 == 0) w = content_word(sequence, i / 8);
    const auto expected = static_cast<std::byte>(w >> (8 * (i % 8)));
    if (got[i] != expected) {
      std::string text = which + ": byte " + std::to_string(i) + " is " +
                         std::to_string(std::to_integer<unsigned>(got[i])) + ", expected " +
                         std::to_string(std::to_integer<unsigned>(expected));
      if (i < 8 && got.size() >= 8) {
        text += " (it carries sequence " + std::to_string(carried_sequence(got)) +
                ": lost, duplicated, reordered or corrupted)";
      }
      return text;
    }
  }
  return {};
}

std::array<std::byte, kControlSize> control_message(std::uint64_t marker) {
  std::array<std::byte, kControlSize> m{};
  store_u64(m, marker);
  return m;
}

bool is_control(std::span<const std::byte> m, std::uint64_t marker) {
  return m.size() == kControlSize && load_u64(m) == marker;
}

// ---------------------------------------------------------------------------
// Sequence bookkeeping: each message exactly once and in order; a lossy
// mechanism may skip sequence numbers, which are then listed exactly.

class SequenceLedger {
 public:
  explicit SequenceLedger(bool lossy) : lossy_(lossy) {}

  // Records that `sequence` arrived; empty, or why that is wrong.
  std::string arrived(std::uint64_t sequence) {
    if (sequence == next_) {
      ++next_;
      return {};
    }
    if (sequence < next_) {
      return "message " + std::to_string(sequence) + " arrived after message " +
             std::to_string(next_ - 1) + ": duplicated or reordered";
    }
    if (!lossy_) {
      return "expected message " + std::to_string(next_) + ", got message " +
             std::to_string(sequence) + ": " + std::to_string(sequence - next_) +
             " message(s) lost or reordered";
    }
    skip_to(sequence);
    ++next_;
    return {};
  }

  // Lossy only: everything before `end` that has not arrived is lost.
  void give_up_before(std::uint64_t end) {
    if (end > next_) skip_to(end);
  }

  std::uint64_t next() const noexcept { return next_; }
  std::uint64_t lost() const noexcept { return lost_; }

  std::string describe_losses() const {
    if (lost_ == 0) return "none";
    std::string text = std::to_string(lost_) + " lost:";
    std::size_t shown = 0;
    for (const auto& [first, end] : gaps_) {
      if (++shown > 20) {
        text += " ...";
        break;
      }
      // (append: GCC 12 warns falsely on "literal" + std::string here.)
      text.append(" ").append(std::to_string(first));
      if (end - first > 1) text.append("-").append(std::to_string(end - 1));
    }
    return text;
  }

 private:
  void skip_to(std::uint64_t end) {
    gaps_.emplace_back(next_, end);
    lost_ += end - next_;
    next_ = end;
  }

  bool lossy_;
  std::uint64_t next_ = 0;
  std::uint64_t lost_ = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> gaps_;  // [first, end)
};

// ---------------------------------------------------------------------------
// Non-blocking helpers shared by both sides.

timespec to_timespec(nanoseconds d) {
  const auto ns = std::max<std::int64_t>(d.count(), 0);
  return {static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

// ppoll on `fds` for at most `timeout`: true when an event came. A signal is
// a wake-up unless the harness requested an interrupt (then PeerLost).
bool poll_fds(pollfd* fds, nfds_t count, nanoseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const timespec ts = to_timespec(deadline - Clock::now());
    const int r = ::ppoll(fds, count, &ts, nullptr);
    if (r >= 0) return r > 0;
    if (errno != EINTR) posix::throw_errno("ppoll failed");
    posix::throw_if_interrupted();
  }
}

// Waits until `channel` can probably receive (want_receive) or send
// (want_send), at most `timeout`; false on timeout. Like an event loop: poll
// on the channel's descriptors when it has them, else the channel's own
// waits (alternating in short slices when both directions matter).
bool wait_ready(Channel& channel, bool want_receive, bool want_send, nanoseconds timeout) {
  want_send = want_send || channel.send_pending();  // the channel's own backlog must drain
  const int rfd = channel.receive_fd();
  const int sfd = channel.send_fd();
  if ((!want_receive || rfd >= 0) && (!want_send || sfd >= 0)) {
    std::array<pollfd, 2> fds{};
    nfds_t n = 0;
    if (want_receive) fds[n++] = {rfd, POLLIN, 0};
    if (want_send) {
      if (n == 1 && sfd == rfd) {
        fds[0].events |= POLLOUT;
      } else {
        fds[n++] = {sfd, POLLOUT, 0};
      }
    }
    return poll_fds(fds.data(), n, timeout);
  }
  if (want_receive && want_send) {
    const auto deadline = Clock::now() + timeout;
    do {
      if (channel.wait_receivable(1ms) || channel.wait_sendable(1ms)) return true;
    } while (Clock::now() < deadline);
    return false;
  }
  return want_receive ? channel.wait_receivable(timeout) : channel.wait_sendable(timeout);
}

// Sends one message with try_send and readiness waits only; throws
// CheckFailed if it cannot be sent within `limit`.
void send_nonblocking(Channel& channel, std::span<const std::byte> message, nanoseconds limit,
                      const std::string& what) {
  const auto deadline = Clock::now() + limit;
  while (!channel.try_send(message)) {
    const auto left = deadline - Clock::now();
    if (left <= nanoseconds::zero() || !wait_ready(channel, false, true, left)) {
      throw CheckFailed("could not send " + what + " within " +
                        std::to_string(std::chrono::duration_cast<milliseconds>(limit).count()) +
                        " ms");
    }
  }
}

// Receives one message with try_receive and readiness waits only. Each wait
// lasts at most kStall; nullopt if nothing came within `limit`.
std::optional<std::size_t> receive_nonblocking(Channel& channel, std::span<std::byte> buffer,
                                               nanoseconds limit) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    if (const auto n = channel.try_receive(buffer)) return n;
    const auto left = deadline - Clock::now();
    if (left <= nanoseconds::zero()) return std::nullopt;
    wait_ready(channel, true, false, std::min<nanoseconds>(left, kStall));
  }
}

std::string ms_text(Clock::duration d) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f ms", std::chrono::duration<double, std::milli>(d).count());
  return text;
}

// ---------------------------------------------------------------------------
// The gate: a pipe created before the fork on which the peer waits for a
// number from this side ("go, and here is how many").

class Gate {
 public:
  Gate() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) posix::throw_errno("cannot create the gate pipe");
    read_ = posix::Fd(fds[0]);
    write_ = posix::Fd(fds[1]);
  }

  int peer_fd() const noexcept { return read_.get(); }

  // This side, after the fork: its copy of the read end is not needed.
  void parent_forked() { read_.reset(); }

  void open(std::uint64_t value) {
    std::array<std::byte, 8> bytes{};
    store_u64(bytes, value);
    const ssize_t n =
        posix::retry_eintr([&] { return ::write(write_.get(), bytes.data(), bytes.size()); });
    if (n != static_cast<ssize_t>(bytes.size())) posix::throw_errno("cannot open the gate");
  }

  // The peer: blocks until this side opens the gate; its value.
  static std::uint64_t wait(int fd) {
    std::array<std::byte, 8> bytes{};
    std::size_t got = 0;
    while (got < bytes.size()) {
      const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
      if (n > 0) {
        got += static_cast<std::size_t>(n);
      } else if (n == 0) {
        throw CheckFailed("the test closed the gate without opening it");
      } else if (errno != EINTR) {
        posix::throw_errno("cannot read the gate");
      }
    }
    return load_u64(bytes);
  }

 private:
  posix::Fd read_;
  posix::Fd write_;
};

// ---------------------------------------------------------------------------
// Peer jobs.

using PeerJob = std::function<void(Channel&)>;

// Echoes 64-byte messages until the end marker (which it echoes too), using
// only try_send / try_receive and readiness waits.
PeerJob nonblocking_echo_job(bool lossy) {
  return [lossy](Channel& channel) {
    struct Slot {
      std::array<std::byte, kEchoSize> bytes;
      std::size_t size;
    };
    std::vector<Slot> ring(kPeerBacklog);
    std::size_t head = 0, queued = 0;  // ring[head] is the oldest unsent echo
    SequenceLedger ledger(lossy);
    std::array<std::byte, kEchoSize> in{};
    bool ended = false;
    while (!ended || queued > 0) {
      bool progress = false;
      while (queued > 0) {
        const Slot& s = ring[head];
        if (!channel.try_send(std::span(s.bytes).first(s.size))) break;
        head = (head + 1) % ring.size();
        --queued;
        progress = true;
      }
      while (!ended && queued < ring.size()) {
        const auto n = channel.try_receive(in);
        if (!n) break;
        progress = true;
        const auto got = std::span(in).first(*n);
        Slot& s = ring[(head + queued) % ring.size()];
        std::copy(got.begin(), got.end(), s.bytes.begin());
        s.size = *n;
        ++queued;
        if (is_control(got, kEndMarker)) {
          ended = true;
          break;
        }
        if (*n != kEchoSize) {
          throw CheckFailed("peer: a " + std::to_string(*n) + "-byte message in a stream of " +
                            std::to_string(kEchoSize) + "-byte ones (expected message " +
                            std::to_string(ledger.next()) + ")");
        }
        const std::uint64_t seq = lossy ? carried_sequence(got) : ledger.next();
        if (auto problem = check_message(got, kEchoSize, seq); !problem.empty()) {
          throw CheckFailed("peer: " + problem);
        }
        if (auto problem = ledger.arrived(seq); !problem.empty()) {
          throw CheckFailed("peer: " + problem);
        }
      }
      if (progress) continue;
      // Nothing moved: an echo is blocked (queued > 0), or nothing came.
      const bool want_send = queued > 0;
      const bool want_receive = !ended && queued < ring.size();
      if (!wait_ready(channel, want_receive, want_send, kStall) && want_send) {
        throw CheckFailed("peer: could not send an echo for " + ms_text(kStall) +
                          " although the test drains its side (" + std::to_string(queued) +
                          " queued; a missed wake-up?)");
      }
    }
    if (!lossy && ledger.next() != kEchoCount) {
      throw CheckFailed("peer: the end marker came after " + std::to_string(ledger.next()) +
                        " messages, not " + std::to_string(kEchoCount));
    }
  };
}

// The same echo with blocking receive and send.
// With `loaned`, every message is read where it arrived (receive_view) and
// its echo written where the channel lends it (loan, send_loaned).
PeerJob blocking_echo_job(bool lossy, bool loaned = false) {
  return [lossy, loaned](Channel& channel) {
    SequenceLedger ledger(lossy);
    std::array<std::byte, kEchoSize> in{};
    auto echo = [&](std::span<const std::byte> got) {
      if (!loaned) return channel.send(got);
      const std::span<std::byte> out = channel.loan(in, got.size());
      if (out.data() != got.data()) std::copy(got.begin(), got.end(), out.begin());
      channel.send_loaned(out);
    };
    for (;;) {
      const auto got = loaned ? channel.receive_view(in)
                              : std::span<const std::byte>(in).first(channel.receive(in));
      const std::size_t n = got.size();
      if (is_control(got, kEndMarker)) {
        echo(got);
        break;
      }
      const std::uint64_t seq = lossy && n >= 8 ? carried_sequence(got) : ledger.next();
      if (auto problem = check_message(got, kEchoSize, seq); !problem.empty()) {
        throw CheckFailed("peer: " + problem);
      }
      if (auto problem = ledger.arrived(seq); !problem.empty()) {
        throw CheckFailed("peer: " + problem);
      }
      echo(got);
      channel.release_view();
    }
    if (!lossy && ledger.next() != kEchoCount) {
      throw CheckFailed("peer: the end marker came after " + std::to_string(ledger.next()) +
                        " messages, not " + std::to_string(kEchoCount));
    }
  };
}

// What filling a channel the peer does not read came to.
struct Fill {
  std::uint64_t accepted = 0;
  std::uint64_t refusals = 0;
  bool full = false;  // refused for kFullAfter on end
  std::string error;  // what a send threw
};

// Sends message after message (`try_one(index)` writes message `index` and
// tries to send it: whether it went) until they have been refused for
// kFullAfter, or kFillAttempts tries or kFillBytes were reached.
template <typename TryOne>
Fill fill_until_refused(std::size_t size, TryOne try_one) {
  Fill f;
  std::optional<Clock::time_point> refusing_since;
  for (std::uint64_t attempt = 0; attempt < kFillAttempts && f.accepted * size < kFillBytes;
       ++attempt) {
    bool ok = false;
    try {
      ok = try_one(f.accepted);
    } catch (const std::exception& e) {
      f.error = e.what();
      return f;
    }
    if (ok) {
      ++f.accepted;
      refusing_since.reset();
      continue;
    }
    ++f.refusals;
    const auto now = Clock::now();
    if (!refusing_since) refusing_since = now;
    if (now - *refusing_since >= kFullAfter) {
      f.full = true;
      break;
    }
    std::this_thread::sleep_for(100us);
  }
  return f;
}

// The listening side's endpoint and channel; the endpoint outlives the
// channel, as in the runner.
struct Connection {
  std::unique_ptr<Endpoint> endpoint;
  std::unique_ptr<Channel> channel;
};

// ---------------------------------------------------------------------------
// The fixture.

class AsyncConformance : public conformance::MechanismTest {
 protected:
  AsyncConformance()
      : MechanismTest("async_conformance_test", "/tmp/ipcbench-async-", kTestAlarmSeconds) {}

  void TearDown() override {
    if (peer_.running()) {
      // The test ended early: end the peer now and say how it fared.
      ::kill(peer_.pid(), SIGKILL);
      const auto reaped = reap_peer(kReapTimeout);
      if (!reaped) ADD_FAILURE() << "(test ended before its peer) " << reaped.message();
    }
    deadline_.disarm();
    if (!run_dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(run_dir_, ec);
    }
  }

  // Listens, forks a peer that connects and runs `job`, accepts it. The peer
  // keeps the gate's read end, if any.
  Connection start(std::size_t max_message, PeerJob job, Gate* gate = nullptr) {
    const std::string tag = "a" + std::to_string(++tags_) + "-" + std::to_string(::getpid());
    Connection c;
    c.endpoint = mech_->listen({.run_dir = run_dir_, .tag = tag, .max_message = max_message});
    std::vector<int> keep = c.endpoint->inherited_fds();
    if (gate != nullptr) keep.push_back(gate->peer_fd());
    const std::string address = c.endpoint->address();
    Mechanism* mech = mech_;
    peer_.spawn(keep, [mech, address, max_message, job] {
      std::unique_ptr<Channel> channel =
          mech->connect(address, {.max_message = max_message, .timeout = kConnectTimeout});
      job(*channel);
    });
    if (gate != nullptr) gate->parent_forked();
    c.channel = c.endpoint->accept(kAcceptTimeout);
    return c;
  }

  // Waits for the peer (killing it after `timeout`); success if it exited 0.
  ::testing::AssertionResult reap_peer(milliseconds timeout = kReapTimeout) {
    return peer_.reap(timeout);
  }

  // Prints a line about this mechanism in the test's output and records it.
  void note(const std::string& key, const std::string& text) {
    std::printf("[   NOTE   ] %s %s: %s\n", GetParam().c_str(), key.c_str(), text.c_str());
    std::fflush(stdout);
    RecordProperty(key, text);
  }

  void run_windowed_echo(bool blocking_peer, bool loaned = false);

  // The peer's bye (received into `in`), then both ends closed and the
  // peer reaped.
  void expect_bye_then_close(Connection& c, std::span<std::byte> in) {
    const auto bye = receive_nonblocking(*c.channel, in, 10s);
    ASSERT_TRUE(bye.has_value()) << "the peer never said bye";
    EXPECT_TRUE(is_control(std::span(in).first(*bye), kByeMarker)) << "unexpected message";
    c.channel.reset();
    c.endpoint.reset();
    EXPECT_TRUE(reap_peer());
  }

  int tags_ = 0;
};

// This side keeps up to kEchoWindow messages in flight with try_send /
// try_receive only and waits for readiness when neither moves. Each echo
// must come back exactly once, in order and intact; a readiness wait that
// times out while messages are in flight, or any gap of kStall between
// echoes, is a missed wake-up. With `loaned`, both sides go through the
// loan API: messages written where the channel lends them and read where
// they arrived (the peer blocking).
void AsyncConformance::run_windowed_echo(bool blocking_peer, bool loaned) {
  const bool lossy = caps_.lossy;
  Connection c = start(
      kEchoSize, blocking_peer ? blocking_echo_job(lossy, loaned) : nonblocking_echo_job(lossy));
  Channel& channel = *c.channel;
  ::alarm(kWindowedTestAlarmSeconds);

  std::array<std::byte, kEchoSize> out{};
  std::array<std::byte, kEchoSize> in{};
  SequenceLedger ledger(lossy);
  std::uint64_t sent = 0;
  std::uint64_t waits = 0;
  std::uint64_t spurious = 0;  // a wait said "ready" but nothing moved after it
  std::uint64_t given_up = 0;  // lossy: waits that timed out with messages in flight
  bool just_waited = false;
  const auto start_time = Clock::now();
  const auto deadline = start_time + kEchoDeadline;
  auto last_echo = start_time;
  Clock::duration longest_gap{};
  std::uint64_t gap_before = 0;  // the echo that ended the longest gap

  auto status = [&] {
    return "sent " + std::to_string(sent) + ", echoed " + std::to_string(ledger.next()) +
           ", in flight " + std::to_string(sent - ledger.next()) + ", waits " +
           std::to_string(waits) + ", after " + ms_text(Clock::now() - start_time);
  };

  while (ledger.next() < kEchoCount) {
    bool progress = false;
    bool send_blocked = false;
    while (sent < kEchoCount && sent - ledger.next() < kEchoWindow) {
      // A refused loan is lent again and written again (Channel::loan).
      const std::span<std::byte> message = loaned ? channel.loan(out, kEchoSize) : std::span(out);
      make_message(message, sent);
      if (!(loaned ? channel.try_send_loaned(message) : channel.try_send(message))) {
        send_blocked = true;
        break;
      }
      ++sent;
      progress = true;
    }
    auto next_echo = [&]() -> std::optional<std::span<const std::byte>> {
      if (loaned) return channel.try_receive_view(in);
      const auto n = channel.try_receive(in);
      if (!n) return std::nullopt;
      return std::span<const std::byte>(in).first(*n);
    };
    while (const auto echo = next_echo()) {
      progress = true;
      const std::span<const std::byte> got = *echo;
      const std::uint64_t seq = got.size() >= 8 ? carried_sequence(got) : ledger.next();
      if (auto problem = check_message(got, kEchoSize, seq); !problem.empty()) {
        FAIL() << "echo: " << problem << " (" << status() << ")";
      }
      if (seq >= sent) FAIL() << "echo of message " << seq << ", never sent (" << status() << ")";
      if (auto problem = ledger.arrived(seq); !problem.empty()) {
        FAIL() << "echo: " << problem << " (" << status() << ")";
      }
      const auto now = Clock::now();
      if (now - last_echo > longest_gap) {
        longest_gap = now - last_echo;
        gap_before = seq;
      }
      last_echo = now;
      channel.release_view();
    }
    if (progress) {
      just_waited = false;
      continue;
    }
    if (just_waited) ++spurious;
    if (Clock::now() > deadline) {
      FAIL() << kEchoCount << " windowed echoes did not finish within " << kEchoDeadline.count()
             << " s (" << status() << ")";
    }
    // Nothing moved: wait for an echo if any is due, and for room if the
    // send would block.
    const bool want_receive = sent > ledger.next();
    ++waits;
    just_waited = true;
    if (!wait_ready(channel, want_receive, send_blocked, kStall)) {
      if (lossy && want_receive) {
        ledger.give_up_before(sent);  // nothing came for kStall: those are lost
        ++given_up;
        just_waited = false;
        continue;
      }
      FAIL() << "missed wake-up: a wait for " << (want_receive ? "an echo" : "")
             << (want_receive && send_blocked ? " or " : "") << (send_blocked ? "room" : "")
             << " timed out after " << ms_text(kStall) << " although the peer had been sent "
             << "everything it needed (" << status() << ")";
    }
  }
  const auto elapsed = Clock::now() - start_time;

  // The end marker, sent and echoed in the same style; a lossy mechanism
  // gets it again if it does not come back.
  const auto end_marker = control_message(kEndMarker);
  bool ended = false;
  for (int attempt = 0; attempt < (lossy ? 3 : 1) && !ended; ++attempt) {
    send_nonblocking(channel, end_marker, 5s, "the end marker");
    while (const auto n = receive_nonblocking(channel, in, lossy ? 1s : 5s)) {
      const auto got = std::span(in).first(*n);
      if (is_control(got, kEndMarker)) {
        ended = true;
        break;
      }
      FAIL() << "after the last echo, a " << *n << "-byte message arrived (carrying sequence "
             << (*n >= 8 ? carried_sequence(got) : 0) << "): duplicated or reordered";
    }
  }
  ASSERT_TRUE(ended) << "the end marker did not come back";
  c.channel.reset();
  c.endpoint.reset();
  EXPECT_TRUE(reap_peer());

  EXPECT_LT(longest_gap, kStall) << "a stall of " << ms_text(longest_gap) << " before echo "
                                 << gap_before << ": readiness reported late";
  char summary[256];
  std::snprintf(
      summary, sizeof summary,
      "%llu echoes (window %llu, %s peer) in %.2f s; %llu waits, %llu spurious; "
      "longest gap %s",
      static_cast<unsigned long long>(kEchoCount), static_cast<unsigned long long>(kEchoWindow),
      blocking_peer ? "blocking" : "non-blocking", std::chrono::duration<double>(elapsed).count(),
      static_cast<unsigned long long>(waits), static_cast<unsigned long long>(spurious),
      ms_text(longest_gap).c_str());
  note("windowed_echo", summary);
  if (ledger.lost() > 0 || given_up > 0) {
    note("LOSS", ledger.describe_losses() + " (on an idle loopback with a window of " +
                     std::to_string(kEchoWindow) + ")");
  }
}

// ---------------------------------------------------------------------------
// The tests.

// Guards that 100k echoes driven only by try_send / try_receive and
// readiness waits (a non-blocking peer) arrive exactly once, in order, intact
// and without a missed wake-up.
TEST_P(AsyncConformance, WindowedEchoOf100kMessagesCompletes) {
  run_windowed_echo(/*blocking_peer=*/false);
}

// Guards the same when the peer uses blocking receive / send against a
// non-blocking side (the two styles must interoperate on one channel).
TEST_P(AsyncConformance, WindowedEchoWithBlockingPeerCompletes) {
  run_windowed_echo(/*blocking_peer=*/true);
}

// Guards the loan API (Channel::loan, try_send_loaned, receive_view) the
// same way: every message written where the channel lends it, a refused one
// lent and written again, every echo read where it arrived and released.
// A mechanism with a loan API (iceoryx) runs its own; the others run the
// defaults, which must behave exactly as try_send / try_receive.
TEST_P(AsyncConformance, WindowedEchoThroughLoansCompletes) {
  run_windowed_echo(/*blocking_peer=*/true, /*loaned=*/true);
}

// Guards that a full channel makes try_send return false (never throw), that
// it stays false while the peer does not read, that nothing accepted is lost
// or duplicated, and that room comes back once the peer drained it.
TEST_P(AsyncConformance, WouldBlockIsAValueNotAnError) {
  const std::size_t size = std::min(kFillSize, caps_.max_message);
  ASSERT_GE(size, 2 * kControlSize) << "max_message too small for this test";
  const bool lossy = caps_.lossy;
  Gate gate;
  const int gate_fd = gate.peer_fd();
  // The peer: waits at the gate for the number of accepted messages, drains
  // them (blocking), checks that nothing more is queued, replies with the
  // count (and, lossy, what is missing), then takes one more message.
  Connection c = start(
      size,
      [size, lossy, gate_fd](Channel& channel) {
        const std::uint64_t accepted = Gate::wait(gate_fd);
        std::vector<std::byte> buf(size);
        SequenceLedger ledger(lossy);
        std::uint64_t received = 0;
        for (;;) {
          if (!lossy && received == accepted) break;
          const auto n =
              lossy ? channel.receive_for(buf, kDrainIdle) : std::optional(channel.receive(buf));
          if (!n) break;
          const auto got = std::span(buf).first(*n);
          const std::uint64_t seq = *n >= 8 ? carried_sequence(got) : ledger.next();
          if (seq >= accepted) {
            throw CheckFailed("peer: message " + std::to_string(seq) + " arrived, but only " +
                              std::to_string(accepted) + " were accepted");
          }
          if (auto problem = check_message(got, size, seq); !problem.empty()) {
            throw CheckFailed("peer: " + problem);
          }
          if (auto problem = ledger.arrived(seq); !problem.empty()) {
            throw CheckFailed("peer: " + problem);
          }
          ++received;
        }
        ledger.give_up_before(accepted);
        if (const auto extra = channel.try_receive(buf)) {
          throw CheckFailed("peer: after the " + std::to_string(accepted) +
                            " accepted messages, try_receive returned another of " +
                            std::to_string(*extra) + " bytes (a duplicate?)");
        }
        std::vector<std::byte> reply(size);
        store_u64(reply, received);
        const std::string losses = ledger.describe_losses();
        const std::size_t text = std::min(losses.size(), size - 8);
        std::memcpy(reply.data() + 8, losses.data(), text);
        channel.send(std::span(reply).first(8 + text));
        const auto n = lossy ? channel.receive_for(buf, 5s) : std::optional(channel.receive(buf));
        if (!n) throw CheckFailed("peer: the message sent after the drain never came");
        if (auto problem = check_message(std::span(buf).first(*n), size, accepted);
            !problem.empty()) {
          throw CheckFailed("peer: after the drain: " + problem);
        }
        channel.send(control_message(kByeMarker));
      },
      &gate);
  Channel& channel = *c.channel;
  std::vector<std::byte> out(size);
  std::vector<std::byte> in(size);

  // An empty channel: nothing to receive, room to send.
  for (int i = 0; i < 3; ++i) {
    std::optional<std::size_t> got;
    ASSERT_NO_THROW(got = channel.try_receive(in)) << "try_receive threw on an empty channel";
    ASSERT_FALSE(got.has_value()) << "try_receive returned " << *got << " bytes, nobody sent";
  }
  {
    const auto t0 = Clock::now();
    EXPECT_TRUE(channel.wait_sendable(kPrompt)) << "an empty channel is not sendable";
    EXPECT_LT(Clock::now() - t0, kPrompt / 2) << "wait_sendable on an empty channel was slow";
  }

  // Fill it while the peer does not read.
  const Fill fill = fill_until_refused(size, [&](std::uint64_t i) {
    make_message(out, i);
    return channel.try_send(out);
  });
  ASSERT_TRUE(fill.error.empty()) << "try_send threw while the channel filled up (after "
                                  << fill.accepted << " messages): " << fill.error;
  std::uint64_t accepted = fill.accepted;
  const std::uint64_t refusals = fill.refusals;
  const bool full = fill.full;
  const std::string fill_text = std::to_string(accepted) + " messages of " + std::to_string(size) +
                                " bytes accepted, " + std::to_string(refusals) + " refusals";
  if (!full) {
    ASSERT_TRUE(lossy) << "try_send never kept reporting \"would block\" although the peer did "
                          "not read: "
                       << fill_text;
    note("fill", "never would-block: a lossy mechanism that drops instead; " + fill_text);
  } else {
    note("fill", fill_text);
    // Full: it stays refused, as a value, as long as the peer does not read;
    // and the other direction is still empty.
    int late_accepts = 0;
    make_message(out, accepted);
    for (int i = 0; i < kRefusalsWhenFull; ++i) {
      bool ok = false;
      ASSERT_NO_THROW(ok = channel.try_send(out)) << "try_send threw on a full channel";
      if (ok) {
        ++late_accepts;
        make_message(out, ++accepted);
      }
    }
    EXPECT_EQ(late_accepts, 0) << "try_send accepted messages on a channel it had refused for "
                               << ms_text(kFullAfter) << " while the peer did not read";
    std::optional<std::size_t> got;
    ASSERT_NO_THROW(got = channel.try_receive(in)) << "try_receive threw with a full channel";
    EXPECT_FALSE(got.has_value()) << "try_receive returned a message nobody sent";
  }

  // Let the peer drain; wait for its count the way an event loop would
  // (poll on receive_fd() when there is one: this side sends nothing now).
  gate.open(accepted);
  std::optional<std::size_t> reply;
  const auto drain_start = Clock::now();
  std::optional<Clock::time_point> stalled_at;
  while (!reply) {
    reply = channel.try_receive(in);
    if (reply) break;
    ASSERT_LT(Clock::now() - drain_start, 20s)
        << "the peer's count never came (" << fill_text << ")";
    if (!wait_ready(channel, true, false, kStall)) {
      if (!stalled_at) stalled_at = Clock::now();
      // Carry on the way the mechanism itself waits, to check the rest.
      (void)channel.wait_receivable(kStall);
    }
  }
  if (stalled_at) {
    ADD_FAILURE() << "missed wake-up: while the peer drained the " << accepted
                  << " accepted messages, a " << ms_text(kStall) << " wait for its count"
                  << (channel.receive_fd() >= 0 ? " (poll on receive_fd())" : "")
                  << " timed out; the count came only " << ms_text(Clock::now() - *stalled_at)
                  << " later, once the channel's own wait_receivable() had run. A byte stream "
                     "that keeps the unsent tail of a message try_send accepted pushes it only "
                     "inside its own calls: an event loop that waits on receive_fd() (and on "
                     "send_fd() only when a send would block) is never told to, and the peer "
                     "waits for that tail forever.";
  }
  ASSERT_GE(*reply, 8u) << "the peer's count is " << *reply << " bytes";
  const std::uint64_t received = load_u64(in);
  const std::string losses(reinterpret_cast<const char*>(in.data()) + 8, *reply - 8);
  if (lossy) {
    EXPECT_LE(received, accepted);
    if (received < accepted) {
      note("LOSS", "filling without a reader: " + std::to_string(received) + " of " +
                       std::to_string(accepted) + " delivered; " + losses);
    }
  } else {
    EXPECT_EQ(received, accepted) << "messages lost (the peer's own checks: " << losses << ")";
  }

  // Drained: empty again, and room to send comes back.
  std::optional<std::size_t> got;
  ASSERT_NO_THROW(got = channel.try_receive(in)) << "try_receive threw on an empty channel";
  EXPECT_FALSE(got.has_value()) << "try_receive returned a message after the count";
  const auto t0 = Clock::now();
  EXPECT_TRUE(channel.wait_sendable(kStall)) << "wait_sendable stayed false after the drain";
  const auto sendable_after = Clock::now() - t0;
  EXPECT_LT(sendable_after, kPrompt) << "wait_sendable took long after the drain";
  make_message(out, accepted);
  int tries = 1;
  const auto retry_until = Clock::now() + kPrompt;
  while (!channel.try_send(out)) {
    ASSERT_LT(Clock::now(), retry_until)
        << "try_send still refused " << ms_text(kPrompt) << " after the peer drained the channel";
    ++tries;
    (void)channel.wait_sendable(10ms);
  }
  EXPECT_EQ(tries, 1) << "wait_sendable returned true but try_send still refused " << tries - 1
                      << " time(s) after the drain";
  expect_bye_then_close(c, in);
}

// Guards the refusal of a loaned send (Channel::try_send_loaned): on a
// channel the peer does not read it returns false (never throws); the
// message is then lent again, written again and sent once room comes, and
// the peer gets every accepted message and that one, each once, intact,
// read where it arrived. A lossy mechanism drops instead of refusing.
TEST_P(AsyncConformance, RefusedLoanedSendGoesOnceWhenRoomComes) {
  if (caps_.lossy) GTEST_SKIP() << "a lossy mechanism drops rather than refuses";
  const std::size_t size = std::min(kFillSize, caps_.max_message);
  ASSERT_GE(size, 2 * kControlSize) << "max_message too small for this test";
  Gate gate;
  const int gate_fd = gate.peer_fd();
  // The peer: waits at the gate for the count of accepted messages, then
  // reads them and the one that was refused, in place, and says bye.
  Connection c = start(
      size,
      [size, gate_fd](Channel& channel) {
        const std::uint64_t accepted = Gate::wait(gate_fd);
        std::vector<std::byte> buf(size);
        for (std::uint64_t i = 0; i <= accepted; ++i) {
          const std::span<const std::byte> got = channel.receive_view(buf);
          if (auto problem = check_message(got, size, i); !problem.empty()) {
            throw CheckFailed("peer: " + problem);
          }
          channel.release_view();
        }
        channel.send(control_message(kByeMarker));
      },
      &gate);
  Channel& channel = *c.channel;
  std::vector<std::byte> out(size);
  std::vector<std::byte> in(size);

  const Fill fill = fill_until_refused(size, [&](std::uint64_t i) {
    const std::span<std::byte> message = channel.loan(out, size);
    if (message.size() != size) throw CheckFailed("a loan of the wrong size");
    make_message(message, i);
    return channel.try_send_loaned(message);
  });
  ASSERT_TRUE(fill.error.empty()) << "try_send_loaned threw while the channel filled up (after "
                                  << fill.accepted << " messages): " << fill.error;
  const std::uint64_t accepted = fill.accepted;
  const bool full = fill.full;
  ASSERT_TRUE(full) << "try_send_loaned never kept refusing although the peer did not read ("
                    << accepted << " messages of " << size << " bytes accepted)";

  // Room comes as the peer drains: the refused message, lent and written
  // again, goes.
  gate.open(accepted);
  const auto until = Clock::now() + 20s;
  for (;;) {
    const std::span<std::byte> message = channel.loan(out, size);
    make_message(message, accepted);
    if (channel.try_send_loaned(message)) break;
    ASSERT_LT(Clock::now(), until) << "the refused loaned message never went after the drain";
    (void)channel.wait_sendable(10ms);
  }
  expect_bye_then_close(c, in);
}

// Guards that try_receive only ever returns whole messages: a mix of sizes
// sent back-to-back (blocking) by the peer comes out one whole message per
// call, each with exactly its size and content.
TEST_P(AsyncConformance, TryReceiveNeverReturnsAPartialMessage) {
  std::array<std::size_t, kMixedSizes.size()> sizes{};
  std::transform(kMixedSizes.begin(), kMixedSizes.end(), sizes.begin(),
                 [&](std::size_t s) { return std::min(s, caps_.max_message); });
  const std::size_t largest = *std::max_element(sizes.begin(), sizes.end());
  const bool lossy = caps_.lossy;
  const std::uint64_t window = lossy ? kMixedLossyWindow : 0;
  auto size_of = [sizes](std::uint64_t seq) { return sizes[seq % sizes.size()]; };
  Connection c = start(largest, [largest, window, size_of](Channel& channel) {
    std::vector<std::byte> buf(largest);
    for (std::uint64_t seq = 0; seq < kMixedCount; ++seq) {
      const auto message = std::span(buf).first(size_of(seq));
      make_message(message, seq);
      channel.send(message);
      if (window != 0 && (seq + 1) % window == 0 && seq + 1 < kMixedCount) {
        const std::size_t n = channel.receive(buf);
        if (!is_control(std::span(buf).first(n), kAckMarker)) {
          throw CheckFailed("peer: expected an acknowledgement");
        }
      }
    }
    const std::size_t n = channel.receive(buf);
    if (!is_control(std::span(buf).first(n), kByeMarker)) {
      throw CheckFailed("peer: expected the final bye");
    }
  });
  Channel& channel = *c.channel;
  // Exactly the largest size: a merged or oversized message cannot fit.
  std::vector<std::byte> buf(largest);
  std::uint64_t waits = 0;
  for (std::uint64_t seq = 0; seq < kMixedCount; ++seq) {
    std::optional<std::size_t> n;
    for (;;) {
      n = channel.try_receive(buf);
      if (n) break;
      ++waits;
      ASSERT_TRUE(wait_ready(channel, true, false, kStall))
          << "missed wake-up: waiting for message " << seq << " (" << size_of(seq)
          << " bytes) timed out after " << ms_text(kStall);
    }
    const std::string problem = check_message(std::span(buf).first(*n), size_of(seq), seq);
    ASSERT_EQ(problem, "") << "try_receive returned " << *n << " bytes";
    if (window != 0 && (seq + 1) % window == 0 && seq + 1 < kMixedCount) {
      send_nonblocking(channel, control_message(kAckMarker), 5s, "an acknowledgement");
    }
  }
  send_nonblocking(channel, control_message(kByeMarker), 5s, "the bye");
  char summary[128];
  std::snprintf(summary, sizeof summary, "%llu messages of %zu/%zu/%zu/%zu bytes, %llu waits",
                static_cast<unsigned long long>(kMixedCount), sizes[0], sizes[1], sizes[2],
                sizes[3], static_cast<unsigned long long>(waits));
  note("mixed_sizes", summary);
  EXPECT_TRUE(reap_peer());
  c.channel.reset();
}

// The peer of the idle-channel tests: at the gate it learns how many
// messages to send (back-to-back, blocking), then it waits for the bye.
PeerJob send_after_gate_job(int gate_fd) {
  return [gate_fd](Channel& channel) {
    const std::uint64_t count = Gate::wait(gate_fd);
    std::array<std::byte, kEchoSize> buf{};
    for (std::uint64_t seq = 0; seq < count; ++seq) {
      make_message(buf, seq);
      channel.send(buf);
    }
    for (;;) {
      const std::size_t n = channel.receive(buf);
      if (is_control(std::span(buf).first(n), kByeMarker)) return;
    }
  };
}

// Guards that wait_receivable honours its timeout on an idle channel (false
// after about the timeout, neither early nor late) and wakes promptly when a
// message is sent.
TEST_P(AsyncConformance, WaitReceivableTimesOutOnAnIdleChannel) {
  Gate gate;
  Connection c = start(kEchoSize, send_after_gate_job(gate.peer_fd()), &gate);
  Channel& channel = *c.channel;
  std::array<std::byte, kEchoSize> buf{};
  for (int round = 0; round < kIdleRounds; ++round) {
    const auto t0 = Clock::now();
    const bool ready = channel.wait_receivable(kIdleWait);
    const auto elapsed = Clock::now() - t0;
    EXPECT_FALSE(ready) << "wait_receivable(" << kIdleWait.count()
                        << " ms) returned true on an idle channel after " << ms_text(elapsed);
    EXPECT_GE(elapsed, kIdleWaitAtLeast) << "wait_receivable gave up early";
    EXPECT_LT(elapsed, kIdleWaitAtMost) << "wait_receivable overran its timeout";
  }
  gate.open(1);
  const auto t0 = Clock::now();
  std::optional<std::size_t> n;
  while (!n && Clock::now() - t0 < 5s) {
    ASSERT_TRUE(channel.wait_receivable(5s)) << "the message did not wake wait_receivable";
    n = channel.try_receive(buf);
  }
  const auto latency = Clock::now() - t0;
  ASSERT_TRUE(n.has_value()) << "wait_receivable kept returning true, but no message came";
  EXPECT_EQ(check_message(std::span(buf).first(*n), kEchoSize, 0), "");
  EXPECT_LT(latency, kPrompt) << "the wake-up was not prompt";
  note("wake_latency", ms_text(latency) + " from opening the gate");
  send_nonblocking(channel, control_message(kByeMarker), 5s, "the bye");
  EXPECT_TRUE(reap_peer());
  c.channel.reset();
}

// Guards that receive_for returns nullopt after about its timeout on an idle
// channel, returns a message that arrives during the wait, and returns at
// once a message that was already pending.
TEST_P(AsyncConformance, ReceiveForReturnsNothingOnTimeoutAndTheMessageWhenItComes) {
  Gate gate;
  Connection c = start(kEchoSize, send_after_gate_job(gate.peer_fd()), &gate);
  Channel& channel = *c.channel;
  std::array<std::byte, kEchoSize> buf{};
  for (int round = 0; round < kIdleRounds; ++round) {
    const auto t0 = Clock::now();
    const auto n = channel.receive_for(buf, kIdleWait);
    const auto elapsed = Clock::now() - t0;
    EXPECT_FALSE(n.has_value()) << "receive_for returned " << *n << " bytes on an idle channel";
    EXPECT_GE(elapsed, kIdleWaitAtLeast) << "receive_for gave up early";
    EXPECT_LT(elapsed, kIdleWaitAtMost) << "receive_for overran its timeout";
  }
  gate.open(2);
  const auto t0 = Clock::now();
  auto n = channel.receive_for(buf, 5s);
  const auto latency = Clock::now() - t0;
  ASSERT_TRUE(n.has_value()) << "receive_for(5 s) returned nothing although the peer sent";
  EXPECT_EQ(check_message(std::span(buf).first(*n), kEchoSize, 0), "");
  EXPECT_LT(latency, kPrompt) << "receive_for did not return promptly";
  // The second message was sent right after the first; wait until the
  // channel says it is there (wait_receivable consumes nothing), so it is
  // pending when receive_for starts, however slowly the peer was scheduled.
  ASSERT_TRUE(channel.wait_receivable(5s)) << "the peer's second message never arrived";
  const auto t1 = Clock::now();
  n = channel.receive_for(buf, kIdleWait);
  const auto pending_latency = Clock::now() - t1;
  ASSERT_TRUE(n.has_value()) << "receive_for missed a message that was already pending";
  EXPECT_EQ(check_message(std::span(buf).first(*n), kEchoSize, 1), "");
  EXPECT_LT(pending_latency, kIdleWaitAtLeast) << "receive_for waited with a message pending";
  send_nonblocking(channel, control_message(kByeMarker), 5s, "the bye");
  EXPECT_TRUE(reap_peer());
  c.channel.reset();
}

// Guards the descriptors for poll/epoll: a pollable mechanism's receive_fd()
// is not readable on an idle channel and becomes readable (poll and epoll)
// when a message is pending, and send_fd() is writable on an empty channel;
// a mechanism that is not pollable returns -1 from both.
TEST_P(AsyncConformance, ReceiveFdBecomesReadableWhenAMessageIsPending) {
  Gate gate;
  Connection c = start(kEchoSize, send_after_gate_job(gate.peer_fd()), &gate);
  Channel& channel = *c.channel;
  const int rfd = channel.receive_fd();
  const int sfd = channel.send_fd();
  if (!caps_.pollable) {
    EXPECT_EQ(rfd, -1) << "capabilities().pollable is false, yet receive_fd() is a descriptor";
    EXPECT_EQ(sfd, -1) << "capabilities().pollable is false, yet send_fd() is a descriptor";
    gate.open(0);
  } else {
    ASSERT_GE(rfd, 0) << "capabilities().pollable is true, yet receive_fd() is -1";
    ASSERT_GE(sfd, 0) << "capabilities().pollable is true, yet send_fd() is -1";
    pollfd idle{rfd, POLLIN, 0};
    EXPECT_FALSE(poll_fds(&idle, 1, kIdleWait))
        << "receive_fd() is readable on an idle channel (revents " << idle.revents << ")";
    pollfd room{sfd, POLLOUT, 0};
    EXPECT_TRUE(poll_fds(&room, 1, kPrompt)) << "send_fd() is not writable on an empty channel";

    posix::Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
    ASSERT_TRUE(epoll) << "epoll_create1: " << std::strerror(errno);
    epoll_event interest{};
    interest.events = EPOLLIN;
    interest.data.fd = rfd;
    ASSERT_EQ(::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, rfd, &interest), 0)
        << "receive_fd() cannot be added to an epoll set: " << std::strerror(errno);
    epoll_event event{};
    EXPECT_EQ(::epoll_wait(epoll.get(), &event, 1, 0), 0)
        << "epoll reports receive_fd() ready on an idle channel";

    gate.open(2);  // two messages back-to-back
    std::array<std::byte, kEchoSize> buf{};
    std::uint64_t next = 0;
    const auto t0 = Clock::now();
    int wakeups = 0;
    while (next < 2) {
      int r = -1;
      do {
        r = ::epoll_wait(epoll.get(), &event, 1, static_cast<int>(kStall.count()));
      } while (r < 0 && errno == EINTR && !posix::interrupt_flag().load());
      ASSERT_EQ(r, 1) << "receive_fd() did not become readable (epoll) within " << ms_text(kStall)
                      << " with message " << next << " sent";
      EXPECT_NE(event.events & EPOLLIN, 0u);
      ++wakeups;
      if (next == 0) {
        pollfd p{rfd, POLLIN, 0};
        EXPECT_TRUE(poll_fds(&p, 1, 0ms)) << "epoll says readable, poll does not";
      }
      // Drain before waiting again: a stream may buffer several messages.
      while (const auto n = channel.try_receive(buf)) {
        ASSERT_LT(next, 2u) << "more messages than were sent";
        EXPECT_EQ(check_message(std::span(buf).first(*n), kEchoSize, next), "");
        ++next;
      }
      ASSERT_LT(wakeups, 100) << "receive_fd() keeps signalling, but no message comes";
    }
    note("fd_wake_latency", ms_text(Clock::now() - t0) + " for two messages, " +
                                std::to_string(wakeups) + " epoll wake-up(s)");
  }
  send_nonblocking(channel, control_message(kByeMarker), 5s, "the bye");
  EXPECT_TRUE(reap_peer());
  c.channel.reset();
}

std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& ch : name) {
    if (std::isalnum(static_cast<unsigned char>(ch)) == 0) ch = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Mechanisms, AsyncConformance, ::testing::ValuesIn(mechanism_names()),
                         test_name);

}  // namespace
}  // namespace ipcbench
