// cma: cross-memory attach. A message's payload is moved once, by the
// kernel, from the sender's memory straight into the receiver's buffer with
// process_vm_readv(2): the single copy MPI libraries use between processes
// on one host.
//
// Rendezvous, the receiver pulls. Each side holds one end of an AF_UNIX
// SOCK_SEQPACKET socketpair the listener creates (the peer inherits its end
// across exec, "sock:N" in the address, as memfd's). send() writes a 32-byte
// notification {sequence, address, length} on the socket and waits for the
// receiver's acknowledgement of it: the caller's buffer must stay valid until
// the peer has read it. receive() takes a notification, pulls the payload
// with process_vm_readv into the caller's buffer and acknowledges it. The
// socket is the lightest control channel that works here: it carries the
// address and length, it is pollable, and the peer's death shows as end of
// file (a futex would need a shared page, i.e. be shared memory).
//
// Both sides sending at once (a reply crossing our send) must neither
// deadlock nor drop: while a send waits for its acknowledgement it pulls
// every notification of the peer's at once into a staging buffer the
// channel owns, acknowledges it and queues it for a later receive (that
// message is then copied twice). Notifications read by a non-blocking call
// (try_receive, the waits) are queued unacknowledged: the peer's buffer is
// still valid, so the receive that serves one later pulls it straight into
// its caller's buffer.
//
// try_send cannot leave the payload in the caller's buffer, which is not
// valid after it returns: it copies the message into a sender-owned slot (a
// small ring of slots of max_message bytes each, 2 to kMaxSlots of them
// within kSlotBudget bytes) and notifies the slot's address. It refuses
// (false) while every slot awaits its acknowledgement; acknowledgements free
// slots in whichever call reads them. So the async mode moves the payload
// twice (into the slot, then the pull). A channel closed with slots not yet
// acknowledged lingers up to kLinger for the peer to pull them, unless the
// peer is gone.
//
// Acknowledgements come back in notification order (each side serves the
// other's notifications strictly in order), so a wrong one is a protocol
// error. Either side may be the one that is not the other's ancestor, so
// each allows the other to read it under Yama's ptrace_scope 1
// (PR_SET_PTRACER): the peer at connect, the listener once the peer's hello
// (its pid, checked against the kernel's SCM_CREDENTIALS) has come.
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/ring_queue.hpp"
#include "mechanisms/posix/socket.hpp"
#include "mechanisms/posix/syscall_tally.hpp"

