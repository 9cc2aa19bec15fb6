#include "bench/measure/bare_loops.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "bench/core/sysinfo.hpp"
#include "bench/core/units.hpp"
#include "mechanisms/channels/stream_framing.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/time.hpp"

namespace ipcbench {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kMaxUdpPayload = 65507;    // 65535 - IPv4 and UDP headers
constexpr std::size_t kPeerBuffer = 256 * 1024;  // the peer's reads take up to this much
constexpr auto kLossTimeout = 200ms;             // udp: a reply missing this long is lost
constexpr auto kUdpSilence = 20ms;               // udp stream: the peer's end of a block
constexpr int kLostInARowLimit = 25;             // 5 s without a udp reply: the peer is stuck
constexpr auto kStall = 10s;                     // sockets: no byte moved for this long
constexpr auto kStartTimeout = 5s;               // the peer's ready report
constexpr auto kReportTimeout = 5s;              // the peer's report once the data is through
constexpr std::uint64_t kMaxBlock = std::uint64_t{1} << 40;

// Commands (runner -> peer) and reports (peer -> runner) are two uint64s.
enum Op : std::uint64_t { kLatency = 1, kStream, kEnd, kSent, kQuit };
enum StartStage : std::uint64_t { kReady = 0, kPinning, kMapping };

// ---- the peer: a fork of a possibly multi-threaded process, so only system
// calls and plain memory work here (no allocation, no exceptions, no locks).

struct PeerSide {
  BareFamily family;
  std::size_t size;
  int cpu;
  pid_t parent;
  int in;   // data from the runner
  int out;  // data to the runner (the same socket as `in` for sockets)
  int ctl;
  int report;
};

bool read_full(int fd, void* buf, std::size_t n) noexcept {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r > 0) {
      p += r;
      n -= static_cast<std::size_t>(r);
    } else if (r == 0 || errno != EINTR) {
      return false;
    }
  }
  return true;
}

bool write_full(int fd, const void* buf, std::size_t n) noexcept {
  const auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w >= 0) {
      p += w;
      n -= static_cast<std::size_t>(w);
    } else if (errno != EINTR) {
      return false;
    }
  }
  return true;
}

bool write_report(int fd, std::uint64_t value, std::uint64_t extra) noexcept {
  const std::uint64_t m[2] = {value, extra};
  return write_full(fd, m, sizeof m);
}

bool read_command(int fd, std::uint64_t op_wanted) noexcept {
  std::uint64_t m[2];
  return read_full(fd, m, sizeof m) && m[0] == op_wanted;
}

bool readable_now(int fd) noexcept {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;  // POLLHUP too: the read that follows fails
}

template <bool kSocket>
ssize_t peer_read(int fd, std::byte* p, std::size_t n) noexcept {
  for (;;) {
    const ssize_t r = kSocket ? ::recv(fd, p, n, 0) : ::read(fd, p, n);
    if (r >= 0 || errno != EINTR) return r;
  }
}

