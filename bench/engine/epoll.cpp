// The epoll engine: the channel does its own I/O; its waits are
// epoll_pwait2 (nanosecond timeouts) on two sets made once per trial, for
// data and for either data or room, so no wait changes an interest list
// (no epoll_ctl on the hot path).
#include <sys/epoll.h>

#include <initializer_list>
#include <utility>

#include "bench/engine/engine.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/syscall_tally.hpp"
#include "mechanisms/posix/time.hpp"

namespace ipcbench::engine {
namespace {

class EpollChannel final : public Decorator {
 public:
  explicit EpollChannel(Channel& in) : in_(in) {
    const int r = in.receive_fd();
    const int w = in.send_fd();
    if (r < 0 || w < 0) throw std::invalid_argument("the epoll engine needs a pollable channel");
    data_ = make_set({{r, EPOLLIN}});
    either_ =
        r == w ? make_set({{r, EPOLLIN | EPOLLOUT}}) : make_set({{r, EPOLLIN}, {w, EPOLLOUT}});
  }

  void send(std::span<const std::byte> m) override { in_.send(m); }
  std::size_t receive(std::span<std::byte> b) override { return in_.receive(b); }
  bool try_send(std::span<const std::byte> m) override { return in_.try_send(m); }
  std::optional<std::size_t> try_receive(std::span<std::byte> b) override {
    return in_.try_receive(b);
  }
  std::optional<std::size_t> receive_for(std::span<std::byte> b,
                                         std::chrono::nanoseconds t) override {
    return in_.receive_for(b, t);
  }
  bool send_pending() const noexcept override { return in_.send_pending(); }
  bool release_locks_of_dead_peer() noexcept override { return in_.release_locks_of_dead_peer(); }
  // No descriptors: callers wait through the methods below.
  int receive_fd() const noexcept override { return -1; }
  int send_fd() const noexcept override { return -1; }

  bool wait_receivable(std::chrono::nanoseconds t) override { return wait(data_, t); }
  // Room may come from the channel taking what arrived (cma frees a slot
  // when it reads the acknowledgement): its data wakes this wait too.
  bool wait_sendable(std::chrono::nanoseconds t) override { return wait(either_, t); }
  bool wait_either(std::chrono::nanoseconds t) override { return wait(either_, t); }

  void finish() override {}

 private:
  static posix::Fd make_set(std::initializer_list<std::pair<int, std::uint32_t>> members) {
    posix::Fd set(::epoll_create1(EPOLL_CLOEXEC));
    if (!set) posix::throw_errno("cannot create an epoll set");
    for (const auto& [fd, events] : members) {
      epoll_event ev{};
      ev.events = events;
      ev.data.fd = fd;
      if (::epoll_ctl(set.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
        posix::throw_errno("cannot add descriptor " + std::to_string(fd) + " to an epoll set");
      }
    }
    return set;
  }

  static bool wait(const posix::Fd& set, std::chrono::nanoseconds timeout) {
    const timespec ts = posix::to_timespec(std::max(timeout, std::chrono::nanoseconds::zero()));
    epoll_event ev[2];
    posix::count_syscall();
    const int n = ::epoll_pwait2(set.get(), ev, 2, &ts, nullptr);
    if (n < 0) {
      if (errno != EINTR) posix::throw_errno("epoll_pwait2 failed");
      posix::throw_if_interrupted();
      return false;
    }
    return n > 0;
  }

  Channel& in_;
  posix::Fd data_, either_;
};

}  // namespace

std::unique_ptr<Decorator> make_epoll(Channel& channel) {
  return std::make_unique<EpollChannel>(channel);
}

}  // namespace ipcbench::engine
