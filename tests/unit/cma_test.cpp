// cma's promises beyond the shared conformance suites: a kernel or a policy
// that refuses cross-memory attach makes its cases skipped with a reason a
// user can act on, never failed; the payload a receiver gets is exactly the
// sender's, from 1 byte to the limit, and a message that does not fit is
// refused without a byte written past the buffer; a notification naming
// memory the sender does not have is a protocol error, not a crash.
//
// The peers are forked without exec (they inherit the socket's other end,
// as the runner's peer does across exec) and report through their exit
// status; each runs under its own alarm.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "../support/files.hpp"
#include "../support/ipcbench.hpp"
#include "../support/run.hpp"
#include "../support/seccomp.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/registry.hpp"

namespace ipcbench {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using namespace std::chrono_literals;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
constexpr unsigned kPeerAlarmSeconds = 30;

// The suites are parameterised by the mechanism's name, "cma" only, so
// their names end in "/cma" as the shared suites' do (ctest -R cma).
Mechanism& cma() {
  Mechanism* m = find_mechanism("cma");
  if (m == nullptr) throw std::runtime_error("cma is not registered");
  return *m;
}

std::string param_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

// The control record on the socket (cma.cpp's Control), as a test peer
// that speaks the protocol by hand writes it.
struct RawRecord {
  std::uint32_t kind;
  std::uint32_t status;
  std::uint64_t seq;
  std::uint64_t address;
  std::uint64_t length;
};
static_assert(sizeof(RawRecord) == 32);
constexpr std::uint32_t kHello = 0x4f4c4548;
constexpr std::uint32_t kNotify = 0x5946544e;
constexpr std::uint32_t kAck = 0x4b434b41;
constexpr std::uint32_t kUnreadable = 2;

// The byte at `offset` of message `id`: distinct for each message and each
// position (a stale or shifted buffer cannot match).
std::byte pattern(std::uint32_t id, std::size_t offset) {
  std::uint64_t x = (static_cast<std::uint64_t>(id) << 40) ^ (offset * 0x9e3779b97f4a7c15ULL);
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 32;
  return static_cast<std::byte>(x);
}

void fill(std::span<std::byte> out, std::uint32_t id) {
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = pattern(id, i);
}

// Offset of the first byte that is not message `id`'s, or -1.
long first_difference(std::span<const std::byte> got, std::uint32_t id) {
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i] != pattern(id, i)) return static_cast<long>(i);
  }
  return -1;
}

int socket_of(const std::string& address) { return std::stoi(address.substr(5)); }

// A forked peer: runs `body` with its alarm armed, exits 0 when it returns,
// 1 (after printing why) when it throws.
class Peer {
 public:
  explicit Peer(const std::function<void()>& body) {
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid_ > 0) return;
    ::alarm(kPeerAlarmSeconds);
    int code = 0;
    try {
      body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cma_test peer: %s\n", e.what());
      code = 1;
    }
    ::_exit(code);
  }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;
  ~Peer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  // Its wait status, once it ended.
  int wait() {
    int status = -1;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
};

::testing::AssertionResult exited_cleanly(int status) {
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "peer ended with wait status " << status;
}

class CmaTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);
    if (const std::string reason = cma().unavailable_reason(); !reason.empty()) {
      GTEST_SKIP() << "cma is unavailable here: " << reason;
    }
  }

  std::unique_ptr<Endpoint> listen(std::size_t max_message) {
    return cma().listen({.run_dir = fs::temp_directory_path().string(),
                         .tag = "cmatest." + std::to_string(::getpid()),
                         .max_message = max_message});
  }
};

// ---------------------------------------------------------------------------
// A policy that refuses process_vm_readv/writev.