namespace ipcbench::mech {
namespace {

using Clock = std::chrono::steady_clock;

// Largest message: the byte streams' cap (a pull has no buffer of its own).
constexpr std::size_t kMaxCmaMessage = kMaxStreamMessage;
// try_send's slots: at least kMinSlots, at most kMaxSlots, and no more than
// kSlotBudget bytes in all unless kMinSlots need more. The bound on slots
// also bounds the control records either side can have unread.
constexpr std::size_t kMinSlots = 2;
constexpr std::size_t kMaxSlots = 32;
constexpr std::size_t kSlotBudget = 8u << 20;
// How long a closing channel waits for the peer to pull its slots.
constexpr std::chrono::seconds kLinger{5};

// One control record, the same in both directions.
enum class Kind : std::uint32_t {
  kHello = 0x4f4c4548,   // "HELO": the peer's pid in `seq`
  kNotify = 0x5946544e,  // "NTFY": message `seq` of `length` bytes at `address`
  kAck = 0x4b434b41,     // "AKCK": message `seq` is done with, see `status`
};
enum class AckStatus : std::uint32_t {
  kTaken = 0,       // pulled (into the caller's buffer or a staging buffer)
  kRefused = 1,     // did not fit the receive buffer or the limit: dropped
  kUnreadable = 2,  // process_vm_readv could not read it (EFAULT, short)
  kDiscarded = 3,   // the receiver closed its channel without reading it
};
struct Control {
  Kind kind = Kind::kNotify;
  AckStatus status = AckStatus::kTaken;
  std::uint64_t seq = 0;
  std::uint64_t address = 0;
  std::uint64_t length = 0;
};
static_assert(sizeof(Control) == 32, "a control record is 32 bytes on every ABI we build for");

// "Yama ptrace_scope is N" when Yama is there, else empty.
std::string yama_scope() {
  std::ifstream in("/proc/sys/kernel/yama/ptrace_scope");
  int scope = -1;
  if (!(in >> scope)) return {};
  return std::to_string(scope);
}

// Why the kernel refused cross-memory attach with `err`, in words a user can
// act on.
std::string refusal_reason(int err) {
  if (err == EPERM) {
    const std::string scope = yama_scope();
    if (!scope.empty()) {
      return "the kernel refused process_vm_readv (EPERM): Yama ptrace_scope is " + scope +
             "; run as root or with CAP_SYS_PTRACE, or set kernel.yama.ptrace_scope=1";
    }
    return "the kernel refused process_vm_readv (EPERM): a seccomp policy forbids it (a "
           "container's or a service's system-call filter), or this process lacks "
           "CAP_SYS_PTRACE over the other (another user, or not dumpable); run it without that "
           "policy, as root or with CAP_SYS_PTRACE";
  }
  if (err == ENOSYS) {
    return "the kernel refused process_vm_readv (ENOSYS): kernel built without "
           "CONFIG_CROSS_MEMORY_ATTACH";
  }
  return std::string("process_vm_readv failed: ") + std::strerror(err);
}

// Lets `pid` (and its descendants) read this process under Yama's
// ptrace_scope 1. Without Yama the call fails with EINVAL: nothing to allow.
void allow_reads_by(pid_t pid) {
  if (::prctl(PR_SET_PTRACER, static_cast<unsigned long>(pid), 0UL, 0UL, 0UL) == 0) return;
  if (errno == EINVAL) return;
  posix::throw_errno("cannot let process " + std::to_string(pid) +
                     " read this one's memory (prctl PR_SET_PTRACER)");
}

// One probe of both directions: a forked child reads a word of ours, we read
// one of its. Empty when both work, else why not. The child makes only
// async-signal-safe calls (this process may have threads) and ends when we
// close its pipe, so nothing outlives the probe.
std::string probe() {
  constexpr std::uint64_t kForked = 0x636d612d666f726bULL;  // both copies hold it at fork
  constexpr std::uint64_t kParent = 0x636d612d70617265ULL;  // ours, once forked
  constexpr std::uint64_t kChild = 0x636d612d6368696cULL;   // the child's, once it has read
  // Volatile: each side reads the other's copy behind the compiler's back.
  volatile std::uint64_t word = kForked;
  void* const word_address = const_cast<std::uint64_t*>(&word);
  int go[2];
  int result[2];
  if (::pipe2(go, O_CLOEXEC) != 0) {
    return std::string("cannot probe cross-memory attach: pipe failed: ") + std::strerror(errno);
  }
  posix::Fd go_read(go[0]);
  posix::Fd go_write(go[1]);
  if (::pipe2(result, O_CLOEXEC) != 0) {
    return std::string("cannot probe cross-memory attach: pipe failed: ") + std::strerror(errno);
  }
  posix::Fd result_read(result[0]);
  posix::Fd result_write(result[1]);
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child < 0) {
    return std::string("cannot probe cross-memory attach: fork failed: ") + std::strerror(errno);
  }
  if (child == 0) {
    // Our copy of the write end would hide the parent's end of file.
    ::close(go_write.release());
    ::close(result_read.release());
    char go_byte = 0;
    ssize_t n = -1;
    do {
      n = ::read(go_read.get(), &go_byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) ::_exit(1);
    std::uint64_t got = 0;
    iovec local{&got, sizeof got};
    iovec remote{word_address, sizeof got};
    const ssize_t r = ::process_vm_readv(parent, &local, 1, &remote, 1, 0);
    int err = 0;
    if (r < 0) {
      err = errno;
    } else if (r != sizeof got || got != kParent) {
      err = EIO;
    }
    word = kChild;
    if (::write(result_write.get(), &err, sizeof err) != sizeof err) ::_exit(1);
    do {
      n = ::read(go_read.get(), &go_byte, 1);  // until we close the pipe
    } while (n < 0 && errno == EINTR);
    ::_exit(0);
  }
  go_read.reset();
  result_write.reset();
  word = kParent;
  std::string reason;
  int child_err = 0;
  try {
    allow_reads_by(child);
  } catch (const std::system_error& e) {
    reason = e.what();
  }
  // Plain EINTR loops, not retry_eintr: nothing here may throw before the
  // child is reaped.
  const char go_byte = 'g';
  ssize_t n = -1;
  if (reason.empty()) {
    do {
      n = ::write(go_write.get(), &go_byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
      reason = std::string("cannot probe cross-memory attach: pipe write failed: ") +
               std::strerror(errno);
    }
  }
  if (reason.empty()) {
    do {
      n = ::read(result_read.get(), &child_err, sizeof child_err);
    } while (n < 0 && errno == EINTR);
    if (n != sizeof child_err) {
      reason = "cannot probe cross-memory attach: the probing child ended early";
    } else if (child_err != 0) {
      reason = refusal_reason(child_err);
    }
  }
  if (reason.empty()) {
    // The child waits for our end of file: its word is there to read.
    std::uint64_t got = 0;
    iovec local{&got, sizeof got};
    iovec remote{word_address, sizeof got};
    const ssize_t r = ::process_vm_readv(child, &local, 1, &remote, 1, 0);
    if (r < 0) {
      reason = refusal_reason(errno);
    } else if (r != sizeof got || got != kChild) {
      reason = refusal_reason(EIO);
    }
  }
  go_write.reset();  // the child exits
  if (!reason.empty()) ::kill(child, SIGKILL);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return reason;
}

const std::string& availability() {
  static const std::string reason = probe();
  return reason;
}

void check_max_message(std::size_t max_message) {
  if (max_message > kMaxCmaMessage) {
    throw std::invalid_argument("cma messages are limited to " + std::to_string(kMaxCmaMessage) +
                                " bytes, not " + std::to_string(max_message));
  }
}

std::uint64_t address_of(const void* p) {
  return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p));
}

// A staging buffer: a message pulled early, or try_send's slot.
struct Buffer {
  std::unique_ptr<std::byte[]> bytes;
  std::size_t capacity = 0;
};

Buffer make_buffer(std::size_t size) {
  // Left uninitialised: untouched pages of a large buffer cost no memory.
  return {std::make_unique_for_overwrite<std::byte[]>(size), size};
}

class CmaChannel : public Channel {
 public:
  CmaChannel(posix::Fd sock, pid_t peer, std::size_t max_message)
      : sock_(std::move(sock)),
        peer_(peer),
        max_message_(max_message),
        slot_count_(std::clamp<std::size_t>(kSlotBudget / std::max<std::size_t>(max_message, 1),
                                            kMinSlots, kMaxSlots)),
        room_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (!room_) posix::throw_errno("cannot create cma's room eventfd");
  }

