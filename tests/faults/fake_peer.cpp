// A misbehaving peer for tests/faults/misbehaving_peer_test.cpp.
//
// The runner execs it instead of `ipcbench peer` when the hidden
// `run --peer-executable` names it, with the real peer's arguments:
//   fake_peer peer --mechanism M --address A --cpu N --max-message N
//             --verify header|full --parent PID [--lossy] [--same-cpu]
// It connects and says hello like bench/peer/peer.cpp, serves the runner
// correctly, and then misbehaves once, as the environment says:
//
//   IPCBENCH_FAKE_PEER=FAULT     what to do wrong (see kFaults below)
//   IPCBENCH_FAKE_PEER_AFTER=K   good data replies (echoes, acknowledgements)
//                                after the first statistics request, i.e.
//                                inside the first trial, before the fault
//                                (default 0)
//   IPCBENCH_FAKE_PEER_MAX_MESSAGE=N  misbehave only in cases whose
//                                --max-message is N; every other case gets
//                                the real peer (exec of IPCBENCH_BINARY)
//   IPCBENCH_FAKE_PEER_BYTES=N   size of an "oversized" / "huge" reply; the
//                                peer then connects with a limit of N (only
//                                for mechanisms whose limit is local: udp,
//                                uds-seqpacket)
//   IPCBENCH_FAKE_PEER_LOG=PATH  appends "start <mech> <pid> <ns>" on start
//                                and "fault <mech> <fault> <pid> <ns>
//                                <reply-ns>" when it misbehaves
//                                (CLOCK_MONOTONIC ns; reply-ns: when it began
//                                to send its last good echo or
//                                acknowledgement, 0 if none), so the test
//                                knows the fault really happened, when, and
//                                which process to look for afterwards.
//
// After the fault it goes on serving correctly (one bad message among good
// ones is the hardest case to catch), except "silent", which keeps reading
// but never answers again. "late" is no error at all: a lossy mechanism's
// runner must take its reply as a late latency sample, not a loss. It
// never writes the fault's name to stderr: the runner quotes a dead peer's
// stderr in its error, and the tests check that the runner itself names
// what was wrong.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/core/protocol.hpp"
#include "bench/core/sysinfo.hpp"
#include "bench/peer/peer.hpp"
#include "boost_mq_lock.hpp"
#include "mechanisms/channels/stream_framing.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/registry.hpp"

#ifndef IPCBENCH_BINARY
#error "IPCBENCH_BINARY must name the real ipcbench executable"
#endif

namespace ipcbench {
namespace {

// The faults, applied to one reply (an echo or an acknowledgement):
//   wrong-seq       header seq + 1000 (a number never sent)
//   wrong-kind      header kind says kStatsReply
//   wrong-length    consistent but 8 bytes short (header length says so too)
//   truncated       the first half only; the header still says the whole
//   short-header    7 bytes, less than a header
//   oversized       a consistent message 64 bytes (or IPCBENCH_FAKE_PEER_BYTES)
//                   longer than asked; byte streams: a raw frame whose length
//                   prefix is one above the limit
//   garbage         random bytes of the reply's size; byte streams: random
//                   bytes written straight to the socket, framing included
//   duplicate       the reply, sent twice
//   bad-payload     one payload byte flipped (caught with --verify full)
//   bad-stamp       an async echo's send stamp moved 1 ms earlier
//   late            an echo sent unchanged but 300 ms late (sleep, then
//                   send), beyond the runner's 200 ms loss timeout for
//                   lossy mechanisms (bench/measure/patterns.cpp): there it is a
//                   late reply, a sample and not a loss; serving goes on
//   close-mid-frame stream sockets: a frame's length and half its payload,
//                   then the write side shut down (the process stays)
//   silent          no reply, ever again (but keeps reading)
//   die-holding-lock  boost-mq: takes the mutex of the queue the reply goes
//                   on, then dies of SIGKILL holding it (Boost's mutex is
//                   not robust: the runner's next call on it would block
//                   for good)
constexpr std::string_view kFaults[] = {
    "wrong-seq",       "wrong-kind", "wrong-length",     "truncated",   "short-header",
    "oversized",       "garbage",    "duplicate",        "bad-payload", "bad-stamp",
    "close-mid-frame", "silent",     "die-holding-lock", "late"};

// "late": how late the reply is; the runner gives a lossy reply up after
// 200 ms (kLossTimeout in bench/measure/patterns.cpp).
constexpr std::chrono::milliseconds kLateBy{300};

struct FakeOptions {
  PeerOptions peer;
  std::string fault;
  std::uint64_t after = 0;
  std::size_t bytes = 0;  // 0: unset
  std::string log;
};

std::uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void log_line(const FakeOptions& o, const std::string& line) {
  if (o.log.empty()) return;
  const int fd = ::open(o.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return;
  const std::string text = line + "\n";
  (void)!::write(fd, text.data(), text.size());  // one write: lines never interleave
  ::close(fd);
}

// Writes all of `bytes` straight to a stream descriptor, around the framing
// (SIGPIPE is ignored: a closed runner fails the write).
void write_raw(int fd, const std::byte* bytes, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, bytes, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw PeerLost("raw write failed");
    }
    bytes += w;
    n -= static_cast<std::size_t>(w);
  }
}

class FakePeer {
 public:
  FakePeer(Channel& ch, const FakeOptions& o, bool stream)
      : ch_(ch),
        o_(o),
        stream_(stream),
        buf_(std::max({o.peer.max_message, kControlBytes, o.bytes})),
        control_(std::max<std::size_t>(kControlBytes, o.bytes)) {}

