// memfd's promises beyond the shared conformance suites: the segment is a
// memfd sealed against shrinking, growing and sealing that reaches the peer
// only through the inherited socket, the peer takes nothing else, and no
// name exists at any time.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/socket.hpp"
#include "mechanisms/registry.hpp"

namespace ipcbench {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

Mechanism& memfd() {
  Mechanism* m = find_mechanism("memfd");
  if (m == nullptr) throw std::runtime_error("memfd is not registered");
  return *m;
}

ListenOptions listen_options() {
  return {.run_dir = fs::temp_directory_path().string(),
          .tag = "memfdtest." + std::to_string(::getpid()),
          .max_message = 64};
}

int socket_of(const std::string& address) {
  EXPECT_TRUE(address.starts_with("sock:")) << address;
  return std::stoi(address.substr(5));
}

// Sends one byte with `fd` attached (none when fd < 0), as the listener does.
void send_with(int sock, int fd) {
  ASSERT_EQ(posix::send_byte_with_fd(sock, fd), 1) << std::strerror(errno);
}

// The descriptor that came with one byte, or none.
posix::Fd receive_from(int sock) {
  posix::ReceivedFd got = posix::receive_byte_with_fd(sock);
  if (got.bytes != 1) return {};
  return std::move(got.fd);
}

// Entries of /dev/shm and /dev/mqueue that carry `mark` in their name.
std::vector<std::string> named_objects_with(const std::string& mark) {
  std::vector<std::string> found;
  for (const char* dir : {"/dev/shm", "/dev/mqueue"}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.find(mark) != std::string::npos) found.push_back(entry.path().string());
    }
  }
  return found;
}

TEST(Memfd, SegmentIsASealedMemfdOnTheInheritedSocket) {
  auto endpoint = memfd().listen(listen_options());
  const int sock = socket_of(endpoint->address());
  EXPECT_EQ(endpoint->inherited_fds(), std::vector<int>{sock});

  // Take the message the peer would have received.
  const posix::Fd fd = receive_from(sock);
  ASSERT_TRUE(fd) << "no descriptor waiting on socket " << sock;
  const int seals = ::fcntl(fd.get(), F_GET_SEALS);
  ASSERT_GE(seals, 0) << "not a memfd: " << std::strerror(errno);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
            F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  // The seals hold: the size cannot change, nor the seals.
  struct stat st {};
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_GT(st.st_size, 0);
  EXPECT_EQ(::ftruncate(fd.get(), st.st_size + 4096), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::ftruncate(fd.get(), 0), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_WRITE), -1);
  EXPECT_EQ(errno, EPERM);
  // Only one message: the listener closed its end after sending.
  char byte = 0;
  EXPECT_EQ(::recv(sock, &byte, 1, MSG_DONTWAIT), 0) << "expected end of file";

  std::array<char, 256> link{};
  const std::string path = "/proc/self/fd/" + std::to_string(fd.get());
  ASSERT_GT(::readlink(path.c_str(), link.data(), link.size() - 1), 0);
  EXPECT_TRUE(std::string(link.data()).starts_with("/memfd:ipcbench")) << link.data();
}

// The peer maps only a memfd carrying the seals, so it can trust its size.
TEST(Memfd, PeerRefusesAnythingButASealedMemfd) {
  struct Offer {
    const char* what;
    int seals;  // -1: a pipe, not a memfd; -2: no descriptor at all
  };
  for (const Offer offer :
       {Offer{"an unsealed memfd", 0}, Offer{"a memfd sealed only against growing", F_SEAL_GROW},
        Offer{"a memfd without shrink seal", F_SEAL_GROW | F_SEAL_SEAL}, Offer{"a pipe", -1},
        Offer{"no descriptor", -2}}) {
    SCOPED_TRACE(offer.what);
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    posix::Fd ours(pair[0]);
    posix::Fd offered;
    posix::Fd other_end;
    if (offer.seals >= 0) {
      offered = posix::Fd(::memfd_create("ipcbench", MFD_CLOEXEC | MFD_ALLOW_SEALING));
      ASSERT_TRUE(offered);
      ASSERT_EQ(::ftruncate(offered.get(), 3 * 4096 + 8192), 0);
      if (offer.seals != 0) {
        ASSERT_EQ(::fcntl(offered.get(), F_ADD_SEALS, offer.seals), 0);
      }
    } else if (offer.seals == -1) {
      int p[2];
      ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
      offered = posix::Fd(p[0]);
      other_end = posix::Fd(p[1]);
    }
    send_with(ours.get(), offered.get());
    // connect() owns the socket from here on.
    EXPECT_THROW(memfd().connect("sock:" + std::to_string(pair[1]),
                                 {.max_message = 64, .timeout = milliseconds(1000)}),
                 ProtocolError);
    EXPECT_EQ(::fcntl(pair[1], F_GETFD), -1) << "connect() left the socket open";
  }
}

TEST(Memfd, PeerGivesUpWithTimeoutWhenNothingArrives) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
  posix::Fd ours(pair[0]);
  EXPECT_THROW(memfd().connect("sock:" + std::to_string(pair[1]),
                               {.max_message = 64, .timeout = milliseconds(50)}),
               Timeout);
}

// The whole life of a connection, across a real fork: nothing named in
// /dev/shm or /dev/mqueue at any point, and a message goes both ways.
TEST(Memfd, NoNameExistsAtAnyTimeAndAMessageRoundTrips) {
  const std::string mark = "." + std::to_string(::getpid()) + ".";
  auto endpoint = memfd().listen(listen_options());
  EXPECT_EQ(named_objects_with(mark), std::vector<std::string>{});
  const std::string address = endpoint->address();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::alarm(10);
    int status = 1;
    try {
      auto channel = memfd().connect(address, {.max_message = 64});
      std::array<std::byte, 64> buffer{};
      const std::size_t n = channel->receive(buffer);
      for (std::size_t i = 0; i < n; ++i) buffer[i] = ~buffer[i];
      channel->send(std::span(buffer.data(), n));
      status = n == 5 && channel->receive(buffer) == 1 ? 0 : 2;  // waits for the runner's word
    } catch (...) {
      status = 3;
    }
    ::_exit(status);
  }
  std::unique_ptr<Channel> channel;
  try {
    channel = endpoint->accept(milliseconds(10'000));
  } catch (const std::exception& e) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    FAIL() << e.what();
  }
  EXPECT_EQ(endpoint->inherited_fds(), std::vector<int>{}) << "the socket outlived accept";
  const std::array<std::byte, 5> hello{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4},
                                       std::byte{5}};
  channel->send(hello);
  std::array<std::byte, 64> reply{};
  ASSERT_EQ(channel->receive(reply), 5u);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(reply[i], ~hello[i]);
  // Both sides hold the mapping now, and still nothing is named.
  EXPECT_EQ(named_objects_with(mark), std::vector<std::string>{});
  EXPECT_EQ(named_objects_with("." + std::to_string(child) + "."), std::vector<std::string>{});
  channel->send(std::span(hello.data(), 1));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "peer status " << status;
}

}  // namespace
}  // namespace ipcbench
