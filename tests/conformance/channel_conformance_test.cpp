// Conformance suite run against every registered mechanism: whatever a
// mechanism does inside, its Channel must move whole messages intact and in
// order, reject what does not fit, report a dead peer, and clean up after
// itself. A new mechanism is covered by registering it; no test code changes.
//
// Each test listens in this process, forks a peer that connects (the runner
// does the same across exec) and drives the exchange from here. The peer
// closes what exec would close, checks what it receives, and reports a
// failure through a pipe and its exit status. Alarms on both sides turn a
// hang into a failure.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
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
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "bench/peer/watchdog.hpp"
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
using std::chrono::seconds;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
// The largest message any test sends, whatever the mechanism allows.
constexpr std::size_t kLargestTested = 64 * kMiB;

constexpr milliseconds kAcceptTimeout{10'000};
constexpr milliseconds kConnectTimeout{10'000};
// A hung blocking call in this process is interrupted after this long (and
// the process ended if the call ignores that; see fork_peer.hpp).
constexpr unsigned kTestDeadlineSeconds = 30;
// A channel must notice a dead peer within this long; the deadline for that
// check is armed a little later.
constexpr unsigned kPeerLostWithinSeconds = 5;
constexpr unsigned kPeerLostDeadlineSeconds = 7;
// How long a peer may take to exit once this side is done with it.
constexpr milliseconds kReapTimeout{10'000};

// Echo counts: enough to catch reuse of stale buffers, few enough for 64 MiB.
constexpr std::size_t kEchoesSmall = 20;
constexpr std::size_t kEchoesLargest = 3;

constexpr std::size_t kOrderCount = 100'000;
constexpr std::size_t kOrderSize = 64;

constexpr std::size_t kBurstCount = 3'000;
constexpr std::array<std::size_t, 14> kBurstSizes = {1,    17, 100, 4095, 4096, 2,    255,
                                                     1023, 3,  7,   8,    9,    4093, 65};
constexpr std::size_t kBurstMax = 4096;

// Lossy mechanisms get an acknowledgement every this many messages so a
// stream never overflows their buffers; lossless ones stream freely.
constexpr std::size_t kLossyOrderWindow = 64;
constexpr std::size_t kLossyBurstWindow = 16;

constexpr int kTeardownAttempts = 3;

// ---------------------------------------------------------------------------
// Message content: every byte is a function of (message index, byte offset).
// Bytes 0..7 hold the index (salted so no byte is constant), the rest come
// from a bijective 64-bit mix of (index, offset / 8).

constexpr std::uint64_t kIndexSalt = 0x9e3779b97f4a7c15ULL;  // no zero byte

// A thrown check failure; the peer reports its text to the parent.
class CheckFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void require(const std::string& problem) {
  if (!problem.empty()) throw CheckFailed(problem);
}

std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

std::uint64_t pattern_word(std::uint64_t index, std::uint64_t word) {
  // index < 2^32 and word < 2^32 here, so distinct inputs give distinct words.
  return mix64(((index << 32) ^ word) ^ 0x6a09e667f3bcc909ULL);
}

std::byte pattern_byte(std::uint64_t index, std::size_t offset) {
  return static_cast<std::byte>(pattern_word(index, offset / 8) >> (8 * (offset % 8)));
}

// Writes the pattern bytes at offsets first .. first + out.size() - 1.
void fill_pattern(std::span<std::byte> out, std::uint64_t index, std::size_t first) {
  std::size_t i = 0;
  for (; i < out.size() && (first + i) % 8 != 0; ++i) out[i] = pattern_byte(index, first + i);
  for (; i + 8 <= out.size(); i += 8) {
    const std::uint64_t w = pattern_word(index, (first + i) / 8);
    for (std::size_t k = 0; k < 8; ++k) out[i + k] = static_cast<std::byte>(w >> (8 * k));
  }
  for (; i < out.size(); ++i) out[i] = pattern_byte(index, first + i);
}

std::byte header_byte(std::uint64_t index, std::size_t offset) {
  return static_cast<std::byte>((index ^ kIndexSalt) >> (8 * offset));
}

// Fills `out` with message `index`.
void make_message(std::span<std::byte> out, std::uint64_t index) {
  const std::size_t header = std::min<std::size_t>(out.size(), 8);
  for (std::size_t k = 0; k < header; ++k) out[k] = header_byte(index, k);
  if (out.size() > 8) fill_pattern(out.subspan(8), index, 8);
}

std::string hex(std::byte b) {
  char text[8];
  std::snprintf(text, sizeof text, "0x%02x", std::to_integer<unsigned>(b));
  return text;
}

std::string byte_mismatch(std::uint64_t index, std::size_t offset, std::byte got,
                          std::byte expected) {
  return "message " + std::to_string(index) + ": byte at offset " + std::to_string(offset) +
         " is " + hex(got) + ", expected " + hex(expected);
}

// Empty if `got` is message `index` of `expected_size` bytes, else what differs.
std::string check_message(std::span<const std::byte> got, std::size_t expected_size,
                          std::uint64_t index) {
  if (got.size() != expected_size) {
    return "message " + std::to_string(index) + " arrived with " + std::to_string(got.size()) +
           " bytes, expected " + std::to_string(expected_size);
  }
  if (got.size() >= 8) {
    std::uint64_t carried = 0;
    for (std::size_t k = 0; k < 8; ++k) {
      carried |= std::to_integer<std::uint64_t>(got[k]) << (8 * k);
    }
    carried ^= kIndexSalt;
    if (carried != index) {
      return "expected message " + std::to_string(index) + ", got one carrying index " +
             std::to_string(carried) + " (lost, duplicated, reordered or corrupted)";
    }
  }
  for (std::size_t k = 0; k < std::min<std::size_t>(got.size(), 8); ++k) {
    if (got[k] != header_byte(index, k)) {
      return byte_mismatch(index, k, got[k], header_byte(index, k));
    }
  }
  std::array<std::byte, 4096> expected;
  for (std::size_t off = 8; off < got.size(); off += expected.size()) {
    const std::size_t n = std::min(expected.size(), got.size() - off);
    fill_pattern(std::span(expected).first(n), index, off);
    if (std::memcmp(got.data() + off, expected.data(), n) != 0) {
      std::size_t k = 0;
      while (got[off + k] == expected[k]) ++k;
      return byte_mismatch(index, off + k, got[off + k], expected[k]);
    }
  }
  return {};
}

// ---------------------------------------------------------------------------
// Exchanges run by either side.

using PeerJob = std::function<void(Channel&)>;

// Child: receives each message of `sizes`, checks it, sends it back.
PeerJob echo_job(std::vector<std::size_t> sizes) {
  return [sizes](Channel& channel) {
    std::vector<std::byte> buf(*std::max_element(sizes.begin(), sizes.end()));
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const std::size_t n = channel.receive(buf);
      require(check_message(std::span(buf).first(n), sizes[i], i));
      channel.send(std::span(buf).first(n));
    }
  };
}

// Whether `inner` lies within `outer`.
bool within(std::span<const std::byte> inner, std::span<const std::byte> outer) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

// Child: echo_job through the loan API: reads each message where it
// arrived, writes its echo where the channel lends it.
PeerJob loaned_echo_job(std::vector<std::size_t> sizes) {
  return [sizes](Channel& channel) {
    std::vector<std::byte> buf(*std::max_element(sizes.begin(), sizes.end()));
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const std::span<const std::byte> got = channel.receive_view(buf);
      require(check_message(got, sizes[i], i));
      const std::span<std::byte> echo = channel.loan(buf, got.size());
      if (echo.data() != got.data()) std::copy(got.begin(), got.end(), echo.begin());
      channel.send_loaned(echo);
      channel.release_view();
    }
  };
}

// Parent: sends each message of `sizes` and checks the echo.
void exchange_echoes(Channel& channel, const std::vector<std::size_t>& sizes) {
  const std::size_t largest = *std::max_element(sizes.begin(), sizes.end());
  std::vector<std::byte> out(largest);
  std::vector<std::byte> in(largest);
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const auto message = std::span(out).first(sizes[i]);
    make_message(message, i);
    channel.send(message);
    const std::size_t n = channel.receive(std::span(in).first(sizes[i]));
    require(check_message(std::span(in).first(n), sizes[i], i));
  }
}