template <bool kSocket>
bool peer_read_exact(int fd, std::byte* p, std::size_t n) noexcept {
  while (n > 0) {
    const ssize_t r = peer_read<kSocket>(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

template <bool kSocket>
bool peer_write_all(int fd, const std::byte* p, std::size_t n) noexcept {
  while (n > 0) {
    const ssize_t w = kSocket ? ::send(fd, p, n, MSG_NOSIGNAL) : ::write(fd, p, n);
    if (w >= 0) {
      p += w;
      n -= static_cast<std::size_t>(w);
    } else if (errno != EINTR) {
      return false;
    }
  }
  return true;
}

template <bool kSocket>
bool echo_stream(const PeerSide& p, std::byte* buf, std::uint64_t n) noexcept {
  for (std::uint64_t i = 0; i < n; ++i) {
    if (!peer_read_exact<kSocket>(p.in, buf, p.size) ||
        !peer_write_all<kSocket>(p.out, buf, p.size)) {
      return false;
    }
  }
  return true;
}

// The stream's bytes in big reads, whatever the writes were, then one byte.
template <bool kSocket>
bool sink_stream(const PeerSide& p, std::byte* buf, std::size_t cap, std::uint64_t n) noexcept {
  std::uint64_t left = n * p.size;
  while (left > 0) {
    const ssize_t r =
        peer_read<kSocket>(p.in, buf, static_cast<std::size_t>(std::min<std::uint64_t>(cap, left)));
    if (r <= 0) return false;
    left -= static_cast<std::uint64_t>(r);
  }
  const std::byte ack{1};
  return peer_write_all<kSocket>(p.out, &ack, 1);
}

bool send_datagram(int fd, const std::byte* p, std::size_t n) noexcept {
  for (;;) {
    if (::send(fd, p, n, 0) >= 0) return true;
    if (errno == ENOBUFS) return true;  // dropped: what a lossy transport may do
    if (errno != EINTR) return false;   // ECONNREFUSED: the runner's socket is gone
  }
}

// Echoes until the runner's kEnd: a lost request leaves the count short, so
// 20 ms of silence (SO_RCVTIMEO) looks at the control pipe.
bool echo_datagrams(const PeerSide& p, std::byte* buf, std::size_t cap, std::uint64_t n,
                    std::uint64_t* echoed) noexcept {
  std::uint64_t done = 0;
  while (done < n) {
    const ssize_t r = ::recv(p.in, buf, cap, 0);
    if (r >= 0) {
      if (!send_datagram(p.out, buf, static_cast<std::size_t>(r))) return false;
      ++done;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (readable_now(p.ctl)) break;
  }
  *echoed = done;
  return read_command(p.ctl, kEnd);
}

// Counts datagrams until all `n` came, or until 20 ms pass without one after
// the runner's kSent (sends complete synchronously on loopback, so what is
// not queued by then was dropped). Stamps the last arrival.
bool sink_datagrams(const PeerSide& p, std::byte* buf, std::size_t cap, std::uint64_t n,
                    std::uint64_t* got_out, std::uint64_t* last_out) noexcept {
  std::uint64_t got = 0;
  std::uint64_t last = 0;
  bool sent = false;
  while (got < n) {
    const ssize_t r = ::recv(p.in, buf, cap, 0);
    if (r >= 0) {
      ++got;
      last = Clock::monotonic_ns();
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (sent) break;
    if (readable_now(p.ctl)) {
      if (!read_command(p.ctl, kSent)) return false;
      sent = true;  // one more silence: datagrams sent since the last recv may be queued
    }
  }
  if (!sent && !read_command(p.ctl, kSent)) return false;
  *got_out = got;
  *last_out = last;
  return true;
}

// Closes [lo, hi]; close_range where the kernel has it.
void close_fds(unsigned lo, unsigned hi) noexcept {
  if (lo > hi) return;
  if (::syscall(SYS_close_range, lo, hi, 0) == 0) return;
  rlimit rl{};
  unsigned top = 65536;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < top)
    top = static_cast<unsigned>(rl.rlim_cur);
  for (unsigned fd = lo; fd <= hi && fd < top; ++fd) ::close(static_cast<int>(fd));
}

// Everything but stdio and our four: a copy held here would hide the death of
// the runner's other peers (no end of file while we hold their pipes).
void close_others(const PeerSide& p) noexcept {
  int keep[4] = {p.in, p.out, p.ctl, p.report};
  for (int i = 1; i < 4; ++i) {  // insertion sort: no library call that might allocate
    for (int j = i; j > 0 && keep[j - 1] > keep[j]; --j) std::swap(keep[j - 1], keep[j]);
  }
  unsigned next = 3;
  for (int fd : keep) {
    if (fd < 0 || static_cast<unsigned>(fd) < next) continue;
    if (static_cast<unsigned>(fd) > next) close_fds(next, static_cast<unsigned>(fd) - 1);
    next = static_cast<unsigned>(fd) + 1;
  }
  close_fds(next, ~0u);
}

[[noreturn]] void peer_main(const PeerSide& p) noexcept {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != p.parent) ::_exit(1);  // the runner died before prctl
  close_others(p);
  if (p.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(p.cpu, &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0) {
      write_report(p.report, static_cast<std::uint64_t>(errno), kPinning);
      ::_exit(2);
    }
  }
  const std::size_t cap = std::max(p.size, kPeerBuffer);
  // Our own pages, faulted in now (MAP_POPULATE), not on the first timed read.
  void* m = ::mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
  if (m == MAP_FAILED) {
    write_report(p.report, static_cast<std::uint64_t>(errno), kMapping);
    ::_exit(2);
  }
  auto* buf = static_cast<std::byte*>(m);
  if (!write_report(p.report, 0, kReady)) ::_exit(2);
  const bool udp = p.family == BareFamily::kUdp;
  const bool socket = p.family != BareFamily::kPipe;
  for (;;) {
    std::uint64_t cmd[2];
    if (!read_full(p.ctl, cmd, sizeof cmd)) ::_exit(0);  // the runner closed the control pipe
    std::uint64_t value = cmd[1];
    std::uint64_t extra = 0;
    bool ok = false;
    if (cmd[0] == kQuit) ::_exit(0);
    if (cmd[0] == kLatency) {
      ok = udp      ? echo_datagrams(p, buf, cap, cmd[1], &value)
           : socket ? echo_stream<true>(p, buf, cmd[1])
                    : echo_stream<false>(p, buf, cmd[1]);
    } else if (cmd[0] == kStream) {
      ok = udp      ? sink_datagrams(p, buf, cap, cmd[1], &value, &extra)
           : socket ? sink_stream<true>(p, buf, cap, cmd[1])
                    : sink_stream<false>(p, buf, cap, cmd[1]);
    }
    if (!ok || !write_report(p.report, value, extra)) ::_exit(3);
  }
}

// ---- the runner's side: setup helpers (errors here are thrown by the caller).

int read_sysctl_int(const char* path) {
  std::ifstream in(path);
  long long v = 0;
  if (!(in >> v) || v <= 0) return INT_MAX / 2;  // the kernel clamps to its limit anyway
  return static_cast<int>(std::min<long long>(v, INT_MAX / 2));
}

timeval to_timeval(std::chrono::microseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1'000'000);
  tv.tv_usec = static_cast<suseconds_t>(d.count() % 1'000'000);
  return tv;
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    const char* name = ::sigabbrev_np(WTERMSIG(status));
    return "the peer process was killed by " + (name != nullptr
                                                    ? "SIG" + std::string(name)
                                                    : "signal " + std::to_string(WTERMSIG(status)));
  }
  if (WIFEXITED(status)) {
    return "the peer process exited with status " + std::to_string(WEXITSTATUS(status));
  }
  return "the peer process ended (status " + std::to_string(status) + ")";
}

template <typename Result, typename Block>
Result run_blocks_for(std::chrono::nanoseconds duration, std::uint64_t first, Block block) {
  const double target = std::chrono::duration<double>(duration).count();
  if (!(target > 0)) throw std::invalid_argument("bare loop: the duration must be positive");
  std::uint64_t n = first;
  for (;;) {
    const std::uint64_t t0 = Clock::monotonic_ns();
    Result r = block(n);
    const double took = static_cast<double>(Clock::monotonic_ns() - t0) * 1e-9;
    if (took >= target || n >= kMaxBlock) return r;
    // As Google Benchmark: aim a little past the target; from a block too
    // short to predict from, grow at most tenfold.
    double factor = took > 0 ? target * 1.25 / took : 10.0;
    if (took < 0.1 * target) factor = std::min(factor, 10.0);
    const double next = std::ceil(static_cast<double>(n) * factor);
    n = next >= static_cast<double>(kMaxBlock) ? kMaxBlock
                                               : std::max(n + 1, static_cast<std::uint64_t>(next));
  }
}

}  // namespace

