// The one interface every IPC mechanism implements.
//
// A Mechanism creates kernel objects on the side that listens and attaches to
// them on the side that connects; both ends then hold a Channel. The harness
// (bench/) owns the clock, the peer process and the bookkeeping; a Channel
// only moves whole messages. Which side listens is independent of which side
// times: locally the runner listens and the peer connects.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ipcbench {

enum class Boundaries {
  kMessage,  // the kernel or library keeps message boundaries
  kStream,   // a byte stream: the adapter frames each message
};

// How a side that waits for a message (or for room) waits. The harness picks
// the physical floor a case is compared with from it: a sleeping mechanism
// can be no faster than a futex wake-up round trip, a spinning one no faster
// than moving the payload between the CPUs.
enum class Waiting {
  kSleep,          // blocks in the kernel (read, recv, mq_receive, sem_wait, ...)
  kSpin,           // busy-polls shared memory
  kSpinThenSleep,  // polls briefly, then sleeps (a futex)
};

// What a mechanism can do on this machine. `ipcbench list --json` prints it.
enum class Names {
  kNone,    // anonymous (pipe) or a port (tcp, udp, zmq-tcp)
  kRunDir,  // files in the run directory (FIFOs, Unix socket files)
  kSystem,  // system-wide names beside the run directory (POSIX shm and mq, System V keys)
};

struct Capabilities {
  Boundaries boundaries = Boundaries::kStream;
  // Largest message (bytes) a Channel accepts, probed on this machine where
  // the kernel decides it; byte streams are capped at kMaxStreamMessage.
  std::size_t max_message = 0;
  bool crosses_hosts = false;  // can connect to another machine
  bool pollable = false;       // has a file descriptor for poll/epoll
  bool lossy = false;          // may drop messages under load (datagrams)
  Waiting waiting = Waiting::kSleep;
  // How wait_receivable()/wait_sendable() wait, which is what the async mode
  // uses when there is no descriptor to poll (a pollable mechanism is waited
  // on with poll). Recorded on every async row as `wait`.
  Waiting readiness = Waiting::kSleep;
  // Copies of the payload per message on its way from the sender's buffer
  // to the receiver's, the kernel's included: 2 for a pipe, a socket, a
  // queue or a ring in shared memory (in, then out), 1 for cross-memory
  // attach (the kernel copies between the two processes), 0 for a loan
  // API that hands the receiver the sender's memory. A mechanism that
  // copies at all can never beat memcpy on one core: the harness holds it
  // to the copy floors and flags a result that does; one that does not is
  // held to neither.
  int copies = 2;
  // The same for the async mode's non-blocking path, when it differs
  // (cma: try_send stages the message in a slot first); -1: as `copies`.
  int async_copies = -1;
  // Where its objects have names, which outlive a process killed before it
  // removes them (owner records and `ipcbench clean` cover them).
  Names names = Names::kNone;
  // Takes ListenOptions::spin_budget (shm-eventfd): it then spins that many
  // times before a wait sleeps (its `waiting` says kSleep, for budget 0).
  bool spin_budget = false;
  // Moves its bytes with plain read/write (send/recv) on its descriptors,
  // as Channel::raw_io() describes them, so an engine may do that I/O
  // itself (io_uring).
  bool raw_io = false;
};

// How a channel whose bytes are plain reads and writes on descriptors
// frames its messages (Channel::raw_io).
struct RawIo {
  enum class Framing {
    kLengthPrefixed,  // a byte stream: 4-byte little-endian length, then the payload
    kDatagram,        // one datagram per message; a zero-length one is a hello or probe
    kSeqpacket,       // one record per message; zero bytes read is the end
  };
  int read_fd = -1;
  int write_fd = -1;
  Framing framing = Framing::kLengthPrefixed;
  bool socket = false;  // send/recv (MSG_NOSIGNAL) rather than write/read
};

// Byte streams have no natural limit; we cap them so buffers stay bounded.
inline constexpr std::size_t kMaxStreamMessage = 64u << 20;  // 64 MiB

// Options for the listening side. Aggregate: fill with designated initializers.
struct ListenOptions {
  // Private directory (mode 0700) for file-system names (sockets, FIFOs).
  // Owned by the caller; the endpoint removes what it creates in it.
  std::string run_dir;
  // Unique per run and case (contains the owner's pid); used in object names.
  std::string tag;
  // Largest message the case will send, for sizing rings and buffers.
  std::size_t max_message = 0;
  // Host or address to bind for network mechanisms.
  std::string bind_host = "127.0.0.1";
  // Network mechanisms: accept the peer only from this numeric address
  // (e.g. "198.18.0.2"); connections or hellos from anyone else are refused
  // and the endpoint keeps waiting. Empty: anyone who can reach bind_host.
  std::string allowed_peer{};
  // Runner and peer share one CPU: spinning waits must yield the CPU, or a
  // spinner burns its whole time slice while the other side cannot run.
  bool same_cpu = false;
  // Spins before a wait sleeps, for a mechanism that takes a budget
  // (Capabilities::spin_budget; both sides use the listener's). 0: every
  // wait sleeps at once.
  std::uint32_t spin_budget = 0;
};