// A stream of `count` messages, message i of size_of(i) bytes. With a
// window, the receiver acknowledges every `window` messages and the sender
// waits for it (for lossy mechanisms); the receiver ends with the count.
struct Sequence {
  std::size_t count = 0;
  std::function<std::size_t(std::size_t)> size_of;
  std::size_t max_size = 0;
  std::size_t window = 0;  // 0: no acknowledgements

  bool acknowledged_after(std::size_t received) const {
    return window != 0 && received % window == 0 && received < count;
  }
};

void send_count(Channel& channel, std::uint64_t count) {
  std::array<std::byte, 8> message;
  for (std::size_t k = 0; k < 8; ++k) message[k] = static_cast<std::byte>(count >> (8 * k));
  channel.send(message);
}

void expect_count(Channel& channel, std::uint64_t expected, const char* what) {
  std::array<std::byte, 8> message{};
  const std::size_t n = channel.receive(message);
  std::uint64_t count = 0;
  for (std::size_t k = 0; k < 8; ++k) {
    count |= std::to_integer<std::uint64_t>(message[k]) << (8 * k);
  }
  if (n != 8 || count != expected) {
    throw CheckFailed(std::string(what) + ": expected " + std::to_string(expected) + ", got " +
                      std::to_string(count) + " in a " + std::to_string(n) + "-byte message");
  }
}