std::optional<BareFamily> bare_family_for(std::string_view mechanism_name) {
  if (mechanism_name == "pipe" || mechanism_name == "fifo") return BareFamily::kPipe;
  if (mechanism_name == "uds-stream") return BareFamily::kUnixStream;
  if (mechanism_name == "tcp") return BareFamily::kTcp;
  if (mechanism_name == "udp") return BareFamily::kUdp;
  return std::nullopt;
}

const char* bare_family_name(BareFamily family) {
  switch (family) {
    case BareFamily::kPipe:
      return "pipe";
    case BareFamily::kUnixStream:
      return "unix-stream";
    case BareFamily::kTcp:
      return "tcp";
    case BareFamily::kUdp:
      return "udp";
  }
  return "?";
}

std::optional<BareFamily> parse_bare_family(std::string_view name) {
  for (BareFamily f :
       {BareFamily::kPipe, BareFamily::kUnixStream, BareFamily::kTcp, BareFamily::kUdp}) {
    if (name == bare_family_name(f)) return f;
  }
  return std::nullopt;
}

std::size_t bare_max_message(BareFamily family) {
  return family == BareFamily::kUdp ? kMaxUdpPayload : kMaxStreamMessage;
}

BarePair::BarePair(BareFamily family, std::size_t message_size, int runner_cpu, int peer_cpu,
                   const Clock& clock)
    : family_(family),
      size_(message_size),
      peer_cpu_(peer_cpu),
      clock_(clock),
      hist_(make_latency_histogram()) {
  if (size_ == 0 || size_ > bare_max_message(family_)) {
    throw std::invalid_argument(prefix() + "message size " + std::to_string(size_) +
                                " outside 1.." + std::to_string(bare_max_message(family_)));
  }
  if (runner_cpu < -1 || runner_cpu >= CPU_SETSIZE || peer_cpu < -1 || peer_cpu >= CPU_SETSIZE) {
    throw std::invalid_argument(prefix() + "a CPU must be a CPU number or -1 (unpinned)");
  }
  if (runner_cpu >= 0) {
    // The caller pins its thread; we only check, so nothing is mislabelled.
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) {
      throw std::system_error(errno, std::generic_category(), prefix() + "sched_getaffinity");
    }
    if (CPU_COUNT(&set) != 1 || !CPU_ISSET(runner_cpu, &set)) {
      throw std::invalid_argument(prefix() + "the calling thread is not pinned to runner CPU " +
                                  std::to_string(runner_cpu) + " (pin_current_thread first)");
    }
  }
  ignore_sigpipe();  // a pipe whose reader died is EPIPE, as for the mechanisms
  send_buf_ = std::make_unique<std::byte[]>(size_);
  recv_buf_ = std::make_unique<std::byte[]>(size_);
  recv_cap_ = size_;
  std::memset(send_buf_.get(), 0x5a, size_);  // faulted in now, not in a timed loop
  std::memset(recv_buf_.get(), 0, size_);

  posix::Fd peer_in, peer_out;
  make_objects(peer_in, peer_out);
  int c[2], r[2];
  if (::pipe2(c, O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(), prefix() + "control pipe");
  }
  posix::Fd peer_ctl(c[0]);
  ctl_ = posix::Fd(c[1]);
  if (::pipe2(r, O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(), prefix() + "report pipe");
  }
  report_ = posix::Fd(r[0]);
  posix::Fd peer_report(r[1]);
  start_peer(peer_in.get(), peer_out ? peer_out.get() : peer_in.get(), peer_ctl.get(),
             peer_report.get());
  // The peer holds its own copies now; without ours its death shows here as
  // end of file or EPIPE.
  peer_in.reset();
  peer_out.reset();
  peer_ctl.reset();
  peer_report.reset();
  try {
    const Report ready = await_report(kStartTimeout, "starting the peer process");
    if (ready.value != 0) {
      fail(ready.extra == kPinning ? "pinning the peer to CPU " + std::to_string(peer_cpu_)
                                   : std::string("mapping the peer's buffer"),
           static_cast<int>(ready.value));
    }
  } catch (...) {
    abandon();  // no destructor runs for a constructor that throws
    throw;
  }
}