struct ConnectOptions {
  // Largest message the case will send (must match the listener's).
  std::size_t max_message = 0;
  // How long connect may wait for the listener.
  std::chrono::milliseconds timeout{10'000};
  // See ListenOptions::same_cpu.
  bool same_cpu = false;
};

// One end of an established bidirectional connection. Not thread-safe.
class Channel {
 public:
  virtual ~Channel() = default;

  // Sends one whole message (1 .. max_message bytes), blocking until the
  // mechanism has taken all of it. Throws PeerLost if the other side is gone,
  // std::invalid_argument if the message is empty or too large,
  // std::system_error on any other failure.
  virtual void send(std::span<const std::byte> message) = 0;

  // Blocks until one whole message has arrived, copies it to the start of
  // `buffer` and returns its size in bytes. Throws PeerLost if the other side
  // is gone, ProtocolError if the message does not fit `buffer` or its frame
  // is malformed (nothing is written past `buffer`), std::system_error on any
  // other failure.
  virtual std::size_t receive(std::span<std::byte> buffer) = 0;

  // Non-blocking send of one whole message: false, having sent nothing, when
  // the mechanism cannot take it now ("would block" is a value, not an
  // error). A byte stream may keep the unsent tail of an accepted message in
  // its own buffer and finish it on later calls. Throws like send().
  [[nodiscard]] virtual bool try_send(std::span<const std::byte> message) = 0;

  // Non-blocking receive: the size of one whole message copied to `buffer`,
  // or std::nullopt when no whole message is ready. Throws like receive().
  [[nodiscard]] virtual std::optional<std::size_t> try_receive(std::span<std::byte> buffer) = 0;

  // Wait until try_receive / try_send would probably succeed, at most
  // `timeout`; false on timeout. May return true spuriously. Throws PeerLost
  // when the harness interrupts the wait (dead peer, signal) or the peer is
  // known to be gone. How it waits is the mechanism's business (poll on a
  // descriptor, futex, spinning); its comment says which.
  virtual bool wait_receivable(std::chrono::nanoseconds timeout) = 0;
  virtual bool wait_sendable(std::chrono::nanoseconds timeout) = 0;
  // Waits until a receive or a send would probably succeed, whichever comes
  // first (an async sender whose channel is full also waits for replies).
  // The default alternates waits of at most 100 us of each kind; a
  // mechanism that can wait for both at once overrides it.
  virtual bool wait_either(std::chrono::nanoseconds timeout);

  // Blocking receive with a deadline: a message's size, or std::nullopt when
  // none arrived within `timeout`. Lossy mechanisms use it so one lost
  // datagram never hangs a case; they override it with a one-syscall
  // version (e.g. SO_RCVTIMEO). The default waits, then tries.
  [[nodiscard]] virtual std::optional<std::size_t> receive_for(std::span<std::byte> buffer,
                                                               std::chrono::nanoseconds timeout) {
    if (!wait_receivable(timeout)) return std::nullopt;
    return try_receive(buffer);
  }

  // The zero-copy path (a loan API: Capabilities::copies 0). loan() says
  // where to write the next message of `size` bytes (1 .. max_message), and
  // send_loaned() / try_send_loaned() send it from there: a mechanism with
  // a loan API hands out its own shared memory, the same loan until it is
  // sent. The defaults hand out `own`, the caller's buffer, and send it
  // with send() / try_send(), so a mechanism without one costs what those
  // cost. A try_send_loaned() that returns false keeps the loan; before
  // trying again, call loan() and write the message again (its memory may
  // differ). A loan the mechanism cannot make now (its pool is empty) is
  // `own` too, which is then sent by copying. Throw like send().
  virtual std::span<std::byte> loan(std::span<std::byte> own, std::size_t size) {
    return own.first(size);
  }
  virtual void send_loaned(std::span<const std::byte> loaned) { send(loaned); }
  [[nodiscard]] virtual bool try_send_loaned(std::span<const std::byte> loaned) {
    return try_send(loaned);
  }
  // Like receive() / try_receive(), but the message may stay where it
  // arrived (a loan API's shared memory): the view is valid until
  // release_view() or the next receive of any kind, whichever comes first.
  // The defaults receive into `own` and view that. Call release_view() as
  // soon as the message is read, so its memory goes back to the sender.
  // loan() may hand out the memory of the view still held (the defaults
  // both use `own`): a caller copying a view into a loan checks for that.
  virtual std::span<const std::byte> receive_view(std::span<std::byte> own) {
    return own.first(receive(own));
  }
  [[nodiscard]] virtual std::optional<std::span<const std::byte>> try_receive_view(
      std::span<std::byte> own) {
    const std::optional<std::size_t> n = try_receive(own);
    if (!n) return std::nullopt;
    return std::span<const std::byte>(own.first(*n));
  }
  virtual void release_view() noexcept {}