// With `loaned`, each message is written where the channel lends it
// (Channel::loan, send_loaned).
void send_sequence(Channel& channel, const Sequence& seq, bool loaned = false) {
  std::vector<std::byte> buf(seq.max_size);
  for (std::size_t i = 0; i < seq.count; ++i) {
    const auto message =
        loaned ? channel.loan(buf, seq.size_of(i)) : std::span(buf).first(seq.size_of(i));
    make_message(message, i);
    if (loaned) {
      channel.send_loaned(message);
    } else {
      channel.send(message);
    }
    if (seq.acknowledged_after(i + 1)) expect_count(channel, i + 1, "acknowledgement");
  }
  expect_count(channel, seq.count, "messages counted by the receiver");
}

// With `loaned`, each message is read where it arrived (receive_view).
void receive_sequence(Channel& channel, const Sequence& seq, bool loaned = false) {
  std::vector<std::byte> buf(seq.max_size);
  for (std::size_t i = 0; i < seq.count; ++i) {
    if (loaned) {
      require(check_message(channel.receive_view(buf), seq.size_of(i), i));
      channel.release_view();
    } else {
      const std::size_t n = channel.receive(buf);
      require(check_message(std::span(buf).first(n), seq.size_of(i), i));
    }
    if (seq.acknowledged_after(i + 1)) send_count(channel, i + 1);
  }
  send_count(channel, seq.count);
}

Sequence order_sequence(const Capabilities& caps) {
  return {.count = kOrderCount,
          .size_of = [](std::size_t) { return kOrderSize; },
          .max_size = kOrderSize,
          .window = caps.lossy ? kLossyOrderWindow : 0};
}

Sequence burst_sequence(const Capabilities& caps) {
  return {.count = kBurstCount,
          .size_of = [](std::size_t i) { return kBurstSizes[i % kBurstSizes.size()]; },
          .max_size = kBurstMax,
          .window = caps.lossy ? kLossyBurstWindow : 0};
}

// ---------------------------------------------------------------------------
// Process plumbing.

// Descriptor -> what it refers to, for this process.
using FdTable = std::map<int, std::string>;

FdTable open_fds() {
  FdTable fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) posix::throw_errno("cannot list /proc/self/fd");
  const int own = ::dirfd(dir);
  while (const dirent* entry = ::readdir(dir)) {
    if (!std::isdigit(static_cast<unsigned char>(entry->d_name[0]))) continue;
    const int fd = std::atoi(entry->d_name);
    if (fd == own) continue;
    char target[512];
    const std::string link = std::string("/proc/self/fd/") + entry->d_name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target);
    fds[fd] = n >= 0 ? std::string(target, static_cast<std::size_t>(n)) : "?";
  }
  ::closedir(dir);
  return fds;
}

// Empty if both tables hold the same descriptors, else what changed.
std::string fd_changes(const FdTable& before, const FdTable& after) {
  std::string changes;
  for (const auto& [fd, what] : after) {
    if (!before.contains(fd)) changes += "fd " + std::to_string(fd) + " (" + what + ") left open\n";
  }
  for (const auto& [fd, what] : before) {
    if (!after.contains(fd)) changes += "fd " + std::to_string(fd) + " (" + what + ") closed\n";
  }
  return changes;
}

