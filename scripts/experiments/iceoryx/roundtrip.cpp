// Experiment (not built by CMake): a minimal iceoryx 2.0.3 request/response
// round trip written directly on iceoryx's C++ API, the reference loop the
// iceoryx cross-check compares ipcbench against. One program, two roles:
//
//   roundtrip server [--cpu N] [--wait poll|waitset|listener]
//   roundtrip client [--cpu N] [--wait poll|waitset] [--size BYTES]
//                    [--count N] [--warmup N] [--fill full|seq]
//
// Both need a running RouDi (iox-roudi); run.sh beside this file builds the
// program and runs RouDi, server and client in private mount+PID namespaces.
//
// The client loans a request chunk of --size bytes (zero-copy: loan, write in
// place, send), the server takes it, loans a response of the same size with
// the request's header (that is what routes it back to this client), copies
// the request payload into it, sends it and releases the request. The client
// waits for the response (busy-polling take(), or blocked in a WaitSet),
// checks the sequence number in the first 8 bytes (and the request header's
// sequence id echoed in the response header), releases it, and records the
// round trip (CLOCK_MONOTONIC, from before the loan to after the take). At the
// end it prints p50/p90/p99 in ns, then sends a stop request (sequence
// ~0) that the server echoes before it exits.
//
// --fill full (default): the client writes the whole payload and the server
// copies the whole payload into the response (an echo of the message, as a
// copying transport does); --fill seq: only the first 8 bytes are written and
// copied (pure zero-copy: the size then only chooses the mempool).
//
// UntypedClient/UntypedServer are used rather than the typed Client<Req,Res>
// because the message size is a run-time option; the typed API is the same
// sequence with Request<T>/Response<T> smart chunks (loan() -> write ->
// request.send(); server.take() -> server.loan(request) -> response.send()).
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_hoofs/posix_wrapper/semaphore.hpp"
#include "iceoryx_posh/mepoo/chunk_header.hpp"
#include "iceoryx_posh/popo/listener.hpp"
#include "iceoryx_posh/popo/rpc_header.hpp"
#include "iceoryx_posh/popo/untyped_client.hpp"
#include "iceoryx_posh/popo/untyped_server.hpp"
#include "iceoryx_posh/popo/wait_set.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"

namespace {

constexpr std::uint64_t kStop = ~0ull;
constexpr std::uint32_t kAlign = alignof(std::uint64_t);
const iox::capro::ServiceDescription kService{"ipcbench", "roundtrip", "echo"};

struct Options {
  std::string role;
  std::uint32_t size = 64;
  std::uint64_t count = 200000;
  std::uint64_t warmup = 10000;
  int cpu = -1;
  std::string wait = "poll";
  bool full = true;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "roundtrip: %s\n", what.c_str());
  std::exit(1);
}

std::uint64_t now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<std::uint64_t>(t.tv_sec) * 1000000000ull +
         static_cast<std::uint64_t>(t.tv_nsec);
}

void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0)
    die("sched_setaffinity: " + std::string(std::strerror(errno)));
}

Options parse(int argc, char** argv) {
  Options o;
  if (argc < 2)
    die("usage: roundtrip server|client [--size B] [--count N] [--warmup N] [--cpu N] [--wait "
        "poll|waitset|listener] [--fill full|seq]");
  o.role = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) die("missing value for " + a);
    const std::string v = argv[++i];
    if (a == "--size")
      o.size = static_cast<std::uint32_t>(std::stoul(v));
    else if (a == "--count")
      o.count = std::stoull(v);
    else if (a == "--warmup")
      o.warmup = std::stoull(v);
    else if (a == "--cpu")
      o.cpu = std::stoi(v);
    else if (a == "--wait")
      o.wait = v;
    else if (a == "--fill")
      o.full = (v == "full");
    else
      die("unknown option " + a);
  }
  if (o.role != "server" && o.role != "client") die("role must be server or client");
  if (o.size < 8) die("--size must be at least 8 (the sequence number)");
  if (o.wait != "poll" && o.wait != "waitset" && !(o.wait == "listener" && o.role == "server"))
    die("--wait must be poll or waitset (or listener, server only)");
  return o;
}

// ---- server -----------------------------------------------------------------

struct ServerContext {
  bool full = true;
  std::uint64_t answered = 0;
  iox::posix::Semaphore* done = nullptr;  // listener mode: posted on the stop request
};

