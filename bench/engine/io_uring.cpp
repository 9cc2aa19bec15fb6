// The io_uring engine: for a channel whose bytes are plain reads and writes
// (Channel::raw_io), the engine does that I/O itself through one io_uring
// per trial, and every wait is one io_uring_enter that also submits what
// was queued: a round trip of the async latency loop is a write and a read
// submitted together and two completions, instead of poll's write, read
// (nothing yet), poll and read.
//
// Sends are copied into an outgoing buffer (try_send has accepted a message
// once it is there) and go out one message per write, as io_uring is meant
// to be used: the writes queued since the last wait are submitted together,
// linked (IOSQE_IO_LINK) so they run in order and bytes never interleave,
// at most kChain per chain and one chain at a time. A short write ends the
// chain (the kernel cancels the rest), which is then written again from
// where it stopped. Messages are not coalesced into one write: that would be
// the engine's batching, which the other engines do not do (it made 64 B
// throughput follow this buffer's size, ~23x poll's). Reads go into an
// incoming buffer, armed only when a caller found nothing to take, so at
// the end of a trial at most one read is in flight: finish() cancels it and
// hands the descriptors back at a message boundary.
#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "bench/engine/engine.hpp"
#include "mechanisms/channels/stream_framing.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/ring_queue.hpp"
#include "mechanisms/posix/syscall_tally.hpp"
#include "mechanisms/posix/time.hpp"

#ifdef IPCBENCH_HAVE_LIBURING
#include <liburing.h>
#endif

namespace ipcbench::engine {

#ifndef IPCBENCH_HAVE_LIBURING

std::string unavailable_reason(Engine e) {
  if (e != Engine::kIoUring) return {};
  return "this build has no liburing (install liburing-dev and rebuild)";
}

std::unique_ptr<Decorator> make_io_uring(Channel& /*channel*/, std::size_t /*max_message*/) {
  throw std::runtime_error("io_uring: " + unavailable_reason(Engine::kIoUring));
}

#else

namespace {

constexpr unsigned kEntries = 64;
// Most writes submitted as one chain (the rest of the ring: a read, a cancel).
constexpr std::size_t kChain = 32;
enum : std::uint64_t { kRead = 1, kWrite = 2, kCancel = 3 };
constexpr auto kSlice = std::chrono::milliseconds(100);  // a forever wait, in slices

bool peer_gone(int err) {
  return err == EPIPE || err == ECONNRESET || err == ENOTCONN || err == ECONNREFUSED;
}

class UringChannel final : public Decorator {
 public:
  UringChannel(RawIo io, std::size_t max_message)
      : io_(io),
        max_message_(max_message),
        stream_(io.framing == RawIo::Framing::kLengthPrefixed),
        out_(std::max<std::size_t>(256u << 10, 2 * (kFrameHeaderBytes + max_message))),
        in_buf_(std::max<std::size_t>(64u << 10, kFrameHeaderBytes + max_message)) {
    lengths_ =
        posix::RingQueue<std::size_t>(out_.size() / ((stream_ ? kFrameHeaderBytes : 0) + 1) + 1);
    // Touched now: page faults must not be measured.
    std::memset(out_.data(), 0, out_.size());
    std::memset(in_buf_.data(), 0, in_buf_.size());
    // io_uring honours O_NONBLOCK (a read would complete with -EAGAIN
    // instead of waiting): the descriptors block while the engine has them.
    for (int fd : {io_.read_fd, io_.write_fd}) {
      const int flags = ::fcntl(fd, F_GETFL);
      if (flags < 0)
        posix::throw_errno("cannot read the flags of descriptor " + std::to_string(fd));
      saved_flags_.push_back({fd, flags});
      if ((flags & O_NONBLOCK) != 0 && ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        posix::throw_errno("cannot make descriptor " + std::to_string(fd) + " blocking");
      }
    }
    const int err = -::io_uring_queue_init(kEntries, &ring_, 0);
    if (err != 0) {
      restore_flags();
      throw std::system_error(err, std::generic_category(), "io_uring_setup failed");
    }
  }