// Names in `dir` (none if it does not exist).
std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  return names;
}

std::string join(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& item : items) text += item + "\n";
  return text;
}

// ---------------------------------------------------------------------------
// System-wide kernel objects, for the teardown test.

struct SystemObject {
  std::string description;
  std::vector<long> pids;  // processes recorded as its creator or last user
};

// Keyed by where it lives and its identity.
using SystemObjects = std::map<std::string, SystemObject>;

std::vector<std::string> split_words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

SystemObjects system_objects() {
  SystemObjects objects;
  for (const std::string dir : {"/dev/shm", "/dev/mqueue"}) {
    for (const std::string& name : dir_entries(dir)) {
      objects[dir + "/" + name] = {dir + "/" + name, {}};
    }
  }
  for (const std::string table : {"/proc/sysvipc/msg", "/proc/sysvipc/shm", "/proc/sysvipc/sem"}) {
    std::ifstream in(table);
    std::string line;
    if (!std::getline(in, line)) continue;
    const std::vector<std::string> columns = split_words(line);
    while (std::getline(in, line)) {
      const std::vector<std::string> fields = split_words(line);
      if (fields.size() < 2) continue;
      SystemObject object{table + ": " + line, {}};
      for (std::size_t i = 0; i < fields.size() && i < columns.size(); ++i) {
        const std::string& c = columns[i];
        if (c == "cpid" || c == "lpid" || c == "lspid" || c == "lrpid") {
          object.pids.push_back(std::atol(fields[i].c_str()));
        }
      }
      objects[table + " key " + fields[0] + " id " + fields[1]] = std::move(object);
    }
  }
  return objects;
}

struct ObjectChanges {
  std::vector<std::string> ours;             // appeared, carry our tag or pids: leaked
  std::vector<std::string> others;           // any other change (maybe another process)
  std::vector<std::string> others_appeared;  // keys of the others that appeared
};

ObjectChanges compare_objects(const SystemObjects& before, const SystemObjects& after,
                              const std::string& tag, const std::vector<long>& pids) {
  ObjectChanges changes;
  for (const auto& [key, object] : after) {
    if (before.contains(key)) continue;
    const bool ours = key.find(tag) != std::string::npos ||
                      std::any_of(object.pids.begin(), object.pids.end(), [&](long pid) {
                        return std::find(pids.begin(), pids.end(), pid) != pids.end();
                      });
    if (ours) {
      changes.ours.push_back("appeared: " + object.description);
    } else {
      changes.others.push_back("appeared: " + object.description);
      changes.others_appeared.push_back(key);
    }
  }
  for (const auto& [key, object] : before) {
    if (!after.contains(key)) changes.others.push_back("disappeared: " + object.description);
  }
  return changes;
}

// ---------------------------------------------------------------------------
// The fixture.

// The listening side's endpoint and channel; the endpoint outlives the
// channel, as in the runner.
struct Connection {
  std::unique_ptr<Endpoint> endpoint;
  std::unique_ptr<Channel> channel;

  void close() {
    channel.reset();
    endpoint.reset();
  }
};

class ChannelConformance : public conformance::MechanismTest {
 protected:
  ChannelConformance()
      : MechanismTest("conformance_test", "/tmp/ipcbench-conf-", kTestDeadlineSeconds) {}

  void TearDown() override {
    if (peer_.running()) {
      // The test body ended early: say how the peer fared, it may explain why.
      const auto reaped = reap_peer(milliseconds(500));
      if (!reaped) ADD_FAILURE() << "(test ended before reaping its peer) " << reaped.message();
    }
    deadline_.disarm();
    if (!run_dir_.empty()) {
      EXPECT_EQ(join(dir_entries(run_dir_)), "") << "names left in the run directory";
      std::error_code ec;
      std::filesystem::remove_all(run_dir_, ec);
    }
  }

  std::unique_ptr<Endpoint> listen(std::size_t max_message) {
    last_tag_ = "t" + std::to_string(++tags_) + "-" + std::to_string(::getpid());
    return mech_->listen({.run_dir = run_dir_, .tag = last_tag_, .max_message = max_message});
  }