BarePair::~BarePair() {
  if (pid_ <= 0 || reaped_) return;
  const std::uint64_t quit[2] = {kQuit, 0};
  (void)!::write(ctl_.get(), quit, sizeof quit);
  ctl_.reset();  // end of file for a peer that missed the quit
  // The peer's report pipe hangs up as it exits; then it is ours to reap.
  pollfd p{report_.get(), POLLIN, 0};
  const std::uint64_t deadline = Clock::monotonic_ns() + 1'000'000'000u;
  for (;;) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      return;
    }
    const std::uint64_t now = Clock::monotonic_ns();
    if (now >= deadline) break;
    if (::poll(&p, 1, 1) > 0) {
      char drain[16];
      if ((p.revents & POLLIN) != 0 && ::read(report_.get(), drain, sizeof drain) > 0) continue;
      ::usleep(100);  // hung up: exiting, not yet reapable
    }
  }
  abandon();  // still there after 1 s: SIGKILL
}

std::string BarePair::prefix() const {
  return std::string("bare ") + bare_family_name(family_) + " loop: ";
}

void BarePair::make_objects(posix::Fd& peer_in, posix::Fd& peer_out) {
  const auto check = [this](bool ok, const char* what) {
    if (!ok) throw std::system_error(errno, std::generic_category(), prefix() + what);
  };
  const auto set_timeout = [&](int fd, int option, std::chrono::microseconds d, const char* what) {
    const timeval tv = to_timeval(d);
    check(::setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv) == 0, what);
  };
  switch (family_) {
    case BareFamily::kPipe: {
      int a[2], b[2];
      check(::pipe2(a, O_CLOEXEC) == 0, "pipe2");
      out_ = posix::Fd(a[1]);
      peer_in = posix::Fd(a[0]);
      check(::pipe2(b, O_CLOEXEC) == 0, "pipe2");
      in_ = posix::Fd(b[0]);
      peer_out = posix::Fd(b[1]);
      // The same pipes as the adapter's: it grows a pipe that cannot hold a
      // whole frame (4-byte length + message; stream_framing.cpp), so both
      // pipes hold one message and the comparison is of the code alone.
      for (int fd : {out_.get(), peer_out.get()}) {
        const int capacity = ::fcntl(fd, F_GETPIPE_SZ);
        if (capacity > 0 && size_ + 4 > static_cast<std::size_t>(capacity)) {
          (void)::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(size_ + 4));
        }
      }
      return;
    }
    case BareFamily::kUnixStream: {
      int sv[2];
      check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
      out_ = posix::Fd(sv[0]);
      peer_in = posix::Fd(sv[1]);
      break;
    }
    case BareFamily::kTcp: {
      // Non-blocking listener and connect, so both waits are bounded.
      posix::Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      check(static_cast<bool>(listener), "socket");
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof addr;
      check(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len) == 0, "bind");
      check(::listen(listener.get(), 1) == 0, "listen");
      check(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0,
            "getsockname");
      posix::Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      check(static_cast<bool>(client), "socket");
      check(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), len) == 0 ||
                errno == EINPROGRESS,
            "connect");
      const auto wait_for = [&](int fd, short events, const char* what) {
        pollfd p{fd, events, 0};
        int n;
        do {
          n = ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(kStartTimeout).count()));
        } while (n < 0 && errno == EINTR);
        check(n >= 0, what);
        if (n == 0) throw std::system_error(ETIMEDOUT, std::generic_category(), prefix() + what);
      };
      wait_for(listener.get(), POLLIN, "accept");
      posix::Fd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      check(static_cast<bool>(accepted), "accept");
      wait_for(client.get(), POLLOUT, "connect");
      int err = 0;
      socklen_t err_len = sizeof err;
      check(::getsockopt(client.get(), SOL_SOCKET, SO_ERROR, &err, &err_len) == 0, "connect");
      if (err != 0) throw std::system_error(err, std::generic_category(), prefix() + "connect");
      const int flags = ::fcntl(client.get(), F_GETFL);
      check(flags >= 0 && ::fcntl(client.get(), F_SETFL, flags & ~O_NONBLOCK) == 0, "fcntl");
      const int one = 1;
      for (int fd : {accepted.get(), client.get()}) {
        check(::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0, "TCP_NODELAY");
      }
      out_ = std::move(accepted);  // the runner accepts, as in the suite
      peer_in = std::move(client);
      break;
    }
    case BareFamily::kUdp: {
      posix::Fd a(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      check(static_cast<bool>(a), "socket");
      posix::Fd b(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      check(static_cast<bool>(b), "socket");
      sockaddr_in addr[2] = {};
      socklen_t len = sizeof(sockaddr_in);
      int i = 0;
      static const int send_limit = read_sysctl_int("/proc/sys/net/core/wmem_max");
      static const int receive_limit = read_sysctl_int("/proc/sys/net/core/rmem_max");
      for (int fd : {a.get(), b.get()}) {
        addr[i].sin_family = AF_INET;
        addr[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        check(::bind(fd, reinterpret_cast<sockaddr*>(&addr[i]), len) == 0, "bind");
        check(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr[i]), &len) == 0, "getsockname");
        // The udp mechanism's buffers, so bursts drop no more and no less.
        check(::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_limit, sizeof send_limit) == 0,
              "SO_SNDBUF");
        check(::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_limit, sizeof receive_limit) == 0,
              "SO_RCVBUF");
        ++i;
      }
      check(::connect(a.get(), reinterpret_cast<sockaddr*>(&addr[1]), len) == 0, "connect");
      check(::connect(b.get(), reinterpret_cast<sockaddr*>(&addr[0]), len) == 0, "connect");
      // One recv that gives up after the loss timeout (as the udp mechanism's
      // receive_for); the peer's gives up after 20 ms to look at its commands.
      set_timeout(a.get(), SO_RCVTIMEO, kLossTimeout, "SO_RCVTIMEO");
      set_timeout(b.get(), SO_RCVTIMEO, kUdpSilence, "SO_RCVTIMEO");
      set_timeout(a.get(), SO_SNDTIMEO, kStall, "SO_SNDTIMEO");
      out_ = std::move(a);
      peer_in = std::move(b);
      return;
    }
  }
  // Stream sockets: a live peer that stops moving bytes ends a block after kStall.
  set_timeout(out_.get(), SO_RCVTIMEO, kStall, "SO_RCVTIMEO");
  set_timeout(out_.get(), SO_SNDTIMEO, kStall, "SO_SNDTIMEO");
}

