// memfd: the rings of shm-futex in a memfd instead of a named POSIX shm
// object. No name exists at any time, so a crash can leave nothing behind:
// the memory lives while a descriptor or a mapping does.
//
// The listener creates the memfd, sizes and backs it, and seals it against
// shrinking, growing and further sealing (a write seal is impossible while
// shared writable mappings exist), so the peer can trust the size it maps.
// It hands the descriptor over a socketpair with SCM_RIGHTS: the message
// waits in the socket until the peer, which inherits the other end across
// exec ("sock:N" in the address), receives it. The peer accepts only a
// memfd carrying those seals. The waits are shm-futex's (spin briefly, then
// a futex in the shared mapping).
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <charconv>
#include <system_error>

#include "mechanisms/channels/shm_channel.hpp"
#include "mechanisms/posix/socket.hpp"

namespace ipcbench::mech {
namespace {

constexpr int kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

// The listener's segment policy (shm_channel.hpp): a sealed memfd, already
// on its way to the peer once created.
class MemfdSegment {
 public:
  posix::Fd create(std::size_t size) {
    posix::Fd fd(::memfd_create("ipcbench", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd) posix::throw_errno("cannot create memfd");
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
      posix::throw_errno("cannot size memfd to " + std::to_string(size) + " bytes");
    }
    // Back every page now, as for a named segment: memory that runs out
    // later would kill the first writer with SIGBUS mid-case.
    int err = EINTR;
    while (err == EINTR) err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(size));
    if (err != 0) {
      throw std::system_error(
          err, std::generic_category(),
          "cannot reserve " + std::to_string(size) + " bytes of memory for memfd");
    }
    if (::fcntl(fd.get(), F_ADD_SEALS, kSeals) != 0) posix::throw_errno("cannot seal memfd");

    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
      posix::throw_errno("cannot create the socketpair that hands the memfd to the peer");
    }
    const posix::Fd ours(pair[0]);
    peer_end_ = posix::Fd(pair[1]);
    send_descriptor(ours.get(), fd.get());
    return fd;  // `ours` closes: the peer reads the queued message, then end of file
  }
  std::string what() const { return "memfd segment"; }
  std::string address() const { return "sock:" + std::to_string(peer_end_.get()); }
  std::vector<int> fds() const {
    if (!peer_end_) return {};
    return {peer_end_.get()};
  }
  void peer_attached() { peer_end_.reset(); }

  // The connector's side: the memfd waiting on the inherited socket.
  static shm::OpenedSegment open(std::string_view address, const ConnectOptions& options) {
    int n = -1;
    const char* end = address.data() + address.size();
    if (!address.starts_with("sock:") || std::from_chars(address.data() + 5, end, n).ptr != end ||
        n < 0) {
      throw std::invalid_argument("malformed memfd address '" + std::string(address) +
                                  "' (expected sock:FD)");
    }
    // Check before taking ownership (closing a descriptor that is not ours
    // would be worse than an error); it must not leak into what we exec.
    if (::fcntl(n, F_SETFD, FD_CLOEXEC) != 0) {
      posix::throw_errno("inherited memfd socket " + std::to_string(n) + " is not open");
    }
    const posix::Fd sock(n);
    const std::string from = " on inherited socket " + std::to_string(n);
    if (!posix::poll_for(sock.get(), POLLIN, options.timeout)) {
      throw Timeout("no memfd arrived" + from + " within " +
                    std::to_string(options.timeout.count()) + " ms");
    }
    posix::Fd fd = receive_descriptor(sock.get(), from);
    const int seals = ::fcntl(fd.get(), F_GET_SEALS);
    if (seals < 0) throw ProtocolError("the descriptor received" + from + " is not a memfd");
    if ((seals & kSeals) != kSeals) {
      throw ProtocolError("the memfd received" + from +
                          " is not sealed against shrinking, growing and sealing");
    }
    return {std::move(fd), "memfd segment (received" + from + ")"};
  }

 private:
  static void send_descriptor(int sock, int fd) {
    if (posix::send_byte_with_fd(sock, fd) != 1) {
      posix::throw_errno("cannot hand the memfd to the peer's socket");
    }
  }

  // One message carrying exactly one descriptor, close-on-exec.
  static posix::Fd receive_descriptor(int sock, const std::string& from) {
    posix::ReceivedFd got = posix::receive_byte_with_fd(sock);
    if (got.bytes < 0) posix::throw_errno("cannot receive the memfd" + from);
    // The kernel closes what did not fit (MSG_CTRUNC); one descriptor only.
    if (got.bytes == 0 || !got.fd || got.truncated) {
      throw ProtocolError("no single descriptor arrived" + from);
    }
    return std::move(got.fd);
  }

  posix::Fd peer_end_;
};

class MemfdMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "memfd"; }
  std::string_view family() const override { return "shm"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kMessage,
            .max_message = shm::kMaxShmMessage,
            .crosses_hosts = false,
            .pollable = false,
            .lossy = false,
            .waiting = Waiting::kSpinThenSleep,
            .readiness = Waiting::kSpinThenSleep,
            .names = Names::kNone};
  }
  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    return std::make_unique<shm::ShmEndpoint<shm::FutexWait, MemfdSegment>>(MemfdSegment{},
                                                                            options);
  }
  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    return shm::connect_shm<shm::FutexWait, MemfdSegment>(address, options);
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_memfd() { return std::make_unique<MemfdMechanism>(); }

}  // namespace ipcbench::mech