  // Forks a peer that connects to `endpoint` and runs `job` on its channel.
  void start_peer(const Endpoint& endpoint, std::size_t max_message, PeerJob job) {
    const std::string address = endpoint.address();
    Mechanism* mech = mech_;
    peer_.spawn(endpoint.inherited_fds(), [mech, address, max_message, job] {
      std::unique_ptr<Channel> channel =
          mech->connect(address, {.max_message = max_message, .timeout = kConnectTimeout});
      job(*channel);
    });
  }

  // Listens, starts a peer running `job`, accepts it.
  Connection connect_peer(std::size_t max_message, PeerJob job) {
    Connection c;
    c.endpoint = listen(max_message);
    start_peer(*c.endpoint, max_message, std::move(job));
    c.channel = c.endpoint->accept(kAcceptTimeout);
    return c;
  }

  // Waits for the peer (killing it after `timeout`); success if it exited 0.
  ::testing::AssertionResult reap_peer(milliseconds timeout = kReapTimeout) {
    return peer_.reap(timeout);
  }

  // Echoes messages of each size in `sizes` through a fresh connection.
  void check_echo(std::size_t size, std::size_t count) {
    if (size > caps_.max_message) {
      GTEST_SKIP() << size << "-byte messages exceed " << GetParam() << "'s max_message of "
                   << caps_.max_message << " bytes";
    }
    const std::vector<std::size_t> sizes(count, size);
    Connection c = connect_peer(size, echo_job(sizes));
    exchange_echoes(*c.channel, sizes);
    c.close();
    EXPECT_TRUE(reap_peer());
  }

  // The parent's receive (or send) must throw PeerLost once the peer is gone.
  // Mechanisms without an end-of-file (shared memory, queues, datagrams)
  // learn it from the harness's real Watchdog, armed on the peer's pidfd just
  // as the runner arms it; the others must notice by themselves, sooner.
  void check_peer_lost(bool orderly, bool by_send) {
    constexpr std::size_t kSize = 64 * kKiB;
    const std::size_t size = std::min(kSize, caps_.max_message);
    Connection c = connect_peer(size, [orderly](Channel&) {
      if (!orderly) ::_exit(0);  // dies holding its channel; else it is destroyed first
    });
    posix::Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, peer_.pid(), 0)));
    ASSERT_TRUE(pidfd) << "pidfd_open: " << std::strerror(errno);
    Watchdog watchdog{std::chrono::seconds(kPeerLostDeadlineSeconds)};
    watchdog.arm(peer_.pid(), pidfd.get());
    std::vector<std::byte> buf(size);
    make_message(buf, 0);
    ::alarm(kPeerLostDeadlineSeconds + 2);  // a hang fails in seconds, not at the test deadline
    const auto start = Clock::now();
    if (by_send) {
      // A socket may take one send to learn the peer is gone; a queue or a
      // ring takes until it is full and the watchdog wakes the blocked send.
      bool lost = false;
      while (!lost && Clock::now() - start < seconds(kPeerLostWithinSeconds)) {
        try {
          c.channel->send(buf);
        } catch (const PeerLost&) {
          lost = true;
        }
      }
      EXPECT_TRUE(lost) << "sends to a peer that has exited kept succeeding";
    } else {
      EXPECT_THROW(c.channel->receive(buf), PeerLost);
    }
    watchdog.disarm();
    EXPECT_LT(Clock::now() - start, seconds(kPeerLostWithinSeconds))
        << "noticing the lost peer took too long";
    EXPECT_TRUE(!posix::interrupt_flag().load() ||
                std::string(posix::interrupt_reason()).find("deadline") == std::string::npos)
        << "the channel blocked until the test's deadline interrupted it";
    posix::clear_interrupt();
    ASSERT_TRUE(reap_peer());
  }

  // A back-to-back burst of mixed sizes each way (`loaned`: through the
  // loan API on both sides), each message whole and in order.
  void check_bursts(bool loaned) {
    const Sequence seq = burst_sequence(caps_);
    if (seq.max_size > caps_.max_message) {
      GTEST_SKIP() << "the burst needs " << seq.max_size << "-byte messages; max_message is "
                   << caps_.max_message;
    }
    Connection c = connect_peer(seq.max_size, [seq, loaned](Channel& ch) {
      receive_sequence(ch, seq, loaned);
      send_sequence(ch, seq, loaned);
    });
    send_sequence(*c.channel, seq, loaned);
    receive_sequence(*c.channel, seq, loaned);
    EXPECT_TRUE(reap_peer());  // it has read our last message (see StreamFromPeer...)
    c.close();
  }

  struct Cycle {
    std::string tag;
    long peer = 0;
  };

  // One connect / echo / destroy cycle, peer reaped.
  Cycle run_echo_cycle() {
    const std::size_t largest = std::min<std::size_t>(64 * kKiB, caps_.max_message);
    const std::vector<std::size_t> sizes = {1, std::min<std::size_t>(4 * kKiB, largest), largest};
    Cycle cycle;
    {
      Connection c = connect_peer(largest, echo_job(sizes));
      cycle = {last_tag_, peer_.pid()};
      exchange_echoes(*c.channel, sizes);
    }
    const auto reaped = reap_peer();
    if (!reaped) throw std::runtime_error(reaped.message());
    return cycle;
  }

  std::string last_tag_;
  int tags_ = 0;
};