  int serve() {
    send_control_now(0, Kind::kHello,
                     HelloPayload{static_cast<std::int32_t>(::getpid()), current_cpu()});
    std::uint32_t expected = 1;
    for (;;) {
      const std::size_t n = ch_.receive(buf_);
      if (n < kHeaderBytes) return kPeerExitVerify;
      const MessageHeader h = read_header(buf_.data());
      const bool gap = o_.peer.lossy && static_cast<std::int32_t>(h.seq - expected) > 0;
      if ((h.seq != expected && !gap) || length_of(h) != n) return kPeerExitVerify;
      expected = h.seq + 1;
      switch (kind_of(h)) {
        case Kind::kEcho:
        case Kind::kEchoStamped:
          ++received_;
          reply({buf_.data(), n});
          break;
        case Kind::kSink:
          ++received_;
          break;
        case Kind::kSinkAck:
          ++received_;
          ack(h.seq);
          break;
        case Kind::kCount:
          ack(h.seq);
          break;
        case Kind::kOneWay: {
          // One sample per echo received, at a plausible 1 us.
          OneWayPayload p{};
          p.count = oneway_;
          p.min_ns = p.max_ns = oneway_ > 0 ? 1000 : 0;
          p.mean_ns = oneway_ > 0 ? 1000.0 : 0.0;
          for (auto& v : p.value_ns) v = p.min_ns;
          send_control(h.seq, Kind::kOneWayReply, p);
          break;
        }
        case Kind::kStats:
          received_ = 0;
          oneway_ = 0;
          trial_started_ = true;
          send_control(h.seq, Kind::kStatsReply, process_usage());
          break;
        case Kind::kBye:
          return 0;
        default:
          return kPeerExitVerify;
      }
    }
  }

 private:
  // True when this reply is the one to spoil (and counts the good ones).
  bool spoil_now() {
    if (silent_) return false;
    if (done_ || !trial_started_) return false;
    if (good_ < o_.after) {
      ++good_;
      return false;
    }
    done_ = true;
    log_line(o_, "fault " + o_.peer.mechanism + " " + o_.fault + " " + std::to_string(::getpid()) +
                     " " + std::to_string(monotonic_ns()) + " " + std::to_string(last_reply_ns_));
    return true;
  }

  void reply(std::span<std::byte> msg) {
    const bool stamped = kind_of(read_header(msg.data())) == Kind::kEchoStamped;
    if (stamped) ++oneway_;
    if (silent_) return;
    // bad-stamp waits for a stamped echo (async latency).
    if ((o_.fault != "bad-stamp" || stamped) && spoil_now()) {
      spoil(msg);
      return;
    }
    last_reply_ns_ = monotonic_ns();
    ch_.send(msg);
  }

