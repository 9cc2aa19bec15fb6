// EventfdWait: the shm ring's wait policy for shm-eventfd. A side waits on
// an eventfd, so its channel is pollable: receive_fd() is readable when a
// message may be ready and send_fd() when room may be, and an event loop can
// wait for the ring beside its sockets (a futex cannot go into epoll).
//
// Four eventfds, created by the listener and inherited by the peer across
// exec (their numbers travel in the address, "?efd=D0,S0,D1,S1&spin=N"): for each
// ring, one the producer writes when it publishes (data) and one the
// consumer writes when it frees space (space). As with FutexWait, a side
// writes only when the other said it waits: a waiter sets its flag in the
// ring's control block (consumer_waiting, producer_waiting), a seq_cst
// fence, then looks at the ring again; a publisher fences, and if the flag
// is set takes it (exchange) and writes. Whoever took the flag wrote, so a
// waiter that finds its flag gone knows one count sits in the eventfd and
// reads it before waiting again. By default no spin before the wait (a
// spin would make it shm-spin in disguise); a budget (ListenOptions::
// spin_budget, --spin-budget) spins that many times first, on both sides.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mechanisms/channels/shm_ring.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/spin.hpp"
#include "mechanisms/posix/syscall_tally.hpp"
#include "mechanisms/posix/time.hpp"

namespace ipcbench::shm {

class EventfdWait {
 public:
  // The descriptors both sides hold: data[r] and space[r] for ring r
  // (ring 0 carries listener -> connector).
  struct Shared {
    posix::Fd data[2];
    posix::Fd space[2];
    std::uint32_t spin = 0;  // spins before a wait

    // The listener's: four new eventfds (non-blocking; close-on-exec, the
    // peer's spawn keeps the inherited ones open).
    static Shared create(const ListenOptions& options) {
      Shared s;
      s.spin = options.spin_budget;
      for (posix::Fd* fd : {&s.data[0], &s.space[0], &s.data[1], &s.space[1]}) {
        *fd = posix::Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
        if (!*fd) posix::throw_errno("cannot create eventfd");
      }
      return s;
    }
    // The connector's: the inherited descriptors the address suffix names.
    static Shared attach(std::string_view suffix) {
      constexpr std::string_view kPrefix = "?efd=";
      constexpr std::string_view kSpin = "&spin=";
      if (!suffix.starts_with(kPrefix)) throw malformed(suffix);
      std::string_view rest = suffix.substr(kPrefix.size());
      Shared s;
      const std::size_t spin_at = rest.find(kSpin);
      if (spin_at == std::string_view::npos) throw malformed(suffix);
      const std::string_view spin = rest.substr(spin_at + kSpin.size());
      const auto [sp, sec] = std::from_chars(spin.data(), spin.data() + spin.size(), s.spin);
      if (sec != std::errc() || sp != spin.data() + spin.size()) throw malformed(suffix);
      rest = rest.substr(0, spin_at);
      for (posix::Fd* fd : {&s.data[0], &s.space[0], &s.data[1], &s.space[1]}) {
        int n = -1;
        const auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), n);
        if (ec != std::errc() || n < 0) throw malformed(suffix);
        rest.remove_prefix(static_cast<std::size_t>(p - rest.data()));
        if (fd != &s.space[1]) {
          if (!rest.starts_with(',')) throw malformed(suffix);
          rest.remove_prefix(1);
        }
        if (::fcntl(n, F_SETFD, FD_CLOEXEC) != 0) {
          posix::throw_errno("inherited eventfd " + std::to_string(n) + " is not open");
        }
        *fd = posix::Fd(n);
      }
      if (!rest.empty()) throw malformed(suffix);
      return s;
    }
    std::string address_suffix() const {
      return "?efd=" + std::to_string(data[0].get()) + "," + std::to_string(space[0].get()) + "," +
             std::to_string(data[1].get()) + "," + std::to_string(space[1].get()) +
             "&spin=" + std::to_string(spin);
    }
    std::vector<int> fds() const {
      return {data[0].get(), space[0].get(), data[1].get(), space[1].get()};
    }