  CmaChannel(const CmaChannel&) = delete;
  CmaChannel& operator=(const CmaChannel&) = delete;

  ~CmaChannel() override { linger(); }

  // Notifies, then waits for the acknowledgement: the peer pulls from
  // `message` meanwhile. The peer's own notifications that arrive meanwhile
  // are pulled and acknowledged at once.
  void send(std::span<const std::byte> message) override {
    check_size(message);
    if (peer_closed_) throw PeerLost("the cma peer closed its socket");
    stage_queued();  // a peer waiting in its own send must not wait on us
    const std::uint64_t seq = next_seq_++;
    send_control({.kind = Kind::kNotify,
                  .seq = seq,
                  .address = address_of(message.data()),
                  .length = message.size()},
                 0);
    while (acked_ <= seq) {
      Control c;
      if (!read_control(c, 0)) {
        throw PeerLost("the cma peer closed its socket before it took a message of " +
                       std::to_string(message.size()) + " bytes");
      }
      if (c.kind == Kind::kAck) {
        const AckStatus status = take_ack(c);
        if (c.seq == seq && status == AckStatus::kDiscarded) {
          throw PeerLost("the cma peer closed its channel without taking the message");
        }
      } else {
        incoming_.push_back({c, {}});
        stage(incoming_.back());
      }
    }
  }