// Takes every pending request and answers it; returns true once the stop
// request was answered.
bool serve_pending(iox::popo::UntypedServer& server, ServerContext& ctx) {
  bool stop = false;
  for (;;) {
    auto taken = server.take();
    if (taken.has_error()) return stop;  // NO_PENDING_REQUESTS (or too many held)
    const void* request = taken.value();
    const auto* header = iox::popo::RequestHeader::fromPayload(request);
    const std::uint32_t n = iox::mepoo::ChunkHeader::fromUserPayload(request)->userPayloadSize();
    auto loaned = server.loan(header, n, kAlign);  // the request header routes the response
    if (loaned.has_error())
      die("server loan failed: " + std::to_string(static_cast<int>(loaned.get_error())));
    void* response = loaned.value();
    std::memcpy(response, request, ctx.full ? n : sizeof(std::uint64_t));
    std::uint64_t seq;
    std::memcpy(&seq, request, sizeof seq);
    server.releaseRequest(request);
    auto sent = server.send(response);  // on error the chunk is released by iceoryx
    if (sent.has_error())
      die("server send failed: " + std::to_string(static_cast<int>(sent.get_error())));
    ++ctx.answered;
    if (seq == kStop) stop = true;
  }
}

void on_request(iox::popo::UntypedServer* server, ServerContext* ctx) {
  if (serve_pending(*server, *ctx))
    ctx->done->post().or_else([](auto) { die("semaphore post failed"); });
}

int run_server(const Options& o) {
  iox::popo::ServerOptions options;  // defaults: request queue 1024, DISCARD_OLDEST_DATA
  // Offer only once the WaitSet/Listener is attached: in 2.0.x a request that
  // is already queued when attachState/attachEvent is called never wakes
  // them (iceoryx issue #1855), and the client may connect and send at once.
  options.offerOnCreate = false;
  iox::popo::UntypedServer server(kService, options);
  ServerContext ctx;
  ctx.full = o.full;

  if (o.wait == "poll") {
    server.offer();
    while (!serve_pending(server, ctx)) {
      if (!server.hasRequests()) _mm_pause();
    }
  } else if (o.wait == "waitset") {
    iox::popo::WaitSet<> waitset;
    waitset.attachState(server, iox::popo::ServerState::HAS_REQUEST).or_else([](auto) {
      die("waitset attach failed");
    });
    server.offer();
    while (!serve_pending(server, ctx)) waitset.wait();
    waitset.detachState(server, iox::popo::ServerState::HAS_REQUEST);
  } else {  // listener: the answer is sent from the Listener's own thread
    auto sem = iox::posix::Semaphore::create(iox::posix::CreateUnnamedSingleProcessSemaphore, 0U);
    if (sem.has_error()) die("semaphore create failed");
    ctx.done = &sem.value();
    iox::popo::Listener listener;
    listener
        .attachEvent(server, iox::popo::ServerEvent::REQUEST_RECEIVED,
                     iox::popo::createNotificationCallback(on_request, ctx))
        .or_else([](auto) { die("listener attach failed"); });
    server.offer();
    sem.value().wait().or_else([](auto) { die("semaphore wait failed"); });
    listener.detachEvent(server, iox::popo::ServerEvent::REQUEST_RECEIVED);
  }
  std::printf("server (wait=%s) answered %llu requests\n", o.wait.c_str(),
              static_cast<unsigned long long>(ctx.answered));
  return 0;
}

// ---- client -----------------------------------------------------------------

struct Client {
  iox::popo::UntypedClient& client;
  iox::popo::WaitSet<>* waitset;  // null: busy-poll
  std::uint32_t size;
  bool full;
  std::uint64_t empty_waits = 0;  // WaitSet returns without a response