void BarePair::start_peer(int peer_in, int peer_out, int peer_ctl, int peer_report) {
  const PeerSide side{family_, size_,    peer_cpu_, ::getpid(),
                      peer_in, peer_out, peer_ctl,  peer_report};
  pid_ = ::fork();
  if (pid_ < 0) throw std::system_error(errno, std::generic_category(), prefix() + "fork");
  if (pid_ == 0) peer_main(side);
  pidfd_ = posix::pidfd_open(pid_);  // empty where unsupported: the watchdog then polls the pid
}

void BarePair::check_usable() const {
  if (!broken_.empty()) {
    throw std::system_error(ECANCELED, std::generic_category(),
                            prefix() + "no peer since an earlier failure (" + broken_ + ")");
  }
}

std::string BarePair::abandon() noexcept {
  if (pid_ <= 0) return {};
  if (reaped_) return "the peer process is gone";
  int status = 0;
  pid_t r = 0;
  // A peer that is dying (the usual cause of a failure) gets 100 ms to finish.
  for (int i = 0; i < 100 && (r = ::waitpid(pid_, &status, WNOHANG)) == 0; ++i) ::usleep(1000);
  std::string how;
  if (r == 0) {
    ::kill(pid_, SIGKILL);
    do {
      r = ::waitpid(pid_, &status, 0);
    } while (r < 0 && errno == EINTR);
    how = "the peer process was still running and has been killed";
  } else if (r == pid_) {
    how = describe_status(status);
  }
  reaped_ = true;
  return how;
}