  ~UringChannel() override {
    if (!finished_) {
      try {
        finish();
      } catch (...) {  // a failed case: the channel goes with it
      }
    }
  }

  void send(std::span<const std::byte> m) override {
    while (!try_send(m)) wait_sendable(kSlice);
  }
  std::size_t receive(std::span<std::byte> b) override {
    for (;;) {
      if (const auto n = try_receive(b)) return *n;
      wait_receivable(kSlice);
    }
  }
  std::optional<std::size_t> receive_for(std::span<std::byte> b,
                                         std::chrono::nanoseconds timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (const auto n = try_receive(b)) return n;
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return std::nullopt;
      wait_receivable(left);
    }
  }

  bool try_send(std::span<const std::byte> message) override {
    if (message.empty() || message.size() > max_message_) {
      throw std::invalid_argument("message of " + std::to_string(message.size()) +
                                  " bytes outside 1.." + std::to_string(max_message_));
    }
    reap();
    const std::size_t need = (stream_ ? kFrameHeaderBytes : 0) + message.size();
    if (queued_end_ + need > out_.size() && writes_in_flight_ == 0 && sent_ > 0) {
      // Nothing of it is with the kernel: move what waits to the front.
      std::memmove(out_.data(), out_.data() + sent_, queued_end_ - sent_);
      queued_end_ -= sent_;
      sent_ = 0;
    }
    if (queued_end_ + need > out_.size()) return false;
    std::byte* at = out_.data() + queued_end_;
    if (stream_) {
      const std::uint32_t len = htole32(static_cast<std::uint32_t>(message.size()));
      std::memcpy(at, &len, sizeof len);
      at += sizeof len;
    }
    lengths_.push_back(need);
    std::memcpy(at, message.data(), message.size());
    queued_end_ += need;
    return true;  // submitted with the next wait, together with a read
  }

  std::optional<std::size_t> try_receive(std::span<std::byte> buffer) override {
    reap();
    if (auto n = take(buffer)) return n;
    arm_read();
    return std::nullopt;
  }

  // Bytes try_send accepted are the kernel's to move once submitted, which
  // every wait below does: nothing for the caller to push.
  bool send_pending() const noexcept override { return false; }
  int receive_fd() const noexcept override { return -1; }
  int send_fd() const noexcept override { return -1; }

  bool wait_receivable(std::chrono::nanoseconds timeout) override {
    return wait([this] { return has_message(); }, timeout, true);
  }
  bool wait_sendable(std::chrono::nanoseconds timeout) override {
    return wait([this] { return has_room(); }, timeout, false);
  }
  bool wait_either(std::chrono::nanoseconds timeout) override {
    return wait([this] { return has_message() || has_room(); }, timeout, true);
  }

  void finish() override {
    if (finished_) return;
    finished_ = true;
    std::string stray;
    try {
      // Everything accepted goes out first (the peer answers it).
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while ((writes_in_flight_ > 0 || sent_ < queued_end_) &&
             std::chrono::steady_clock::now() < deadline) {
        enter(std::chrono::milliseconds(10));
      }
      if (read_in_flight_) {
        io_uring_sqe* sqe = sqe_or_throw();
        ::io_uring_prep_cancel64(sqe, kRead, 0);
        ::io_uring_sqe_set_data64(sqe, kCancel);
        while (read_in_flight_ && std::chrono::steady_clock::now() < deadline) {
          enter(std::chrono::milliseconds(10));
        }
      }
      if (stream_ ? in_end_ > in_pos_ : held_ > 0) {
        stray = std::to_string(stream_ ? in_end_ - in_pos_ : held_) +
                " bytes arrived that no receive took";
      }
      if (writes_in_flight_ > 0 || read_in_flight_) {
        stray = "io_uring did not finish its requests";
      }
    } catch (...) {
      ::io_uring_queue_exit(&ring_);
      restore_flags();
      throw;
    }
    ::io_uring_queue_exit(&ring_);
    restore_flags();
    // A lossy mechanism's late echo is no error: the harness skips stale replies.
    if (!stray.empty() && io_.framing != RawIo::Framing::kDatagram) {
      throw ProtocolError("io_uring engine: " + stray);
    }
  }