  std::size_t receive(std::span<std::byte> buffer) override {
    for (;;) {
      if (const auto n = serve(buffer)) return *n;
      if (peer_closed_) throw PeerLost("the cma peer closed its socket");
      Control c;
      if (read_control(c, 0)) take(c);
    }
  }

  // Copies the message into a free slot and notifies the slot.
  bool try_send(std::span<const std::byte> message) override {
    check_size(message);
    if (slots_busy_ == slot_count_) drain();
    if (peer_closed_) throw PeerLost("the cma peer closed its socket");
    if (slots_busy_ == slot_count_) {
      close_room();
      return false;
    }
    if (slots_.empty()) {
      slots_.reserve(slot_count_);
      for (std::size_t i = 0; i < slot_count_; ++i) slots_.push_back(make_buffer(max_message_));
      slot_seq_.assign(slot_count_, 0);
    }
    const std::size_t index = (slot_head_ + slots_busy_) % slot_count_;
    std::byte* slot = slots_[index].bytes.get();
    std::memcpy(slot, message.data(), message.size());
    const std::uint64_t seq = next_seq_;
    if (!send_control({.kind = Kind::kNotify,
                       .seq = seq,
                       .address = address_of(slot),
                       .length = message.size()},
                      MSG_DONTWAIT)) {
      return false;  // the socket is full: nothing was sent
    }
    ++next_seq_;
    slot_seq_[index] = seq;
    ++slots_busy_;
    return true;
  }

  std::optional<std::size_t> try_receive(std::span<std::byte> buffer) override {
    if (incoming_.empty()) drain();
    if (const auto n = serve(buffer)) return n;
    if (peer_closed_) throw PeerLost("the cma peer closed its socket");
    return std::nullopt;
  }

  // All three poll the socket for POLLIN (a notification or an
  // acknowledgement), take what came, and say whether it was what they
  // wait for.
  bool wait_receivable(std::chrono::nanoseconds timeout) override {
    return wait_until(timeout, [this] { return !incoming_.empty(); });
  }
  bool wait_sendable(std::chrono::nanoseconds timeout) override {
    return wait_until(timeout, [this] { return slots_busy_ < slot_count_; });
  }
  bool wait_either(std::chrono::nanoseconds timeout) override {
    return wait_until(timeout, [this] { return !incoming_.empty() || slots_busy_ < slot_count_; });
  }