  void ack(std::uint32_t seq) {
    if (silent_) return;
    std::byte* b = control_.data();
    write_header(b, seq, kControlBytes, Kind::kAck);
    const AckPayload p{received_};
    std::memcpy(b + kHeaderBytes, &p, sizeof p);
    // bad-stamp, bad-payload and late spoil echoes only.
    const bool echo_only =
        o_.fault == "bad-stamp" || o_.fault == "bad-payload" || o_.fault == "late";
    if (!echo_only && spoil_now()) {
      spoil({b, kControlBytes});
      return;
    }
    last_reply_ns_ = monotonic_ns();
    ch_.send({b, kControlBytes});
  }

  template <typename Payload>
  void send_control(std::uint32_t seq, Kind kind, const Payload& p) {
    if (silent_) return;
    send_control_now(seq, kind, p);
  }

  template <typename Payload>
  void send_control_now(std::uint32_t seq, Kind kind, const Payload& p) {
    std::vector<std::byte> b(kControlBytes);
    write_header(b.data(), seq, kControlBytes, kind);
    std::memcpy(b.data() + kHeaderBytes, &p, sizeof p);
    ch_.send(b);
  }

  // Sends `msg` spoilt as the fault says.
  void spoil(std::span<std::byte> msg) {
    const MessageHeader h = read_header(msg.data());
    const std::size_t n = msg.size();
    const std::string& f = o_.fault;
    std::vector<std::byte> out(msg.begin(), msg.end());
    if (f == "wrong-seq") {
      write_header(out.data(), h.seq + 1000, n, kind_of(h), h.stamp);
    } else if (f == "wrong-kind") {
      write_header(out.data(), h.seq, n, Kind::kStatsReply, h.stamp);
    } else if (f == "wrong-length") {
      out.resize(n - 8);
      write_header(out.data(), h.seq, n - 8, kind_of(h), h.stamp);
    } else if (f == "truncated") {
      out.resize(std::max(kHeaderBytes, n / 2));
    } else if (f == "short-header") {
      out.resize(7);
    } else if (f == "oversized") {
      if (stream_) {
        // A length prefix one above the limit, then a little payload.
        const std::uint32_t len = htole32(static_cast<std::uint32_t>(o_.peer.max_message + 1));
        std::vector<std::byte> raw(kFrameHeaderBytes + n);
        std::memcpy(raw.data(), &len, sizeof len);
        std::memcpy(raw.data() + kFrameHeaderBytes, msg.data(), n);
        write_raw(ch_.send_fd(), raw.data(), raw.size());
        return;
      }
      const std::size_t big = o_.bytes > 0 ? o_.bytes : n + 64;
      out.resize(big, std::byte{0x33});
      write_header(out.data(), h.seq, big, kind_of(h), h.stamp);
    } else if (f == "garbage") {
      std::mt19937 rng(12345);
      for (auto& b : out) b = static_cast<std::byte>(rng());
      if (stream_) {
        write_raw(ch_.send_fd(), out.data(), out.size());
        return;
      }
    } else if (f == "duplicate") {
      ch_.send(out);
    } else if (f == "bad-payload") {
      if (n > kHeaderBytes) out[n - 1] ^= std::byte{0x01};
    } else if (f == "bad-stamp") {
      write_header(out.data(), h.seq, n, kind_of(h), h.stamp - 1'000'000);
    } else if (f == "close-mid-frame") {
      const std::uint32_t len = htole32(static_cast<std::uint32_t>(n));
      std::vector<std::byte> raw(kFrameHeaderBytes + n / 2);
      std::memcpy(raw.data(), &len, sizeof len);
      std::memcpy(raw.data() + kFrameHeaderBytes, msg.data(), n / 2);
      write_raw(ch_.send_fd(), raw.data(), raw.size());
      ::shutdown(ch_.send_fd(), SHUT_WR);
      silent_ = true;  // nothing more can be said on this stream
      return;
    } else if (f == "silent") {
      silent_ = true;
      return;
    } else if (f == "die-holding-lock") {
      die_holding_queue_lock(o_.peer.address + ".up");
    } else if (f == "late") {
      // The reply itself is good; only its time is not. The runner's
      // messages meanwhile wait in the channel and are served after it.
      std::this_thread::sleep_for(kLateBy);
    }
    ch_.send(out);
  }