 private:
  // Room for the largest message (try_send moves what waits to the front
  // when no write has it).
  bool has_room() const noexcept {
    const std::size_t used = queued_end_ - (writes_in_flight_ > 0 ? 0 : sent_);
    return used + kFrameHeaderBytes + max_message_ <= out_.size();
  }

  bool has_message() const noexcept {
    if (!stream_) return held_ > 0;
    if (in_end_ - in_pos_ < kFrameHeaderBytes) return false;
    std::uint32_t len = 0;
    std::memcpy(&len, in_buf_.data() + in_pos_, sizeof len);
    return in_end_ - in_pos_ >= kFrameHeaderBytes + le32toh(len);
  }

  // One whole message out of the incoming buffer, if there is one.
  std::optional<std::size_t> take(std::span<std::byte> buffer) {
    if (!stream_) {
      if (held_ == 0) return std::nullopt;
      const std::size_t len = std::exchange(held_, 0);
      fits(len, buffer.size());
      std::memcpy(buffer.data(), in_buf_.data(), len);
      return len;
    }
    if (in_end_ - in_pos_ < kFrameHeaderBytes) return std::nullopt;
    const std::size_t len = decode_frame_length(
        std::span<const std::byte, kFrameHeaderBytes>(in_buf_.data() + in_pos_, kFrameHeaderBytes),
        max_message_);
    fits(len, buffer.size());
    if (in_end_ - in_pos_ < kFrameHeaderBytes + len) return std::nullopt;
    std::memcpy(buffer.data(), in_buf_.data() + in_pos_ + kFrameHeaderBytes, len);
    in_pos_ += kFrameHeaderBytes + len;
    if (in_pos_ == in_end_) in_pos_ = in_end_ = 0;
    return len;
  }

  static void fits(std::size_t len, std::size_t capacity) {
    if (len > capacity) {
      throw ProtocolError("message of " + std::to_string(len) + " bytes does not fit the " +
                          std::to_string(capacity) + "-byte receive buffer");
    }
  }

  io_uring_sqe* sqe_or_throw() {
    io_uring_sqe* sqe = ::io_uring_get_sqe(&ring_);
    if (sqe == nullptr) throw std::logic_error("io_uring submission queue full");
    return sqe;
  }

  // A read into the incoming buffer, unless one is under way (or, for
  // datagrams, a message is held).
  void arm_read() {
    if (read_in_flight_ || (!stream_ && held_ > 0)) return;
    if (stream_ && in_pos_ > 0 && in_buf_.size() - in_end_ < in_buf_.size() / 2) {
      std::memmove(in_buf_.data(), in_buf_.data() + in_pos_, in_end_ - in_pos_);
      in_end_ -= in_pos_;
      in_pos_ = 0;
    }
    io_uring_sqe* sqe = sqe_or_throw();
    std::byte* at = in_buf_.data() + (stream_ ? in_end_ : 0);
    const std::size_t room = in_buf_.size() - (stream_ ? in_end_ : 0);
    if (stream_) {
      ::io_uring_prep_read(sqe, io_.read_fd, at, static_cast<unsigned>(room), 0);
    } else {
      // MSG_TRUNC: the result is the datagram's real size, so one too large
      // for the buffer is an error, never a silent cut.
      ::io_uring_prep_recv(sqe, io_.read_fd, at, room, MSG_TRUNC);
    }
    ::io_uring_sqe_set_data64(sqe, kRead);
    read_in_flight_ = true;
  }