// ---------------------------------------------------------------------------
// The tests.

// Guards that the mechanism describes itself consistently with the registry.
TEST_P(ChannelConformance, ReportsConsistentIdentityAndLimits) {
  EXPECT_EQ(mech_->name(), GetParam());
  EXPECT_FALSE(mech_->family().empty());
  EXPECT_GT(caps_.max_message, 0u);
  if (caps_.boundaries == Boundaries::kStream) {
    EXPECT_LE(caps_.max_message, kMaxStreamMessage);
  }
}

// Guards full content integrity of tiny messages, both directions.
TEST_P(ChannelConformance, EchoPreservesContentAt16B) { check_echo(16, kEchoesSmall); }

// Guards full content integrity of cache-line-sized messages, both directions.
TEST_P(ChannelConformance, EchoPreservesContentAt64B) { check_echo(64, kEchoesSmall); }

// Guards full content integrity of page-sized messages, both directions.
TEST_P(ChannelConformance, EchoPreservesContentAt4KiB) { check_echo(4 * kKiB, kEchoesSmall); }

// Guards full content integrity of messages larger than typical kernel buffers.
TEST_P(ChannelConformance, EchoPreservesContentAt64KiB) { check_echo(64 * kKiB, kEchoesSmall); }

// Guards full content integrity at the mechanism's own limit (at most 64 MiB).
TEST_P(ChannelConformance, EchoPreservesContentAtMaxMessage) {
  check_echo(std::min(caps_.max_message, kLargestTested), kEchoesLargest);
}

// Guards the loan API (Channel::loan, send_loaned, receive_view): messages
// of every size written where the channel lends them arrive intact, both
// ways; and its memory is the mechanism's own exactly when it claims no
// copies (a loan API), the caller's buffer otherwise.
TEST_P(ChannelConformance, LoanedEchoPreservesContentInTheMechanismsOwnMemory) {
  const std::size_t largest = std::min<std::size_t>(64 * kKiB, caps_.max_message);
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < kEchoesSmall; ++i) {
    sizes.push_back(std::min<std::size_t>(kBurstSizes[i % kBurstSizes.size()], largest));
  }
  sizes.push_back(largest);
  sizes.push_back(1);
  Connection c = connect_peer(largest, loaned_echo_job(sizes));
  std::vector<std::byte> out(largest);
  std::vector<std::byte> in(largest);
  const bool loan_api = caps_.copies == 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::span<std::byte> message = c.channel->loan(out, sizes[i]);
    ASSERT_EQ(message.size(), sizes[i]) << "loan of " << sizes[i] << " bytes";
    EXPECT_EQ(within(message, out), !loan_api)
        << "copies " << caps_.copies << ", yet message " << i << " was lent "
        << (loan_api ? "in the caller's buffer" : "outside the caller's buffer");
    make_message(message, i);
    c.channel->send_loaned(message);
    const std::span<const std::byte> echo = c.channel->receive_view(in);
    EXPECT_EQ(within(echo, in), !loan_api)
        << "copies " << caps_.copies << ", yet echo " << i << " was viewed "
        << (loan_api ? "in the caller's buffer" : "outside the caller's buffer");
    ASSERT_EQ(check_message(echo, sizes[i], i), "");
    c.channel->release_view();
  }
  c.close();
  EXPECT_TRUE(reap_peer());
}