void BarePair::fail(const std::string& what, int err) {
  const std::string peer = abandon();
  const std::string text = peer.empty() ? what : what + " (" + peer + ")";
  broken_ = text + ": " + std::strerror(err);
  throw std::system_error(err, std::generic_category(), prefix() + text);
}

void BarePair::io_failed(const char* what, long result) {
  const int err = errno;
  if (result == 0) fail(std::string(what) + ": end of file", ECONNRESET);
  if (err == EAGAIN || err == EWOULDBLOCK) {
    fail(std::string(what) + ": nothing moved for " + std::to_string(kStall.count()) + " s",
         ETIMEDOUT);
  }
  fail(what, err);
}

void BarePair::send_command(std::uint64_t op, std::uint64_t count) {
  const std::uint64_t m[2] = {op, count};
  for (;;) {
    const ssize_t w = ::write(ctl_.get(), m, sizeof m);  // 16 bytes: atomic on a pipe
    if (w == static_cast<ssize_t>(sizeof m)) return;
    if (w < 0 && errno == EINTR) {
      posix::throw_if_interrupted();
      continue;
    }
    fail("sending a command to the peer", w < 0 ? errno : EIO);
  }
}

BarePair::Report BarePair::await_report(std::chrono::milliseconds timeout, const char* what) {
  const std::uint64_t deadline =
      Clock::monotonic_ns() + static_cast<std::uint64_t>(timeout.count()) * 1'000'000u;
  std::uint64_t m[2] = {0, 0};
  std::size_t got = 0;
  while (got < sizeof m) {
    const std::uint64_t now = Clock::monotonic_ns();
    if (now >= deadline) {
      fail(std::string(what) + ": no answer from the peer within " +
               std::to_string(timeout.count()) + " ms",
           ETIMEDOUT);
    }
    pollfd p{report_.get(), POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>((deadline - now) / 1'000'000u) + 1);
    if (n < 0) {
      if (errno == EINTR) {
        posix::throw_if_interrupted();
        continue;
      }
      fail(std::string(what) + ": poll", errno);
    }
    if (n == 0) continue;
    const ssize_t r = ::read(report_.get(), reinterpret_cast<char*>(m) + got, sizeof m - got);
    if (r > 0) {
      got += static_cast<std::size_t>(r);
    } else if (r == 0) {
      fail(std::string(what) + ": the peer's report pipe closed", ECONNRESET);
    } else if (errno != EINTR) {
      fail(std::string(what) + ": read", errno);
    } else {
      posix::throw_if_interrupted();
    }
  }
  return {m[0], m[1]};
}