  std::optional<std::size_t> receive_for(std::span<std::byte> buffer,
                                         std::chrono::nanoseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (const auto n = try_receive(buffer)) return n;
      if (!wait_receivable(deadline - Clock::now())) return std::nullopt;
    }
  }

  // receive_fd() is the socket: readable when a notification or an
  // acknowledgement came ("may be ready"). send_fd() is an eventfd of our
  // own, writable while a slot is free: when try_send finds every slot
  // awaiting its acknowledgement it fills the counter (no longer writable),
  // and the acknowledgement that frees one, read by any call, empties it.
  // That acknowledgement makes receive_fd() readable, so a caller polling
  // both wakes, calls in, and finds room. (The socket's own POLLOUT only
  // says a notification fits: a poller would spin on it while the slots
  // are full.)
  int receive_fd() const noexcept override { return sock_.get(); }
  int send_fd() const noexcept override { return room_.get(); }

 private:
  // A message of the peer's, in order: only its notification (the peer's
  // buffer holds it until we acknowledge), or pulled into `staged` and
  // acknowledged already.
  struct Incoming {
    Control note;
    Buffer staged;
  };

  void check_size(std::span<const std::byte> message) const {
    if (message.empty() || message.size() > max_message_) {
      throw std::invalid_argument("message of " + std::to_string(message.size()) +
                                  " bytes outside 1.." + std::to_string(max_message_));
    }
  }

  // Sends one record; false only when MSG_DONTWAIT finds the socket full.
  bool send_control(const Control& c, int flags) {
    const ssize_t n =
        posix::retry_eintr([&] { return ::send(sock_.get(), &c, sizeof c, flags | MSG_NOSIGNAL); });
    if (n == sizeof c) return true;
    if (n < 0) {
      if ((flags & MSG_DONTWAIT) != 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
      if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) {
        peer_closed_ = true;
        throw PeerLost("the cma peer closed its socket (send)");
      }
      posix::throw_errno("cma: cannot send a control record");
    }
    throw std::system_error(std::make_error_code(std::errc::io_error),
                            "cma: a control record was sent in part");
  }

  // Reads one record: true when one came, false at end of file (noted) or,
  // with MSG_DONTWAIT, when none is there. Throws ProtocolError for a
  // record of the wrong size or kind.
  bool read_control(Control& c, int flags) {
    if (peer_closed_) return false;
    const ssize_t n =
        posix::retry_eintr([&] { return ::recv(sock_.get(), &c, sizeof c, flags | MSG_TRUNC); });
    if (n < 0) {
      if ((flags & MSG_DONTWAIT) != 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
      if (errno == ECONNRESET || errno == ENOTCONN) {
        peer_closed_ = true;
        return false;
      }
      posix::throw_errno("cma: cannot read the control socket");
    }
    if (n == 0) {
      peer_closed_ = true;
      return false;
    }
    if (n != sizeof c) {
      throw ProtocolError("cma: a control record of " + std::to_string(n) +
                          " bytes (truncated or " + "oversized frame; expected " +
                          std::to_string(sizeof c) + ")");
    }
    if (c.kind != Kind::kNotify && c.kind != Kind::kAck) {
      throw ProtocolError("cma: a control record of unknown kind " +
                          std::to_string(static_cast<std::uint32_t>(c.kind)));
    }
    return true;
  }

  // An acknowledgement frees the oldest message of ours; they come in order.
  AckStatus take_ack(const Control& c) {
    if (c.seq != acked_ || acked_ == next_seq_) {
      throw ProtocolError("cma: acknowledgement of message " + std::to_string(c.seq) +
                          ", expected one of message " + std::to_string(acked_) +
                          (acked_ == next_seq_ ? " (none is outstanding)" : "") +
                          ": wrong sequence");
    }
    ++acked_;
    if (slots_busy_ > 0 && slot_seq_[slot_head_] == c.seq) {
      slot_head_ = (slot_head_ + 1) % slot_count_;
      --slots_busy_;
      open_room();
    }
    if (c.status == AckStatus::kUnreadable) {
      throw ProtocolError("cma: the peer could not read message " + std::to_string(c.seq) +
                          " from this process's memory");
    }
    return c.status;
  }

  // send_fd() not writable / writable again (see send_fd()); a system call
  // only at these changes.
  void close_room() {
    if (room_closed_) return;
    const std::uint64_t full = 0xfffffffffffffffeULL;  // an eventfd's largest count
    posix::count_syscall();
    if (::write(room_.get(), &full, sizeof full) != sizeof full) {
      posix::throw_errno("cannot fill cma's room eventfd");
    }
    room_closed_ = true;
  }
  void open_room() {
    if (!room_closed_) return;
    std::uint64_t count = 0;
    posix::count_syscall();
    if (::read(room_.get(), &count, sizeof count) != sizeof count) {
      posix::throw_errno("cannot empty cma's room eventfd");
    }
    room_closed_ = false;
  }

  void take(const Control& c) {
    if (c.kind == Kind::kAck) {
      take_ack(c);
    } else {
      incoming_.push_back({c, {}});
    }
  }

  // Takes every record there is now, without waiting.
  void drain() {
    Control c;
    while (read_control(c, MSG_DONTWAIT)) take(c);
  }

  // Acknowledges the peer's message `seq`. A failure here must not hide the
  // error that made us refuse a message, hence `quiet`.
  void acknowledge(std::uint64_t seq, AckStatus status, bool quiet = false) {
    const Control ack{.kind = Kind::kAck, .status = status, .seq = seq};
    if (!quiet) {
      send_control(ack, 0);
      return;
    }
    try {
      send_control(ack, 0);
    } catch (const std::exception&) {
    }
  }

  void check_limit(const Control& note) {
    if (note.length == 0 || note.length > max_message_) {
      acknowledge(note.seq, AckStatus::kRefused, true);
      throw ProtocolError("cma: message length " + std::to_string(note.length) + " outside 1.." +
                          std::to_string(max_message_) + " (the limit of this channel)");
    }
  }

  // Copies the peer's message `note` to `into` with one process_vm_readv.
  void pull(const Control& note, std::byte* into) {
    const auto length = static_cast<std::size_t>(note.length);
    iovec local{into, length};
    iovec remote{reinterpret_cast<void*>(static_cast<std::uintptr_t>(note.address)), length};
    const ssize_t n =
        posix::retry_eintr([&] { return ::process_vm_readv(peer_, &local, 1, &remote, 1, 0); });
    if (n == static_cast<ssize_t>(length)) return;
    const int err = n < 0 ? errno : 0;
    acknowledge(note.seq, AckStatus::kUnreadable, true);
    if (err == ESRCH) {
      peer_closed_ = true;
      throw PeerLost("the cma peer (process " + std::to_string(peer_) +
                     ") is gone (process_vm_readv: ESRCH)");
    }
    if (err == EPERM || err == ENOSYS) {
      throw std::system_error(err, std::generic_category(),
                              "cma: cannot read the peer's message: " + refusal_reason(err));
    }
    if (err == EFAULT || err == 0) {
      throw ProtocolError("cma: message " + std::to_string(note.seq) + " of " +
                          std::to_string(length) + " bytes at 0x" + hex(note.address) +
                          (err == EFAULT ? " is not mapped in the peer (EFAULT)"
                                         : " came short: " + std::to_string(n) + " bytes read") +
                          ": wrong length or address");
    }
    posix::throw_errno(err, "cma: process_vm_readv of " + std::to_string(length) + " bytes failed");
  }

  static std::string hex(std::uint64_t v) {
    std::array<char, 17> text{};
    const auto r = std::to_chars(text.data(), text.data() + text.size(), v, 16);
    return {text.data(), r.ptr};
  }

  // Pulls one queued notification into a staging buffer and acknowledges it.
  void stage(Incoming& in) {
    check_limit(in.note);
    const auto length = static_cast<std::size_t>(in.note.length);
    if (!spare_.empty() && spare_.back().capacity >= length) {
      in.staged = std::move(spare_.back());
      spare_.pop_back();
    } else {
      in.staged = make_buffer(length);
    }
    pull(in.note, in.staged.bytes.get());
    acknowledge(in.note.seq, AckStatus::kTaken);
  }

  // Stages every queued notification not pulled yet, in order.
  void stage_queued() {
    for (std::size_t i = 0; i < incoming_.size(); ++i) {
      if (!incoming_[i].staged.bytes) stage(incoming_[i]);
    }
  }

  // Serves the oldest queued message into `buffer`: its size, or nullopt
  // when none is queued.
  std::optional<std::size_t> serve(std::span<std::byte> buffer) {
    if (incoming_.empty()) return std::nullopt;
    Incoming in = incoming_.pop_front();
    const auto length = static_cast<std::size_t>(in.note.length);
    const bool pulled = in.staged.bytes != nullptr;
    if (!pulled) check_limit(in.note);
    if (length > buffer.size()) {
      if (!pulled) acknowledge(in.note.seq, AckStatus::kRefused, true);
      recycle(std::move(in.staged));
      throw ProtocolError("cma: message of " + std::to_string(length) + " bytes does not fit the " +
                          std::to_string(buffer.size()) + "-byte receive buffer");
    }
    if (pulled) {
      std::memcpy(buffer.data(), in.staged.bytes.get(), length);
      recycle(std::move(in.staged));
    } else {
      pull(in.note, buffer.data());
      acknowledge(in.note.seq, AckStatus::kTaken);
    }
    return length;
  }

  void recycle(Buffer b) {
    if (b.bytes && spare_.size() < kMaxSlots) spare_.push_back(std::move(b));
  }

  // Polls the socket and takes what comes until `ready()` or the timeout.
  // True once ready, or when the peer has gone (the next call says so).
  template <typename Ready>
  bool wait_until(std::chrono::nanoseconds timeout, Ready ready) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (ready() || peer_closed_) return true;
      if (!posix::poll_for(sock_.get(), POLLIN, deadline - Clock::now())) return false;
      drain();
    }
  }

  // On close: gives the peer up to kLinger to pull the slots it was told
  // of, refusing (as discarded) whatever it sends meanwhile, so that two
  // channels closing at once do not wait for each other.
  void linger() noexcept {
    try {
      for (std::size_t i = 0; i < incoming_.size(); ++i) {
        const Incoming& in = incoming_[i];
        if (!in.staged.bytes) acknowledge(in.note.seq, AckStatus::kDiscarded, true);
      }
      incoming_.clear();
      const auto deadline = Clock::now() + kLinger;
      while (slots_busy_ > 0 && !peer_closed_ && !posix::interrupt_flag().load() &&
             Clock::now() < deadline) {
        if (!posix::poll_for(sock_.get(), POLLIN, deadline - Clock::now())) break;
        Control c;
        while (read_control(c, MSG_DONTWAIT)) {
          if (c.kind == Kind::kAck) {
            take_ack(c);
          } else {
            acknowledge(c.seq, AckStatus::kDiscarded, true);
          }
        }
      }
    } catch (const std::exception&) {
      // Closing anyway: the peer sees end of file.
    }
  }

  posix::Fd sock_;
  pid_t peer_;
  std::size_t max_message_;
  bool peer_closed_ = false;
  std::uint64_t next_seq_ = 0;  // our next notification
  std::uint64_t acked_ = 0;     // our oldest notification not acknowledged yet
  // Notifications not served yet, staged or not: no bound (a peer whose
  // sends we stage and acknowledge while we send goes on sending), so a
  // queue that grows once and then allocates nothing per message.
  posix::RingQueue<Incoming> incoming_;
  std::vector<Buffer> spare_;  // staging buffers to reuse
  // try_send's ring: slots_[slot_head_] is the oldest awaiting its ack.
  std::size_t slot_count_;
  std::vector<Buffer> slots_;  // allocated by the first try_send
  std::vector<std::uint64_t> slot_seq_;
  std::size_t slot_head_ = 0;
  std::size_t slots_busy_ = 0;
  posix::Fd room_;  // send_fd(): writable while a slot is free
  bool room_closed_ = false;
};