  // The queued messages as one chain of linked writes, unless a chain is
  // under way.
  void arm_write() {
    if (writes_in_flight_ > 0 || sent_ == queued_end_) return;
    std::size_t at = sent_;
    const std::size_t count = std::min(kChain, lengths_.size());
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t len = lengths_[i] - (i == 0 ? front_written_ : 0);
      io_uring_sqe* sqe = sqe_or_throw();
      if (io_.socket) {
        // MSG_WAITALL: io_uring then sends a stream's whole message or fails
        // the request (which ends the chain); without it a short send would
        // let the next write of the chain go on after a gap.
        ::io_uring_prep_send(sqe, io_.write_fd, out_.data() + at, len,
                             MSG_NOSIGNAL | (stream_ ? MSG_WAITALL : 0));
      } else {
        ::io_uring_prep_write(sqe, io_.write_fd, out_.data() + at, static_cast<unsigned>(len), 0);
      }
      ::io_uring_sqe_set_data64(sqe, kWrite);
      if (i + 1 < count) sqe->flags |= IOSQE_IO_LINK;
      at += len;
    }
    writes_in_flight_ = count;
  }

  // Submits what is prepared and waits at most `timeout` for a completion.
  void enter(std::chrono::nanoseconds timeout) {
    arm_write();
    __kernel_timespec ts{};
    const auto ns = std::max<std::int64_t>(timeout.count(), 0);
    ts.tv_sec = ns / 1'000'000'000;
    ts.tv_nsec = ns % 1'000'000'000;
    io_uring_cqe* cqe = nullptr;
    posix::count_syscall();
    const int ret = ::io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    if (ret < 0 && ret != -ETIME) {
      if (ret != -EINTR) throw std::system_error(-ret, std::generic_category(), "io_uring_enter");
      posix::throw_if_interrupted();
    }
    reap();
  }