// ---- the timed loops: plain system calls, no allocation, no virtual call.

template <bool kSocket>
void BarePair::put(const std::byte* p, std::size_t n) {
  const int fd = out_.get();
  while (n > 0) {
    const ssize_t w = kSocket ? ::send(fd, p, n, MSG_NOSIGNAL) : ::write(fd, p, n);
    if (w <= 0) [[unlikely]] {
      if (w < 0 && errno == EINTR) {
        posix::throw_if_interrupted();
        continue;
      }
      io_failed("write", w);
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

template <bool kSocket>
void BarePair::get(std::byte* p, std::size_t n) {
  const int fd = kSocket ? out_.get() : in_.get();
  while (n > 0) {
    const ssize_t r = kSocket ? ::recv(fd, p, n, 0) : ::read(fd, p, n);
    if (r <= 0) [[unlikely]] {
      if (r < 0 && errno == EINTR) {
        posix::throw_if_interrupted();
        continue;
      }
      io_failed("read", r);
    }
    p += r;
    n -= static_cast<std::size_t>(r);
  }
}

template <bool kSocket>
void BarePair::latency_loop(std::uint64_t round_trips) {
  std::byte* const sbuf = send_buf_.get();
  std::byte* const rbuf = recv_buf_.get();
  const std::size_t size = size_;
  // Consecutive stamps, as ping_pong.hpp: each ends one round trip and starts the next.
  std::uint64_t prev = clock_.now();
  std::atomic<std::uint64_t>& progress = *progress_;
  std::uint64_t done = progress.load(std::memory_order_relaxed);
  for (std::uint64_t i = 0; i < round_trips; ++i) {
    put<kSocket>(sbuf, size);
    get<kSocket>(rbuf, size);
    const std::uint64_t now = clock_.now();
    hist_.record(clock_.to_ns(now - prev));
    prev = now;
    progress.store(++done, std::memory_order_relaxed);
  }
}

template <bool kSocket>
void BarePair::stream_loop(std::uint64_t messages) {
  const std::byte* const sbuf = send_buf_.get();
  const std::size_t size = size_;
  std::atomic<std::uint64_t>& progress = *progress_;
  std::uint64_t done = progress.load(std::memory_order_relaxed);
  for (std::uint64_t i = 0; i < messages; ++i) {
    put<kSocket>(sbuf, size);  // one write per message
    progress.store(++done, std::memory_order_relaxed);
  }
  std::byte ack;
  get<kSocket>(&ack, 1);
}

BareLatency BarePair::udp_latency_block(std::uint64_t round_trips) {
  const int fd = out_.get();
  std::byte* const sbuf = send_buf_.get();
  std::byte* const rbuf = recv_buf_.get();
  const std::size_t size = size_;
  // Each request carries a sequence number (its first bytes), so a reply that
  // came after its 200 ms is skipped, never taken for the next one's.
  const std::size_t stamp = std::min(size, sizeof seq_);
  while (::recv(fd, rbuf, recv_cap_, MSG_DONTWAIT) >= 0) {
  }
  send_command(kLatency, round_trips);
  BareLatency r;
  int lost_in_a_row = 0;
  std::uint64_t prev = clock_.now();
  for (std::uint64_t i = 0; i < round_trips; ++i) {
    ++seq_;
    std::memcpy(sbuf, &seq_, stamp);
    for (;;) {
      const ssize_t w = ::send(fd, sbuf, size, 0);
      if (w >= 0 || errno == ENOBUFS) break;  // ENOBUFS: dropped, so lost below
      if (errno == EINTR) {
        posix::throw_if_interrupted();
        continue;
      }
      io_failed("send", w);
    }
    bool answered = false;
    for (;;) {
      const ssize_t n = ::recv(fd, rbuf, recv_cap_, 0);  // SO_RCVTIMEO: the loss timeout
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) {
          posix::throw_if_interrupted();
          continue;
        }
        io_failed("recv", n);
      }
      if (static_cast<std::size_t>(n) == size && std::memcmp(rbuf, sbuf, stamp) == 0) {
        answered = true;
        break;
      }
    }
    const std::uint64_t now = clock_.now();
    if (answered) [[likely]] {
      hist_.record(clock_.to_ns(now - prev));
      lost_in_a_row = 0;
    } else {
      ++r.lost;
      // A dead peer sends nothing back: look (WNOWAIT leaves it to abandon to reap).
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid == pid_) {
        fail("recv: no reply", ECONNREFUSED);
      }
      if (++lost_in_a_row >= kLostInARowLimit) {
        fail("recv: no reply for " + std::to_string(kLostInARowLimit) + " requests in a row",
             ETIMEDOUT);
      }
    }
    prev = now;
  }
  send_command(kEnd, 0);
  await_report(kUdpSilence + kReportTimeout, "end of the latency block");
  return r;
}