// Guards that loaned messages of mixed sizes stream both ways, back to
// back, each whole and in order (a loan of another size than the last, a
// receiver that holds no more than one view).
TEST_P(ChannelConformance, LoanedBurstsKeepMessageBoundaries) { check_bursts(/*loaned=*/true); }

// Guards that a long stream to the peer arrives complete and in order.
TEST_P(ChannelConformance, StreamToPeerArrivesInOrder) {
  const Sequence seq = order_sequence(caps_);
  Connection c = connect_peer(kOrderSize, [seq](Channel& ch) { receive_sequence(ch, seq); });
  send_sequence(*c.channel, seq);
  c.close();
  EXPECT_TRUE(reap_peer());
}

// Guards that a long stream from the peer arrives complete and in order.
TEST_P(ChannelConformance, StreamFromPeerArrivesInOrder) {
  const Sequence seq = order_sequence(caps_);
  Connection c = connect_peer(kOrderSize, [seq](Channel& ch) { send_sequence(ch, seq); });
  receive_sequence(*c.channel, seq);
  // Our last message (the count) is the peer's to read: its exit says it has.
  // Closing first may discard it (sysv-mq's IPC_RMID drops what is queued).
  EXPECT_TRUE(reap_peer());
  c.close();
}

// Guards message boundaries: a back-to-back burst of mixed sizes comes out
// one message per receive, each with exactly its size, both directions.
TEST_P(ChannelConformance, BurstOfMixedSizesKeepsMessageBoundaries) {
  check_bursts(/*loaned=*/false);
}

// Guards that a message one byte too large for the receive buffer throws
// ProtocolError and writes nothing past the buffer.
TEST_P(ChannelConformance, ReceiveIntoTooSmallBufferThrowsProtocolError) {
  const std::size_t size = std::min<std::size_t>(1000, caps_.max_message);
  ASSERT_GE(size, 2u);
  Connection c = connect_peer(size, [size](Channel& ch) {
    std::vector<std::byte> message(size);
    make_message(message, 0);
    ch.send(message);
    std::array<std::byte, 8> bye{};
    try {
      ch.receive(bye);  // wait for the parent's goodbye (or its departure)
    } catch (const PeerLost&) {
    }
  });
  constexpr std::byte kGuard{0xa5};
  std::vector<std::byte> backing(2 * size + 64, kGuard);
  const auto buffer = std::span(backing).first(size - 1);
  EXPECT_THROW(c.channel->receive(buffer), ProtocolError);
  const auto written = std::find_if(backing.begin() + static_cast<std::ptrdiff_t>(size - 1),
                                    backing.end(), [&](std::byte b) { return b != kGuard; });
  EXPECT_TRUE(written == backing.end())
      << "receive wrote past the " << size - 1 << "-byte buffer, first at offset "
      << (written - backing.begin());
  std::array<std::byte, 8> bye{};
  make_message(bye, 0);
  try {
    c.channel->send(bye);
  } catch (const std::exception&) {
    // The channel may refuse to go on after a protocol error; closing ends the peer.
  }
  c.close();
  EXPECT_TRUE(reap_peer());
}

// Guards that receive() reports a peer that closed its channel and exited.
TEST_P(ChannelConformance, ReceiveThrowsPeerLostAfterPeerClosesAndExits) {
  check_peer_lost(/*orderly=*/true, /*by_send=*/false);
}

// Guards that receive() reports a peer that died without closing anything.
TEST_P(ChannelConformance, ReceiveThrowsPeerLostAfterPeerDies) {
  check_peer_lost(/*orderly=*/false, /*by_send=*/false);
}

// Guards that send() reports a dead peer instead of blocking or killing us.
TEST_P(ChannelConformance, SendThrowsPeerLostAfterPeerDies) {
  check_peer_lost(/*orderly=*/false, /*by_send=*/true);
}