  Channel& ch_;
  const FakeOptions& o_;
  bool stream_;
  std::vector<std::byte> buf_;
  std::vector<std::byte> control_;
  std::uint64_t received_ = 0;  // data messages since the last kStats
  std::uint64_t oneway_ = 0;    // stamped echoes since the last kStats
  std::uint64_t good_ = 0;      // good replies since the first kStats
  bool trial_started_ = false;
  bool done_ = false;
  bool silent_ = false;
  // Before the send: the runner cannot take (and count as progress) a reply
  // before this instant.
  std::uint64_t last_reply_ns_ = 0;
};

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

int run(int argc, char** argv) {
  FakeOptions o;
  std::string verify = "header";
  for (int i = 2; i < argc; ++i) {
    const std::string_view a = argv[i];
    const auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--mechanism") {
      o.peer.mechanism = value();
    } else if (a == "--address") {
      o.peer.address = value();
    } else if (a == "--cpu") {
      o.peer.cpu = std::stoi(value());
    } else if (a == "--max-message") {
      o.peer.max_message = std::stoull(value());
    } else if (a == "--verify") {
      verify = value();
    } else if (a == "--parent") {
      o.peer.parent = static_cast<pid_t>(std::stol(value()));
    } else if (a == "--lossy") {
      o.peer.lossy = true;
    } else if (a == "--same-cpu") {
      o.peer.same_cpu = true;
    } else {
      std::fprintf(stderr, "fake peer: unknown argument %s\n", argv[i]);
      return 1;
    }
  }
  o.peer.verify_full = verify == "full";
  o.fault = env("IPCBENCH_FAKE_PEER");
  const std::string only = env("IPCBENCH_FAKE_PEER_MAX_MESSAGE");
  if (o.fault.empty() || (!only.empty() && std::stoull(only) != o.peer.max_message)) {
    // Not a case to spoil: the real peer serves it.
    argv[0] = const_cast<char*>(IPCBENCH_BINARY);
    ::execv(IPCBENCH_BINARY, argv);
    std::perror("fake peer: exec of the real peer failed");
    return 1;
  }
  if (std::find(std::begin(kFaults), std::end(kFaults), o.fault) == std::end(kFaults)) {
    std::fprintf(stderr, "fake peer: unknown IPCBENCH_FAKE_PEER value\n");
    return 1;
  }
  const std::string after = env("IPCBENCH_FAKE_PEER_AFTER");
  if (!after.empty()) o.after = std::stoull(after);
  const std::string bytes = env("IPCBENCH_FAKE_PEER_BYTES");
  if (!bytes.empty()) o.bytes = std::stoull(bytes);
  o.log = env("IPCBENCH_FAKE_PEER_LOG");

  if (o.peer.parent > 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != o.peer.parent) return kPeerExitRunnerLost;
  }
  std::signal(SIGPIPE, SIG_IGN);
  log_line(o, "start " + o.peer.mechanism + " " + std::to_string(::getpid()) + " " +
                  std::to_string(monotonic_ns()));
  try {
    if (o.peer.cpu >= 0) pin_current_thread(o.peer.cpu);
    Mechanism* mech = find_mechanism(o.peer.mechanism);
    if (mech == nullptr) return 1;
    const bool stream = mech->capabilities().boundaries == Boundaries::kStream;
    const std::size_t limit = std::max(o.peer.max_message, kControlBytes);
    auto channel = mech->connect(o.peer.address, {.max_message = std::max(limit, o.bytes),
                                                  .timeout = o.peer.timeout,
                                                  .same_cpu = o.peer.same_cpu});
    FakePeer peer(*channel, o, stream);
    return peer.serve();
  } catch (const PeerLost&) {
    return kPeerExitRunnerLost;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fake peer: %s\n", e.what());
    return 1;
  }
}

}  // namespace
}  // namespace ipcbench

int main(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]) != "peer") {
    std::fprintf(stderr, "usage: fake_peer peer --mechanism M --address A ...\n");
    return 2;
  }
  return ipcbench::run(argc, argv);
}