BareLatency BarePair::run_latency_block(std::uint64_t round_trips) {
  check_usable();
  if (round_trips == 0) throw std::invalid_argument(prefix() + "a block needs round trips");
  try {
    hist_.reset();
    const std::uint64_t t0 = Clock::monotonic_ns();
    BareLatency r;
    if (family_ == BareFamily::kUdp) {
      r = udp_latency_block(round_trips);
    } else {
      send_command(kLatency, round_trips);
      if (family_ == BareFamily::kPipe) {
        latency_loop<false>(round_trips);
      } else {
        latency_loop<true>(round_trips);
      }
      await_report(kReportTimeout, "end of the latency block");
    }
    r.seconds = static_cast<double>(Clock::monotonic_ns() - t0) * 1e-9;
    r.p50_ns = static_cast<double>(hist_.value_at_percentile(50));
    r.mean_ns = hist_.mean();
    r.min_ns = static_cast<double>(hist_.min());
    r.round_trips = hist_.count();
    return r;
  } catch (...) {
    if (broken_.empty()) {  // interrupted (PeerLost): the streams are mid-message
      broken_ = "a block was interrupted";
      abandon();
    }
    throw;
  }
}

BareStream BarePair::udp_stream_block(std::uint64_t messages) {
  const int fd = out_.get();
  const std::byte* const sbuf = send_buf_.get();
  const std::size_t size = size_;
  send_command(kStream, messages);
  const std::uint64_t t0 = Clock::monotonic_ns();
  for (std::uint64_t i = 0; i < messages; ++i) {
    for (;;) {
      const ssize_t w = ::send(fd, sbuf, size, 0);
      if (w >= 0 || errno == ENOBUFS) break;  // ENOBUFS: dropped
      if (errno == EINTR) {
        posix::throw_if_interrupted();
        continue;
      }
      io_failed("send", w);
    }
  }
  send_command(kSent, 0);
  const Report rep = await_report(kUdpSilence + kReportTimeout, "end of the stream block");
  BareStream r;
  r.sent = messages;
  r.messages = std::min(rep.value, messages);
  if (r.messages > 0 && rep.extra > t0) r.seconds = static_cast<double>(rep.extra - t0) * 1e-9;
  return r;
}

BareStream BarePair::run_stream_block(std::uint64_t messages) {
  check_usable();
  if (messages == 0 || messages > UINT64_MAX / size_) {
    throw std::invalid_argument(prefix() + "bad message count " + std::to_string(messages));
  }
  try {
    BareStream r;
    if (family_ == BareFamily::kUdp) {
      r = udp_stream_block(messages);
    } else {
      send_command(kStream, messages);
      const std::uint64_t t0 = Clock::monotonic_ns();
      if (family_ == BareFamily::kPipe) {
        stream_loop<false>(messages);
      } else {
        stream_loop<true>(messages);
      }
      const std::uint64_t t1 = Clock::monotonic_ns();
      await_report(kReportTimeout, "end of the stream block");
      r.sent = r.messages = messages;
      r.seconds = static_cast<double>(t1 - t0) * 1e-9;
    }
    if (r.seconds > 0) {
      r.messages_per_second = static_cast<double>(r.messages) / r.seconds;
      r.bytes_per_second = r.messages_per_second * static_cast<double>(size_);
    }
    return r;
  } catch (...) {
    if (broken_.empty()) {
      broken_ = "a block was interrupted";
      abandon();
    }
    throw;
  }
}

BareLatency BarePair::run_latency_for(std::chrono::nanoseconds duration) {
  return run_blocks_for<BareLatency>(duration, 64,
                                     [this](std::uint64_t n) { return run_latency_block(n); });
}

BareStream BarePair::run_stream_for(std::chrono::nanoseconds duration) {
  return run_blocks_for<BareStream>(duration, 64,
                                    [this](std::uint64_t n) { return run_stream_block(n); });
}

}  // namespace ipcbench