// Guards that a full cycle gives back every descriptor and removes every
// file, POSIX and SysV object it created. System-wide tables may change
// because of other processes: objects with our tag or pids fail at once;
// other changes are retried and must vanish once a cycle ran quietly.
TEST_P(ChannelConformance, TeardownLeavesNothingBehind) {
  const FdTable fds_before = open_fds();
  std::vector<std::string> unexplained;
  std::vector<std::string> appeared_in_noisy_cycles;
  bool quiet = false;
  for (int attempt = 1; attempt <= kTeardownAttempts && !quiet; ++attempt) {
    const SystemObjects before = system_objects();
    const Cycle cycle = run_echo_cycle();
    const SystemObjects after = system_objects();
    ASSERT_EQ(join(dir_entries(run_dir_)), "") << "names left in the run directory";
    ASSERT_EQ(fd_changes(fds_before, open_fds()), "") << "descriptors changed by the cycle";
    const ObjectChanges changes =
        compare_objects(before, after, cycle.tag, {::getpid(), cycle.peer});
    ASSERT_TRUE(changes.ours.empty()) << "objects of the cycle (tag " << cycle.tag << ", pids "
                                      << ::getpid() << " and " << cycle.peer << ") outlived it:\n"
                                      << join(changes.ours);
    quiet = changes.others.empty();
    for (const auto& change : changes.others) {
      unexplained.push_back("cycle " + std::to_string(attempt) + ": " + change);
    }
    appeared_in_noisy_cycles.insert(appeared_in_noisy_cycles.end(), changes.others_appeared.begin(),
                                    changes.others_appeared.end());
  }
  ASSERT_TRUE(quiet) << "each of " << kTeardownAttempts
                     << " cycles changed system-wide IPC objects (a leak whose name lacks the "
                        "tag, or another process busy with IPC meanwhile):\n"
                     << join(unexplained);
  // A leaked object whose name lacks the tag shows up once only (later
  // cycles may reuse it), so whatever appeared in a noisy cycle must go.
  std::vector<std::string> remaining = appeared_in_noisy_cycles;
  const auto deadline = Clock::now() + seconds(2);
  while (!remaining.empty() && Clock::now() < deadline) {
    const SystemObjects now = system_objects();
    std::erase_if(remaining, [&](const std::string& key) { return !now.contains(key); });
    if (!remaining.empty()) std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_TRUE(remaining.empty()) << "objects that appeared during an earlier cycle remain:\n"
                                 << join(remaining);
}

// Guards that connect() rejects malformed addresses with invalid_argument or
// system_error instead of crashing or hanging (run in a child to survive a crash).
TEST_P(ChannelConformance, ConnectToMalformedAddressThrows) {
  const std::vector<std::string> addresses = {
      "", "definitely-not-an-address", std::string(5000, 'x'), std::string("bad\0address", 11)};
  for (const std::string& address : addresses) {
    std::string shown = address.substr(0, 40);
    std::replace(shown.begin(), shown.end(), '\0', '?');
    SCOPED_TRACE("address '" + shown + "' (" + std::to_string(address.size()) + " bytes)");
    Mechanism* mech = mech_;
    peer_.spawn({}, [mech, address] {
      try {
        mech->connect(address, {.max_message = 64, .timeout = milliseconds(1000)});
      } catch (const std::invalid_argument&) {
        return;
      } catch (const std::system_error&) {
        return;
      } catch (const Timeout& e) {
        throw CheckFailed(std::string("threw Timeout, not invalid_argument or system_error: ") +
                          e.what());
      } catch (const std::exception& e) {
        throw CheckFailed(std::string("threw an unexpected exception type: ") + e.what());
      }
      throw CheckFailed("connect() accepted the address and returned a channel");
    });
    EXPECT_TRUE(reap_peer());
  }
}

// Guards that accept() gives up with Timeout when nobody connects.
TEST_P(ChannelConformance, AcceptWithoutPeerThrowsTimeout) {
  auto endpoint = listen(64);
  if (!endpoint->inherited_fds().empty()) {
    GTEST_SKIP() << "the peer inherits descriptors, so accept() returns at once and cannot "
                    "know whether a peer exists";
  }
  const auto start = Clock::now();
  EXPECT_THROW(endpoint->accept(milliseconds(200)), Timeout);
  const auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, milliseconds(180)) << "accept gave up before its timeout";
  EXPECT_LT(elapsed, milliseconds(1200)) << "accept overran its 200 ms timeout";
}

std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Mechanisms, ChannelConformance, ::testing::ValuesIn(mechanism_names()),
                         test_name);

}  // namespace
}  // namespace ipcbench