  // True while part of a message try_send accepted is still held by the
  // channel (byte streams). A caller that waits on descriptors must then also
  // wait for send_fd() to be writable and call any channel method, or the
  // peer never gets the rest. The channel's own wait_* handle it themselves.
  virtual bool send_pending() const noexcept { return false; }

  // Descriptors for epoll: readable when a message may be ready / writable
  // when a send may succeed; -1 when the mechanism has none (not pollable).
  // Byte streams read ahead, so several messages can arrive on one wake-up:
  // call try_receive until it returns nothing before waiting again.
  virtual int receive_fd() const noexcept { return -1; }
  virtual int send_fd() const noexcept { return -1; }

  // For an engine that does the I/O itself for a while (io_uring): the
  // descriptors and framing, when this channel moves bytes with plain
  // reads and writes (Capabilities::raw_io) and holds none of its own now
  // (nothing read ahead, nothing left to send); std::nullopt otherwise.
  // The engine leaves the descriptors as it found them, at a message
  // boundary, before the channel is used again.
  virtual std::optional<RawIo> raw_io() const noexcept { return std::nullopt; }

  // Called from another thread (the watchdog's) once the peer process is
  // dead and the thread using the channel has not come back from its call:
  // releases what the dead peer held that such a call can wait on for good,
  // i.e. a lock in shared memory that is not robust (boost-mq). The woken
  // call, and every call after it, throws PeerLost. Returns whether it
  // released anything. Nothing to release for most mechanisms: a dead peer
  // ends their waits by itself (end-of-file, pidfd, interrupt flag).
  virtual bool release_locks_of_dead_peer() noexcept { return false; }
};

// The listening side's half-open connection, waiting for the peer.
class Endpoint {
 public:
  virtual ~Endpoint() = default;

  // The string the peer passes to Mechanism::connect. Plain text, so it can
  // travel on a command line or a control connection.
  virtual std::string address() const = 0;

  // Descriptors the peer process must inherit across exec (anonymous pipes
  // have no name to open). Empty for named mechanisms.
  virtual std::vector<int> inherited_fds() const { return {}; }

  // Waits up to `timeout` for the peer to connect and returns this side's
  // Channel. Removes names that are no longer needed (socket files). Throws
  // Timeout if the peer did not connect in time, PeerLost if interrupted.
  // Call once.
  virtual std::unique_ptr<Channel> accept(std::chrono::milliseconds timeout) = 0;
};

class Mechanism {
 public:
  virtual ~Mechanism() = default;

  // Name as the CLI and reports spell it, e.g. "uds-stream".
  virtual std::string_view name() const = 0;
  // Family, e.g. "pipe", "socket", "shm", "mq", "zmq".
  virtual std::string_view family() const = 0;
  // Capabilities on this machine (probed once, then cached).
  virtual Capabilities capabilities() const = 0;
  // Why the mechanism cannot run here (the kernel or a security policy
  // refuses what it needs, or the build left out its library), in words a
  // user can act on; empty when it can. Probed once, then cached. Its cases
  // are then skipped with this reason, never failed.
  virtual std::string unavailable_reason() const { return {}; }

  // Creates the kernel objects and returns the endpoint the peer connects to.
  // Throws std::system_error naming the object if creation fails.
  virtual std::unique_ptr<Endpoint> listen(const ListenOptions& options) = 0;

  // Attaches to an endpoint created by listen(), possibly in another process.
  // Throws std::invalid_argument for a malformed address, Timeout if the
  // listener cannot be reached in time, std::system_error otherwise.
  virtual std::unique_ptr<Channel> connect(std::string_view address,
                                           const ConnectOptions& options) = 0;
};

// The copies a case of `async` mode or not pays (Capabilities::copies).
inline int copies_in(const Capabilities& c, bool async) noexcept {
  return async && c.async_copies >= 0 ? c.async_copies : c.copies;
}

std::string_view to_string(Boundaries b) noexcept;
std::string_view to_string(Waiting w) noexcept;
std::string_view to_string(Names n) noexcept;

}  // namespace ipcbench