void deny_cross_memory_attach() {
  if (!testproc::deny_syscalls({SYS_process_vm_readv, SYS_process_vm_writev}, EPERM)) {
    const char msg[] = "cma_test: cannot install the seccomp filter\n";
    (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(126);
  }
}

class CmaRefused : public ::testing::TestWithParam<std::string> {};

// Guards that a refusal is a skip with a reason, never a failure: under a
// seccomp policy that refuses cross-memory attach the run succeeds, cma's
// case is skipped naming process_vm_readv and EPERM, pipe's is measured.
TEST_P(CmaRefused, RunSkipsCmaWithTheReasonAndMeasuresTheOthers) {
  std::string dir = "/tmp/cma_test.XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr) << std::strerror(errno);
  const std::string out = dir + "/result.json";
  const testproc::RunResult r = testproc::run_command(
      {testproc::kBinary, "run", "--mechanisms", "cma,pipe", "--modes", "sync", "--patterns",
       "latency", "--sizes", "64", "--min-time", "0.05", "--out", out},
      {.limit = 120s, .before_exec = deny_cross_memory_attach});
  const auto doc = testproc::read_json(out);
  std::error_code ec;
  fs::remove_all(dir, ec);
  ASSERT_EQ(r.status, 0) << r;
  ASSERT_TRUE(doc.has_value()) << r;
  nlohmann::json cma_row, pipe_row;
  for (const auto& b : doc->value("benchmarks", nlohmann::json::array())) {
    if (b.value("name", "") == "cma/sync/latency/64/manual_time") cma_row = b;
    if (b.value("name", "") == "pipe/sync/latency/64/manual_time") pipe_row = b;
  }
  ASSERT_FALSE(cma_row.is_null()) << doc->dump(2);
  EXPECT_TRUE(cma_row.value("skipped", false)) << cma_row.dump(2);
  const std::string message = cma_row.value("skip_message", "");
  EXPECT_NE(message.find("process_vm_readv"), std::string::npos) << message;
  EXPECT_NE(message.find("EPERM"), std::string::npos) << message;
  ASSERT_FALSE(pipe_row.is_null()) << doc->dump(2);
  EXPECT_FALSE(pipe_row.value("error_occurred", false)) << pipe_row.dump(2);
  EXPECT_FALSE(pipe_row.value("skipped", false)) << pipe_row.dump(2);
  EXPECT_GT(pipe_row.value("messages", 0.0), 0.0) << pipe_row.dump(2);
}

// Guards that `list --json` says the same: cma unavailable, with the reason.
TEST_P(CmaRefused, ListSaysUnavailableWithTheReason) {
  const testproc::RunResult r =
      testproc::run_command({testproc::kBinary, "list", "--json"},
                            {.limit = 60s, .before_exec = deny_cross_memory_attach});
  ASSERT_EQ(r.status, 0) << r;
  const nlohmann::json list = nlohmann::json::parse(r.out);
  bool found = false;
  for (const auto& m : list) {
    if (m.value("name", "") == "pipe") {
      EXPECT_TRUE(m.value("available", false)) << m.dump(2);
    }
    if (m.value("name", "") != "cma") continue;
    found = true;
    EXPECT_FALSE(m.value("available", true)) << m.dump(2);
    const std::string reason = m.value("unavailable_reason", "");
    EXPECT_NE(reason.find("process_vm_readv"), std::string::npos) << m.dump(2);
    EXPECT_NE(reason.find("EPERM"), std::string::npos) << m.dump(2);
  }
  EXPECT_TRUE(found) << r.out;
}

// ---------------------------------------------------------------------------
// Through the Mechanism API.

// Guards the payload: messages of 1 B, 4 KiB, 1 MiB and the limit, each with
// its own pattern, arrive exactly as sent in both directions (the receiver
// pulls them straight from the sender's buffer).
TEST_P(CmaTest, ReceiverGetsExactlyTheSendersBytesUpToTheLimit) {
  const std::size_t limit = cma().capabilities().max_message;
  const std::vector<std::size_t> sizes = {1, 4 * kKiB, 1 * kMiB, limit};
  auto endpoint = listen(limit);
  const std::string address = endpoint->address();
  Peer peer([&] {
    auto channel = cma().connect(address, {.max_message = limit, .timeout = 10s});
    std::vector<std::byte> buf(limit);
    for (std::size_t i = 0; i < sizes.size(); ++i) {  // ours, checked
      const std::size_t n = channel->receive(buf);
      if (n != sizes[i]) throw std::runtime_error("a message of " + std::to_string(n) + " bytes");
      if (const long at = first_difference(std::span(buf).first(n), static_cast<std::uint32_t>(i));
          at >= 0) {
        throw std::runtime_error("message " + std::to_string(i) + " differs at byte " +
                                 std::to_string(at));
      }
    }
    for (std::size_t i = 0; i < sizes.size(); ++i) {  // the peer's own
      fill(std::span(buf).first(sizes[i]), static_cast<std::uint32_t>(100 + i));
      channel->send(std::span(buf).first(sizes[i]));
    }
  });
  auto channel = endpoint->accept(10s);
  std::vector<std::byte> buf(limit);
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    fill(std::span(buf).first(sizes[i]), static_cast<std::uint32_t>(i));
    channel->send(std::span(buf).first(sizes[i]));
  }
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    std::fill(buf.begin(), buf.end(), std::byte{0});
    const std::size_t n = channel->receive(buf);
    ASSERT_EQ(n, sizes[i]);
    EXPECT_EQ(first_difference(std::span(buf).first(n), static_cast<std::uint32_t>(100 + i)), -1)
        << "message of " << n << " bytes";
  }
  EXPECT_TRUE(exited_cleanly(peer.wait()));
}