  template <typename Ready>
  bool wait(Ready ready, std::chrono::nanoseconds timeout, bool want_read) {
    reap();
    if (ready()) {
      // What try_send accepted goes out now, even if the caller need not wait.
      if (writes_in_flight_ == 0 && sent_ < queued_end_) {
        arm_write();
        posix::count_syscall();
        const int ret = ::io_uring_submit(&ring_);
        if (ret < 0 && ret != -EINTR) {
          throw std::system_error(-ret, std::generic_category(), "io_uring_submit");
        }
      }
      return true;
    }
    if (want_read) arm_read();
    const bool forever = timeout == std::chrono::nanoseconds::max();
    const auto deadline = forever ? std::chrono::steady_clock::time_point::max()
                                  : std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (!forever && left <= std::chrono::nanoseconds::zero()) return ready();
      enter(forever ? std::chrono::nanoseconds(kSlice)
                    : std::min<std::chrono::nanoseconds>(left, kSlice));
      if (ready()) return true;
      if (want_read) arm_read();
    }
  }

  // Takes every completion there is (no system call: the ring is shared).
  void reap() {
    io_uring_cqe* cqe = nullptr;
    while (::io_uring_peek_cqe(&ring_, &cqe) == 0) {
      const std::uint64_t what = ::io_uring_cqe_get_data64(cqe);
      const int res = cqe->res;
      ::io_uring_cqe_seen(&ring_, cqe);
      if (what == kWrite) {
        wrote(res);
      } else if (what == kRead) {
        read(res);
      }
    }
  }

  // One write of the chain, in order: the front message's.
  void wrote(int res) {
    --writes_in_flight_;
    struct EndOfChain {
      UringChannel& c;
      ~EndOfChain() {
        if (c.writes_in_flight_ == 0) c.chain_cut_ = false;
      }
    } end{*this};
    if (res == -ECANCELED) return;  // an earlier write of the chain was short: again later
    if (res < 0) {
      if (peer_gone(-res)) throw PeerLost("peer closed the connection (io_uring send)");
      throw std::system_error(-res, std::generic_category(), "io_uring send");
    }
    const auto n = static_cast<std::size_t>(res);
    const std::size_t wanted = lengths_.front() - front_written_;
    if (!stream_ && n != wanted) {
      throw std::system_error(std::make_error_code(std::errc::message_size),
                              "io_uring send took " + std::to_string(n) + " of " +
                                  std::to_string(wanted) + " bytes of a message");
    }
    if (chain_cut_) {
      throw ProtocolError("io_uring wrote a message after a short write of the one before");
    }
    if (n < wanted) chain_cut_ = true;  // the kernel cancels the rest of the chain
    sent_ += n;
    front_written_ += n;  // short: the rest, and what the kernel cancelled, go again
    if (front_written_ == lengths_.front()) {
      (void)lengths_.pop_front();
      front_written_ = 0;
    }
    if (sent_ == queued_end_) sent_ = queued_end_ = 0;
  }

  void read(int res) {
    read_in_flight_ = false;
    if (res == -ECANCELED) return;
    if (res < 0) {
      if (peer_gone(-res)) throw PeerLost("peer reset the connection (io_uring receive)");
      throw std::system_error(-res, std::generic_category(), "io_uring receive");
    }
    const auto n = static_cast<std::size_t>(res);
    switch (io_.framing) {
      case RawIo::Framing::kLengthPrefixed:
        if (n == 0) throw PeerLost("peer closed the connection");
        in_end_ += n;
        return;
      case RawIo::Framing::kSeqpacket:
        if (n == 0) throw PeerLost("peer closed the seqpacket connection");
        break;
      case RawIo::Framing::kDatagram:
        if (n == 0) return;  // a hello or a liveness probe
        break;
    }
    if (n > in_buf_.size() || n > max_message_) {
      throw ProtocolError("datagram of " + std::to_string(n) + " bytes does not fit the " +
                          std::to_string(std::min(in_buf_.size(), max_message_)) +
                          "-byte receive buffer");
    }
    held_ = n;
  }

  void restore_flags() noexcept {
    for (const auto& [fd, flags] : saved_flags_) (void)::fcntl(fd, F_SETFL, flags);
    saved_flags_.clear();
  }

  RawIo io_;
  std::size_t max_message_;
  bool stream_;
  io_uring ring_{};
  std::vector<std::byte> out_;
  std::size_t sent_ = 0;        // out_[0, sent_): written
  std::size_t queued_end_ = 0;  // out_[sent_, queued_end_): waiting or in flight
  // Each queued message's bytes (a stream's: with its length), oldest
  // first, sized for the most messages out_ can hold: no allocation per message.
  posix::RingQueue<std::size_t> lengths_;
  std::size_t front_written_ = 0;     // of the first, already written
  std::size_t writes_in_flight_ = 0;  // of the chain under way
  bool chain_cut_ = false;            // a write of it was short
  std::vector<std::byte> in_buf_;
  std::size_t in_pos_ = 0, in_end_ = 0;  // streams: unread bytes
  std::size_t held_ = 0;                 // datagrams: a received message at in_buf_[0]
  bool read_in_flight_ = false;
  bool finished_ = false;
  std::vector<std::pair<int, int> > saved_flags_;
};

}  // namespace

std::string unavailable_reason(Engine e) {
  if (e != Engine::kIoUring) return {};
  static const std::string reason = [] {
    io_uring ring{};
    const int err = -::io_uring_queue_init(kEntries, &ring, 0);
    if (err == 0) {
      ::io_uring_queue_exit(&ring);
      return std::string();
    }
    if (err == ENOSYS) return std::string("the kernel has no io_uring (io_uring_setup: ENOSYS)");
    if (err == EPERM) {
      return std::string(
          "io_uring_setup was refused (EPERM): kernel.io_uring_disabled, or a seccomp policy "
          "(Docker's default profile refuses it)");
    }
    return "io_uring_setup failed: " + std::string(std::strerror(err));
  }();
  return reason;
}

std::unique_ptr<Decorator> make_io_uring(Channel& channel, std::size_t max_message) {
  const std::optional<RawIo> io = channel.raw_io();
  if (!io) {
    throw ProtocolError(
        "the io_uring engine needs a channel of plain reads and writes at a message boundary");
  }
  return std::make_unique<UringChannel>(*io, max_message);
}

#endif

}  // namespace ipcbench::engine