  // One round trip; returns its duration in ns.
  std::uint64_t round_trip(std::uint64_t seq) {
    const std::uint64_t t0 = now_ns();
    auto loaned = client.loan(size, kAlign);
    if (loaned.has_error())
      die("client loan failed: " + std::to_string(static_cast<int>(loaned.get_error())));
    void* request = loaned.value();
    std::memcpy(request, &seq, sizeof seq);
    if (full)
      std::memset(static_cast<char*>(request) + sizeof seq, static_cast<int>(seq & 0xff),
                  size - sizeof seq);
    iox::popo::RequestHeader::fromPayload(request)->setSequenceId(static_cast<std::int64_t>(seq));
    auto sent = client.send(request);  // ownership passes to iceoryx, also on error
    if (sent.has_error())
      die("client send failed: " + std::to_string(static_cast<int>(sent.get_error())));

    const void* response = nullptr;
    std::uint64_t spins = 0;
    for (;;) {
      auto taken = client.take();
      if (!taken.has_error()) {
        response = taken.value();
        break;
      }
      if (waitset != nullptr) {
        // Returns empty on a timeout, and also when it only collected an
        // older notification: take() again either way.
        if (waitset->timedWait(iox::units::Duration::fromMilliseconds(100)).empty()) ++empty_waits;
      } else {
        _mm_pause();
      }
      if ((++spins & (waitset != nullptr ? 0 : 0xfffff)) == 0 && now_ns() - t0 > 5000000000ull)
        die("no response within 5 s (seq " + std::to_string(seq) + ", " +
            std::to_string(empty_waits) + " empty WaitSet returns so far)");
    }
    const std::uint64_t t1 = now_ns();

    std::uint64_t got;
    std::memcpy(&got, response, sizeof got);
    const auto* rh = iox::popo::ResponseHeader::fromPayload(response);
    const std::uint32_t n = iox::mepoo::ChunkHeader::fromUserPayload(response)->userPayloadSize();
    if (got != seq || rh->getSequenceId() != static_cast<std::int64_t>(seq) || n != size)
      die("bad response: seq " + std::to_string(got) + " header seq " +
          std::to_string(rh->getSequenceId()) + " size " + std::to_string(n) + ", expected seq " +
          std::to_string(seq));
    if (full && size > sizeof seq &&
        static_cast<const unsigned char*>(response)[size - 1] !=
            static_cast<unsigned char>(seq & 0xff))
      die("corrupted payload (seq " + std::to_string(seq) + ")");
    client.releaseResponse(response);
    return t1 - t0;
  }
};

int run_client(const Options& o) {
  iox::popo::ClientOptions
      options;  // defaults: response queue 16, DISCARD_OLDEST_DATA, connectOnCreate
  iox::popo::UntypedClient client(kService, options);

  // The connection is made by RouDi's discovery loop once the server offers.
  const std::uint64_t start = now_ns();
  while (client.getConnectionState() != iox::ConnectionState::CONNECTED) {
    if (now_ns() - start > 10000000000ull) die("not connected to the server within 10 s");
    usleep(1000);
  }
  const double connect_ms = static_cast<double>(now_ns() - start) / 1e6;

  iox::popo::WaitSet<>* waitset = nullptr;
  iox::cxx::optional<iox::popo::WaitSet<>> ws;
  if (o.wait == "waitset") {
    ws.emplace();
    ws->attachState(client, iox::popo::ClientState::HAS_RESPONSE).or_else([](auto) {
      die("waitset attach failed");
    });
    waitset = &ws.value();
  }

  Client c{client, waitset, o.size, o.full};
  std::uint64_t seq = 0;
  for (std::uint64_t i = 0; i < o.warmup; ++i) c.round_trip(seq++);
  std::vector<std::uint64_t> rtt;
  rtt.reserve(o.count);
  const std::uint64_t t_begin = now_ns();
  for (std::uint64_t i = 0; i < o.count; ++i) rtt.push_back(c.round_trip(seq++));
  const double seconds = static_cast<double>(now_ns() - t_begin) / 1e9;

  // Stop the server: it echoes the stop request, then exits.
  c.round_trip(kStop);
  if (waitset != nullptr) ws->detachState(client, iox::popo::ClientState::HAS_RESPONSE);

  std::sort(rtt.begin(), rtt.end());
  auto pct = [&](double p) {
    if (rtt.empty()) return std::uint64_t{0};
    const auto k = static_cast<std::size_t>(p / 100.0 * static_cast<double>(rtt.size() - 1) + 0.5);
    return rtt[std::min(k, rtt.size() - 1)];
  };
  std::printf(
      "iceoryx rr size=%u wait=%s fill=%s count=%zu p50=%llu p90=%llu p99=%llu min=%llu max=%llu ns"
      " (%.2f s, connect %.1f ms%s)\n",
      o.size, o.wait.c_str(), o.full ? "full" : "seq", rtt.size(),
      static_cast<unsigned long long>(pct(50)), static_cast<unsigned long long>(pct(90)),
      static_cast<unsigned long long>(pct(99)), static_cast<unsigned long long>(rtt.front()),
      static_cast<unsigned long long>(rtt.back()), seconds, connect_ms,
      waitset != nullptr ? (", " + std::to_string(c.empty_waits) + " empty WaitSet returns").c_str()
                         : "");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  // The Debian build logs at debug level by default (segment registration,
  // RouDi's clean-up notes); keep stdout for the result.
  iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn);
  // Pin first: the runtime's keep-alive thread (and a Listener's thread)
  // inherit the affinity of the thread that creates them.
  pin(o.cpu);
  // One runtime per process, named uniquely among RouDi's processes; blocks
  // (retrying) until RouDi answers the registration.
  const std::string name = "ipcbench-roundtrip-" + o.role;
  iox::runtime::PoshRuntime::initRuntime(iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name));
  return o.role == "server" ? run_server(o) : run_client(o);
}