// Guards that a message larger than the receive buffer throws ProtocolError
// and writes nothing past the buffer, and that the sender is told (its send
// returns), so both sides go on.
TEST_P(CmaTest, MessageLargerThanTheBufferIsRefusedWithoutWritingPastIt) {
  constexpr std::size_t kSize = 64 * kKiB;
  auto endpoint = listen(kSize);
  const std::string address = endpoint->address();
  Peer peer([&] {
    auto channel = cma().connect(address, {.max_message = kSize, .timeout = 10s});
    std::vector<std::byte> message(kSize);
    fill(message, 7);
    channel->send(message);  // refused by the receiver, but answered
    fill(message, 8);
    channel->send(std::span(message).first(100));  // and the next one fits
  });
  auto channel = endpoint->accept(10s);
  constexpr std::byte kGuard{0xa5};
  std::vector<std::byte> backing(2 * kSize, kGuard);
  const auto buffer = std::span(backing).first(kSize - 1);
  EXPECT_THROW(channel->receive(buffer), ProtocolError);
  const auto written = std::find_if(backing.begin() + static_cast<std::ptrdiff_t>(kSize - 1),
                                    backing.end(), [&](std::byte b) { return b != kGuard; });
  EXPECT_TRUE(written == backing.end())
      << "receive wrote past the buffer, first at offset " << (written - backing.begin());
  const std::size_t n = channel->receive(buffer);
  ASSERT_EQ(n, 100u);
  EXPECT_EQ(first_difference(buffer.first(n), 8), -1);
  EXPECT_TRUE(exited_cleanly(peer.wait()));
}

// A test peer that speaks the protocol by hand on the inherited socket: a
// hello, then `note`; then it waits for the acknowledgement and checks it
// says "unreadable".
void send_raw_notification(int sock, const RawRecord& note) {
  const RawRecord hello{kHello, 0, static_cast<std::uint64_t>(::getpid()), 0, 0};
  if (::send(sock, &hello, sizeof hello, MSG_NOSIGNAL) != sizeof hello) {
    throw std::runtime_error(std::string("hello: ") + std::strerror(errno));
  }
  if (::send(sock, &note, sizeof note, MSG_NOSIGNAL) != sizeof note) {
    throw std::runtime_error(std::string("notification: ") + std::strerror(errno));
  }
  RawRecord ack{};
  const ssize_t n = ::recv(sock, &ack, sizeof ack, 0);
  if (n != sizeof ack || ack.kind != kAck || ack.seq != note.seq || ack.status != kUnreadable) {
    throw std::runtime_error("no acknowledgement saying \"unreadable\" came (" + std::to_string(n) +
                             " bytes, kind " + std::to_string(ack.kind) + ", status " +
                             std::to_string(ack.status) + ")");
  }
}