class CmaEndpoint : public Endpoint {
 public:
  explicit CmaEndpoint(std::size_t max_message) : max_message_(max_message) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
      posix::throw_errno("cannot create the cma control socketpair");
    }
    ours_ = posix::Fd(pair[0]);
    peer_end_ = posix::Fd(pair[1]);
    // The kernel attaches the sender's credentials to the hello.
    posix::set_socket_option(ours_.get(), SOL_SOCKET, SO_PASSCRED, 1, "SO_PASSCRED");
  }

  std::string address() const override { return "sock:" + std::to_string(peer_end_.get()); }

  std::vector<int> inherited_fds() const override {
    if (!peer_end_) return {};
    return {peer_end_.get()};
  }

  // Waits for the peer's hello (its pid), checks it against the kernel's
  // credentials and lets that process read ours.
  std::unique_ptr<Channel> accept(std::chrono::milliseconds timeout) override {
    peer_end_.reset();  // the peer holds its own copy: its death is end of file here
    if (!posix::poll_for(ours_.get(), POLLIN, timeout)) {
      throw Timeout("the cma peer sent no hello within " + std::to_string(timeout.count()) + " ms");
    }
    Control hello;
    iovec iov{&hello, sizeof hello};
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(ucred))> control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    const ssize_t n = posix::retry_eintr(
        [&] { return ::recvmsg(ours_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC); });
    if (n < 0) {
      if (errno == ECONNRESET) throw PeerLost("the cma peer closed its socket before its hello");
      posix::throw_errno("cannot read the cma peer's hello");
    }
    if (n == 0) throw PeerLost("the cma peer closed its socket before its hello");
    if (n != sizeof hello || (msg.msg_flags & MSG_TRUNC) != 0 || hello.kind != Kind::kHello) {
      throw ProtocolError("cma: the peer's first record is not a hello");
    }
    std::optional<ucred> creds;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
          c->cmsg_len == CMSG_LEN(sizeof(ucred))) {
        ucred u{};
        std::memcpy(&u, CMSG_DATA(c), sizeof u);
        creds = u;
      }
    }
    if (!creds) throw ProtocolError("cma: the peer's hello came without credentials");
    if (static_cast<std::uint64_t>(creds->pid) != hello.seq) {
      throw ProtocolError("cma: the peer's hello says pid " + std::to_string(hello.seq) +
                          ", the kernel says it came from pid " + std::to_string(creds->pid) +
                          " (another pid namespace?)");
    }
    posix::set_socket_option(ours_.get(), SOL_SOCKET, SO_PASSCRED, 0, "SO_PASSCRED");
    allow_reads_by(creds->pid);
    return std::make_unique<CmaChannel>(std::move(ours_), creds->pid, max_message_);
  }

 private:
  std::size_t max_message_;
  posix::Fd ours_;
  posix::Fd peer_end_;
};

class CmaMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "cma"; }
  std::string_view family() const override { return "cma"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kMessage,
            .max_message = kMaxCmaMessage,
            .crosses_hosts = false,
            .pollable = true,
            .lossy = false,
            .waiting = Waiting::kSleep,
            .readiness = Waiting::kSleep,
            // The pull into the caller's buffer (sync); async try_send adds
            // the copy into its slot.
            .copies = 1,
            .async_copies = 2,
            .names = Names::kNone};
  }
  std::string unavailable_reason() const override { return availability(); }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    check_max_message(options.max_message);
    return std::make_unique<CmaEndpoint>(options.max_message);
  }

  // The listener's end of the socketpair was inherited: its creator (the
  // listener) is the socket's peer (SO_PEERCRED). Says hello with our pid.
  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    int n = -1;
    const char* end = address.data() + address.size();
    if (!address.starts_with("sock:") || std::from_chars(address.data() + 5, end, n).ptr != end ||
        n < 0) {
      throw std::invalid_argument("malformed cma address '" + std::string(address.substr(0, 64)) +
                                  "' (expected sock:FD)");
    }
    check_max_message(options.max_message);
    // Check before taking ownership (closing a descriptor that is not ours
    // would be worse than an error); it must not leak into what we exec.
    if (::fcntl(n, F_SETFD, FD_CLOEXEC) != 0) {
      posix::throw_errno("inherited cma socket " + std::to_string(n) + " is not open");
    }
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(n, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET) {
      throw std::invalid_argument("inherited descriptor " + std::to_string(n) +
                                  " is not a seqpacket socket");
    }
    posix::Fd sock(n);
    ucred listener{};
    len = sizeof listener;
    if (::getsockopt(sock.get(), SOL_SOCKET, SO_PEERCRED, &listener, &len) != 0) {
      posix::throw_errno("cannot learn the cma listener's pid (SO_PEERCRED)");
    }
    if (listener.pid <= 0) {
      throw std::system_error(std::make_error_code(std::errc::protocol_error),
                              "the cma socket names no listener process");
    }
    allow_reads_by(listener.pid);
    const Control hello{.kind = Kind::kHello, .seq = static_cast<std::uint64_t>(::getpid())};
    const ssize_t sent =
        posix::retry_eintr([&] { return ::send(sock.get(), &hello, sizeof hello, MSG_NOSIGNAL); });
    if (sent != sizeof hello) posix::throw_errno("cannot send the hello on the cma socket");
    return std::make_unique<CmaChannel>(std::move(sock), listener.pid, options.max_message);
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_cma() { return std::make_unique<CmaMechanism>(); }

}  // namespace ipcbench::mech