   private:
    static std::invalid_argument malformed(std::string_view suffix) {
      return std::invalid_argument("malformed shm-eventfd descriptors '" + std::string(suffix) +
                                   "' (expected ?efd=D0,S0,D1,S1&spin=N)");
    }
  };

  // The listener produces into ring 0 and consumes ring 1; the connector
  // the other way round.
  EventfdWait(Shared shared, bool listener) : spin_(shared.spin) {
    const int out = listener ? 0 : 1;
    const int in = 1 - out;
    data_out_ = std::move(shared.data[out]);
    data_in_ = std::move(shared.data[in]);
    space_out_ = std::move(shared.space[in]);  // we free space in the ring we consume
    space_in_ = std::move(shared.space[out]);  // and wait for space in the one we produce
  }

  int receive_fd() const noexcept { return data_in_.get(); }
  int send_fd() const noexcept { return space_in_.get(); }

  // The channel is built: we wait for data from the start, so a poller
  // that has not called try_receive yet is woken too (a message that came
  // before that is posted to our own eventfd).
  void attach(RingProducer& /*producer*/, RingConsumer& consumer) {
    data_.arm(consumer.control()->consumer_waiting, data_in_, Event::kData);
    if (consumer.ready()) {
      make_ready(data_in_, Event::kData);
      data_.posted();
    }
  }

  void pushed(RingProducer& producer) {
    if (producer.consumer_needs_wake()) {
      signal(producer.control()->consumer_waiting, data_out_, Event::kData);
    }
  }
  void popped(RingConsumer& consumer) {
    if (consumer.producer_needs_wake()) {
      signal(consumer.control()->producer_waiting, space_out_, Event::kRoom);
    }
  }

  // try_receive found nothing / try_send was refused: the caller may now
  // poll the descriptor, so say we wait (the caller looks at the ring again).
  void arm_for_data(RingConsumer& consumer) {
    data_.arm(consumer.control()->consumer_waiting, data_in_, Event::kData);
  }
  void arm_for_room(RingProducer& producer) {
    room_.arm(producer.control()->producer_waiting, space_in_, Event::kRoom);
  }
  // A message was taken / one was published: we no longer wait.
  void took_data(RingConsumer& consumer) { data_.disarm(consumer.control()->consumer_waiting); }
  void found_room(RingProducer& producer) { room_.disarm(producer.control()->producer_waiting); }

  template <typename Ready>
  void wait_for_data(RingConsumer& consumer, Ready ready, bool same_cpu,
                     std::chrono::steady_clock::time_point deadline) {
    if (spin(ready, same_cpu)) return;
    data_.wait(consumer.control()->consumer_waiting, data_in_, Event::kData, ready, deadline);
  }
  template <typename Ready>
  void wait_for_room(RingProducer& producer, Ready ready, bool same_cpu,
                     std::chrono::steady_clock::time_point deadline) {
    if (spin(ready, same_cpu)) return;
    room_.wait(producer.control()->producer_waiting, space_in_, Event::kRoom, ready, deadline);
  }

 private:
  // The spin budget: true once ready(). None under same-cpu (the other side
  // needs this CPU to make us ready).
  template <typename Ready>
  bool spin(Ready ready, bool same_cpu) const {
    if (spin_ == 0 || same_cpu) return false;
    for (std::uint32_t i = 1; i <= spin_; ++i) {
      if (ready()) return true;
      posix::relax(false);
      if (i % 1024 == 0) posix::throw_if_interrupted();
    }
    return ready();
  }

  // What a descriptor says. Data: readable while it holds a count (the
  // producer posts one). Room: writable while its count is below the
  // eventfd's maximum: the producer fills it to the maximum before it waits
  // and the consumer reads it back to 0 to wake it, so send_fd() is
  // writable exactly when a wait for room is over, as poll's POLLOUT means.
  enum class Event : short { kData = POLLIN, kRoom = POLLOUT };
  static constexpr std::uint64_t kFull = 0xfffffffffffffffe;  // eventfd's largest count

  static void make_ready(const posix::Fd& fd, Event e) {
    if (e == Event::kData) {
      add(fd, 1);
    } else {
      take(fd);
    }
  }
  static void make_unready(const posix::Fd& fd, Event e) {
    if (e == Event::kData) {
      take(fd);
    } else {
      add(fd, kFull);  // EAGAIN: full already
    }
  }
  static void add(const posix::Fd& fd, std::uint64_t n) {
    posix::count_syscall();
    if (::write(fd.get(), &n, sizeof n) < 0 && errno != EAGAIN) {
      posix::throw_errno("eventfd write failed");
    }
  }
  // Reads the count back to 0; EAGAIN: it was 0 (a post still on its way
  // only makes one later wait return early).
  static void take(const posix::Fd& fd) {
    std::uint64_t count = 0;
    posix::count_syscall();
    if (::read(fd.get(), &count, sizeof count) < 0 && errno != EAGAIN && errno != EINTR) {
      posix::throw_errno("eventfd read failed");
    }
  }

  // Takes the other side's flag and wakes it through the descriptor, once
  // per wait.
  static void signal(std::atomic<std::uint32_t>& waiting, const posix::Fd& fd, Event e) {
    if (waiting.exchange(0, std::memory_order_relaxed) == 0) return;  // taken already
    make_ready(fd, e);
  }

  // One waiting side: whether our flag is up, and whether our descriptor
  // may be ready (a wake-up we have not undone).
  class Waiter {
   public:
    explicit Waiter(bool ready) : ready_(ready) {}

    void arm(std::atomic<std::uint32_t>& waiting, const posix::Fd& fd, Event e) {
      if (armed_) return;
      if (ready_) {  // undo the last wake-up first, or poll returns at once
        make_unready(fd, e);
        ready_ = false;
      }
      waiting.store(1, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with *_needs_wake
      armed_ = true;
    }
    void disarm(std::atomic<std::uint32_t>& waiting) {
      if (!armed_) return;
      armed_ = false;
      // Gone: the other side took the flag and woke (or is waking) us.
      if (waiting.exchange(0, std::memory_order_relaxed) == 0) ready_ = true;
    }
    // We made our own descriptor ready (attach).
    void posted() { ready_ = true; }

    // Waits until ready() or the deadline, polling the descriptor in
    // slices, so a stop is seen (EINTR from the watchdog's signal throws
    // PeerLost).
    template <typename Ready>
    void wait(std::atomic<std::uint32_t>& waiting, const posix::Fd& fd, Event e, Ready ready,
              std::chrono::steady_clock::time_point deadline) {
      constexpr auto kSlice = std::chrono::milliseconds(100);
      const bool forever = deadline == std::chrono::steady_clock::time_point::max();
      for (;;) {
        arm(waiting, fd, e);
        if (ready()) break;
        auto slice = std::chrono::nanoseconds(kSlice);
        if (!forever) {
          const auto left = deadline - std::chrono::steady_clock::now();
          if (left <= std::chrono::nanoseconds::zero()) break;
          slice = std::min(slice, std::chrono::duration_cast<std::chrono::nanoseconds>(left));
        }
        pollfd p{fd.get(), static_cast<short>(e), 0};
        const timespec ts = posix::to_timespec(slice);
        posix::count_syscall();
        if (::ppoll(&p, 1, &ts, nullptr) < 0) {
          if (errno != EINTR) posix::throw_errno("poll on eventfd failed");
          posix::throw_if_interrupted();
        }
        if ((p.revents & static_cast<short>(e)) != 0) {
          // Woken: the other side took our flag.
          armed_ = false;
          ready_ = true;
          if (ready()) return;
        }
      }
      disarm(waiting);
    }

   private:
    bool armed_ = false;
    bool ready_ = false;
  };

  posix::Fd data_out_;   // we write: a message is in the ring we produce
  posix::Fd data_in_;    // we wait: a message is in the ring we consume
  posix::Fd space_out_;  // we write: space freed in the ring we consume
  posix::Fd space_in_;   // we wait: space in the ring we produce
  std::uint32_t spin_ = 0;
  Waiter data_{false};  // a new eventfd holds no count: not readable
  Waiter room_{true};   // and is writable
};

}  // namespace ipcbench::shm