// Maps two pages and unmaps the second: the first's address.
std::byte* page_before_a_hole() {
  const long page = ::sysconf(_SC_PAGESIZE);
  void* p = ::mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::runtime_error(std::string("mmap: ") + std::strerror(errno));
  auto* bytes = static_cast<std::byte*>(p);
  if (::munmap(bytes + page, page) != 0) {
    throw std::runtime_error(std::string("munmap: ") + std::strerror(errno));
  }
  std::memset(bytes, 0x5a, page);
  return bytes;
}

// Guards that a notification naming memory the sender does not have mapped
// is a ProtocolError on the receiver, not a crash, and that the sender is
// told its message was unreadable.
TEST_P(CmaTest, NotificationOfUnmappedMemoryIsAProtocolError) {
  auto endpoint = listen(4096);
  const int sock = socket_of(endpoint->address());
  Peer peer([&] {
    const long page = ::sysconf(_SC_PAGESIZE);
    std::byte* hole = page_before_a_hole() + page;
    send_raw_notification(sock, {kNotify, 0, 0, reinterpret_cast<std::uint64_t>(hole), 64});
  });
  auto channel = endpoint->accept(10s);
  std::array<std::byte, 4096> buf{};
  try {
    (void)channel->receive(buf);
    ADD_FAILURE() << "receive returned a message from unmapped memory";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("not mapped"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(exited_cleanly(peer.wait()));
}

// Guards the same for a message whose end runs into unmapped memory: the
// kernel reads part of it (a short transfer), which is no message either.
TEST_P(CmaTest, NotificationRunningIntoUnmappedMemoryIsAProtocolError) {
  auto endpoint = listen(4096);
  const int sock = socket_of(endpoint->address());
  Peer peer([&] {
    const long page = ::sysconf(_SC_PAGESIZE);
    std::byte* last = page_before_a_hole() + page - 32;  // 32 mapped bytes, then the hole
    send_raw_notification(sock, {kNotify, 0, 0, reinterpret_cast<std::uint64_t>(last), 64});
  });
  auto channel = endpoint->accept(10s);
  std::array<std::byte, 4096> buf{};
  EXPECT_THROW((void)channel->receive(buf), ProtocolError);
  EXPECT_TRUE(exited_cleanly(peer.wait()));
}

// Guards accept: Timeout while the peer holds its end but says nothing,
// PeerLost when it closes its end before its hello.
TEST_P(CmaTest, AcceptWaitsForTheHello) {
  {
    auto endpoint = listen(64);
    const int sock = socket_of(endpoint->address());
    int gate[2];
    ASSERT_EQ(::pipe2(gate, O_CLOEXEC), 0);
    Peer peer([&] {
      ::close(gate[1]);  // else the test's close would not end our read
      char c = 0;
      (void)!::read(gate[0], &c, 1);  // holds `sock` until the test is done
      ::close(sock);
    });
    ::close(gate[0]);
    EXPECT_THROW(endpoint->accept(200ms), Timeout);
    ::close(gate[1]);
    EXPECT_TRUE(exited_cleanly(peer.wait()));
  }
  {
    auto endpoint = listen(64);
    const int sock = socket_of(endpoint->address());
    Peer peer([&] { ::close(sock); });
    EXPECT_TRUE(exited_cleanly(peer.wait()));
    EXPECT_THROW(endpoint->accept(10s), PeerLost);
  }
}

INSTANTIATE_TEST_SUITE_P(Mechanisms, CmaRefused, ::testing::Values("cma"), param_name);
INSTANTIATE_TEST_SUITE_P(Mechanisms, CmaTest, ::testing::Values("cma"), param_name);

}  // namespace
}  // namespace ipcbench
