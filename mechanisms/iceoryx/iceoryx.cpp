// iceoryx: request/response through iceoryx 2.0.3's shared-memory middleware
// (popo::UntypedClient / UntypedServer), with a RouDi of the run's own
// (mechanisms/iceoryx/roudi.hpp: a private mount namespace, stopped with
// the run, so nothing of it is named on the machine).
//
// Roles: the listener (the runner) is the client and the connector (the
// peer) the server, so the runner's direction (requests: pings, streams)
// has the deep queue (1024; responses hold at most 16). A response needs a
// request to route by, so the server keeps the client's hello request for
// the whole connection and loans every response against it: the peer can
// send without being asked. The handshake: the client waits until the
// server is there (CONNECTED), sends its hello (its pid, the windows), the
// server answers with its own (its pid).
//
// Every frame is one chunk: a Frame header, then the message. The loan API
// (Channel::loan, receive_view) makes it 0 copies: loan() hands out the
// chunk's message bytes, send_loaned() writes the Frame before them and
// sends the chunk; receive_view() takes a chunk and views its message until
// release_view(). send() loans a chunk and copies the message in; receive()
// takes one and copies the message out (2 copies).
//
// No loss, no deadlock. A full iceoryx queue drops its oldest entry by
// default, and its blocking policy spins inside send (no "would block" for
// try_send, and two sides sending into full queues would deadlock), so the
// channel keeps its own credits: a side sends data while fewer than its
// window of data frames are unreported by the peer; every frame reports
// how many data frames its sender has taken, and a side that has taken
// half the peer's window without reporting sends a credit frame. A credit
// reports only data, so at most two are ever in flight per direction (each
// reports half a window the peer has not seen reported), and a window is
// its queue's capacity less a reserve for them and the closing frame. A
// blocked send takes what arrives into the channel's own staging (a
// second copy), so crossing streams always progress. Every frame carries
// its sequence number: a lost or repeated frame is a ProtocolError, never
// a silent gap. Windows are also capped by RouDi's chunks for the largest
// message, so a loan does not run out.
//
// Waiting: take() first; then, with a spin budget (--spin-budget, the
// listener's, sent in its hello; none when both sides share a CPU), that
// many looks at the queue; then a WaitSet on "has a request/response" in
// slices of 20 ms, between which an interrupt (the harness's watchdog) or
// the peer's exit (a pidfd) ends the wait with PeerLost. Not pollable.
// Closing sends a bye frame; the peer's next receive then throws PeerLost.
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "mechanisms/mechanism.hpp"

#ifdef IPCBENCH_HAVE_ICEORYX
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <iceoryx_posh/mepoo/chunk_header.hpp>
#include <iceoryx_posh/popo/rpc_header.hpp>
#include <iceoryx_posh/popo/untyped_client.hpp>
#include <iceoryx_posh/popo/untyped_server.hpp>
#include <iceoryx_posh/popo/wait_set.hpp>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "mechanisms/iceoryx/roudi.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/ring_queue.hpp"
#include "mechanisms/posix/spin.hpp"
#include "mechanisms/posix/syscall_tally.hpp"
#include "mechanisms/posix/time.hpp"
#endif

namespace ipcbench::mech {
namespace {

#ifdef IPCBENCH_HAVE_ICEORYX

namespace ice = ipcbench::mech::iceoryx;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t kRequestQueue = ::iox::MAX_REQUEST_QUEUE_CAPACITY;    // 1024
constexpr std::size_t kResponseQueue = ::iox::MAX_RESPONSE_QUEUE_CAPACITY;  // 16
// Queue entries a window leaves free: two credits and the bye (see above).
constexpr std::size_t kQueueReserve = 4;
// RouDi's chunks of the largest message's pool that the windows leave free:
// each side's loan being written, each side's view being read (a data frame
// taken is reported before its chunk is released: any frame we send says
// so), the last chunk each sending port keeps for reuse (iceoryx's
// ChunkSender), the kept hello.
constexpr std::size_t kChunkReserve = 7;
// How long a loan refused for want of chunks waits before the next try
// (chunks come back as the peer releases them, which wakes nothing here).
constexpr auto kStarvedPause = 50us;
constexpr auto kSlice = 20ms;
constexpr std::uint32_t kAlign = 8;

enum class Kind : std::uint32_t {
  kHello = 0x4f4c4548,   // "HELO": a Hello follows
  kData = 0x41544144,    // "DATA": `length` bytes of message follow
  kCredit = 0x54444552,  // "REDT": only the report
  kBye = 0x20455942,     // "BYE ": the sender closed its channel
};
struct Frame {
  Kind kind = Kind::kData;
  std::uint32_t length = 0;  // message bytes after the header
  std::uint64_t seq = 0;     // frames of this direction before this one
  std::uint64_t taken = 0;   // data frames of the other direction its sender has taken
};
static_assert(sizeof(Frame) == 24, "a frame header is 24 bytes on every ABI we build for");
struct Hello {
  std::uint64_t pid = 0;
  std::uint32_t request_window = 0;   // client -> server data frames in flight
  std::uint32_t response_window = 0;  // server -> client
  std::uint64_t max_message = 0;
  std::uint32_t spin_budget = 0;  // the listener's, for both sides
  std::uint32_t reserved = 0;
};

struct Windows {
  std::uint32_t request = 1;
  std::uint32_t response = 1;
};

// The windows for messages of up to `max_message` bytes: the queues less
// their reserve, and both together within the chunks of the largest
// message's pool.
Windows windows_for(std::size_t max_message) {
  const std::size_t chunks = ice::pool_chunks(sizeof(Frame) + max_message);
  const std::size_t spare = chunks > kChunkReserve ? chunks - kChunkReserve : 0;
  Windows w;
  w.response = static_cast<std::uint32_t>(
      std::clamp<std::size_t>(spare / 3, 1, kResponseQueue - kQueueReserve));
  w.request = static_cast<std::uint32_t>(std::clamp<std::size_t>(
      spare > w.response ? spare - w.response : 0, 1, kRequestQueue - kQueueReserve));
  return w;
}

void check_max_message(std::size_t max_message) {
  if (max_message > ice::kMaxMessage) {
    throw std::invalid_argument("iceoryx messages are limited to " +
                                std::to_string(ice::kMaxMessage) + " bytes (RouDi's largest " +
                                "mempool), not " + std::to_string(max_message));
  }
}

// The service's instance name: the listener's tag and a count of this
// process's listeners, so it is never one a dead peer's server may still
// offer (RouDi removes a dead process's ports only once it notices); a hash
// of the tag when it is too long for iceoryx's 100 characters.
std::string instance_for(const std::string& tag) {
  static std::uint64_t listeners = 0;
  const std::string count = "." + std::to_string(++listeners);
  if (!tag.empty() && tag.size() + count.size() <= 100 && tag.find(':') == std::string::npos) {
    return tag + count;
  }
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
  for (const char c : tag) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return "h" + std::to_string(h) + count;
}

::iox::capro::ServiceDescription service_for(const std::string& instance) {
  return {"ipcbench", "channel",
          ::iox::capro::IdString_t(::iox::cxx::TruncateToCapacity, instance.c_str())};
}

posix::Fd open_pidfd(pid_t pid) {
  posix::Fd fd = posix::pidfd_open(pid);
  if (!fd) posix::throw_errno("iceoryx: cannot watch the peer process " + std::to_string(pid));
  return fd;
}

// A loan iceoryx refused: nullptr when it says "not now" (RouDi's pool is
// empty until the peer releases chunks, or the port's loan limit), else an
// error.
void* refused_loan(::iox::popo::AllocationError e, std::size_t size) {
  if (e == ::iox::popo::AllocationError::RUNNING_OUT_OF_CHUNKS ||
      e == ::iox::popo::AllocationError::TOO_MANY_CHUNKS_ALLOCATED_IN_PARALLEL) {
    return nullptr;
  }
  const char* why = "an undefined error";
  switch (e) {
    case ::iox::popo::AllocationError::NO_MEMPOOLS_AVAILABLE:
      why = "RouDi has no mempools";
      break;
    case ::iox::popo::AllocationError::INVALID_PARAMETER_FOR_USER_PAYLOAD_OR_USER_HEADER:
    case ::iox::popo::AllocationError::INVALID_PARAMETER_FOR_REQUEST_HEADER:
      why = "no mempool holds it (or a bad header)";
      break;
    default:
      break;
  }
  throw std::runtime_error("iceoryx: cannot loan a chunk of " + std::to_string(size) +
                           " bytes: " + why);
}

// Ports and WaitSets abandon() left undestroyed: listed (never freed) so a
// leak checker sees them reachable.
std::vector<const void*>& abandoned() {
  static auto* list = new std::vector<const void*>();
  return *list;
}

// What both ends of an iceoryx request/response connection share: the
// port (an UntypedClient or UntypedServer), a WaitSet attached to its
// "has a frame" state, and wait(). Both are made and destroyed in RouDi's
// namespace (their creation talks to RouDi; their destruction is done there
// too, to be safe), under the RuntimeHold of whoever owns this; or, when
// that RouDi was retired or is gone, abandoned (see abandon()).
template <typename PortT, typename StateT>
class PortBase {
 public:
  template <typename Options>
  PortBase(const ice::RoudiRef& roudi, const ::iox::capro::ServiceDescription& service,
           const Options& options, StateT state)
      : roudi_(roudi), state_(state) {
    ice::MountNamespaceScope in(roudi_);
    port_ = std::make_unique<PortT>(service, options);
    waitset_ = std::make_unique<::iox::popo::WaitSet<>>();
    // A frame queued before the attach would not wake the WaitSet
    // (iceoryx #1855): harmless here, every wait is preceded by a take().
    if (waitset_->attachState(*port_, state_).has_error()) {
      throw std::runtime_error("iceoryx: cannot attach a port to a WaitSet");
    }
  }
  PortBase(const PortBase&) = delete;
  PortBase& operator=(const PortBase&) = delete;
  ~PortBase() {
    if (!port_) return;  // abandoned
    std::optional<ice::MountNamespaceScope> in;
    try {
      if (!ice::roudi_retired(roudi_)) in.emplace(roudi_);
    } catch (const std::exception&) {
      // RouDi is gone.
    }
    if (!in) {
      abandon();
      return;
    }
    waitset_->detachState(*port_, state_);
    waitset_.reset();
    port_.reset();
  }

  const ice::RoudiRef& roudi() const { return roudi_; }

  // Leaves the port and its WaitSet undestroyed, for good: their teardown
  // takes locks in RouDi's memory that a stuck (or killed) RouDi may hold.
  // Two small objects leak; their memory in RouDi's segments goes with
  // that RouDi.
  void abandon() noexcept {
    const void* waitset = waitset_.release();
    const void* port = port_.release();
    try {
      abandoned().push_back(waitset);
      abandoned().push_back(port);
    } catch (const std::bad_alloc&) {
      // Unlisted, they leak all the same.
    }
  }

  // Whether the WaitSet was woken (false: the timeout, or a stale wake-up).
  bool wait(std::chrono::nanoseconds timeout) {
    return !waitset_
                ->timedWait(::iox::units::Duration::fromNanoseconds(
                    static_cast<unsigned long long>(std::max<std::int64_t>(timeout.count(), 0))))
                .empty();
  }

 protected:
  ice::RoudiRef roudi_;
  StateT state_;
  std::unique_ptr<PortT> port_;
  std::unique_ptr<::iox::popo::WaitSet<>> waitset_;  // after port_: destroyed first
};

// The ends behind one face: loan (nullptr when RouDi's pool or the port's
// loan limit says "not now"), unloan (a loan not sent), send, take (nullptr
// when nothing is queued), release, wait.
class ClientPort : public PortBase<::iox::popo::UntypedClient, ::iox::popo::ClientState> {
 public:
  ClientPort(const ice::RoudiRef& roudi, const ::iox::capro::ServiceDescription& service)
      : PortBase(roudi, service, options(), ::iox::popo::ClientState::HAS_RESPONSE) {}

  bool connected() const {
    return port_->getConnectionState() == ::iox::ConnectionState::CONNECTED;
  }
  bool has_frames() const { return port_->hasResponses(); }

  void* loan(std::size_t size) {
    auto r = port_->loan(static_cast<std::uint32_t>(size), kAlign);
    if (!r.has_error()) return r.value();
    return refused_loan(r.get_error(), size);
  }
  void send(void* chunk) {
    auto r = port_->send(chunk);  // the chunk is iceoryx's again, also on an error
    if (!r.has_error()) return;
    if (r.get_error() == ::iox::popo::ClientSendError::SERVER_NOT_AVAILABLE) {
      throw PeerLost("the iceoryx peer's server is gone");
    }
    throw std::runtime_error(std::string("iceoryx: the client's send failed: ") +
                             ::iox::popo::asStringLiteral(r.get_error()));
  }
  const void* take() {
    auto r = port_->take();
    if (!r.has_error()) return r.value();
    if (r.get_error() == ::iox::popo::ChunkReceiveResult::NO_CHUNK_AVAILABLE) return nullptr;
    throw std::runtime_error(std::string("iceoryx: the client's take failed: ") +
                             ::iox::popo::asStringLiteral(r.get_error()));
  }
  void release(const void* chunk) { port_->releaseResponse(chunk); }
  void unloan(void* chunk) { port_->releaseRequest(chunk); }

 private:
  static ::iox::popo::ClientOptions options() {
    ::iox::popo::ClientOptions o;
    o.responseQueueCapacity = kResponseQueue;
    return o;
  }
};

class ServerPort : public PortBase<::iox::popo::UntypedServer, ::iox::popo::ServerState> {
 public:
  ServerPort(const ice::RoudiRef& roudi, const ::iox::capro::ServiceDescription& service)
      : PortBase(roudi, service, options(), ::iox::popo::ServerState::HAS_REQUEST) {}
  ~ServerPort() {
    if (route_ != nullptr && port_) port_->releaseRequest(route_);
  }

  // The request every response is routed by (the client's hello), kept.
  void keep_route(const void* hello) { route_ = hello; }
  bool connected() const { return port_->hasClients(); }
  bool has_frames() const { return port_->hasRequests(); }

  void* loan(std::size_t size) {
    auto r = port_->loan(::iox::popo::RequestHeader::fromPayload(route_),
                         static_cast<std::uint32_t>(size), kAlign);
    if (!r.has_error()) return r.value();
    return refused_loan(r.get_error(), size);
  }
  void send(void* chunk) {
    auto r = port_->send(chunk);
    if (!r.has_error()) return;
    if (r.get_error() == ::iox::popo::ServerSendError::CLIENT_NOT_AVAILABLE) {
      throw PeerLost("the iceoryx peer's client is gone");
    }
    throw std::runtime_error(std::string("iceoryx: the server's send failed: ") +
                             ::iox::popo::asStringLiteral(r.get_error()));
  }
  const void* take() {
    auto r = port_->take();
    if (!r.has_error()) return r.value();
    const auto e = r.get_error();
    if (e == ::iox::popo::ServerRequestResult::NO_PENDING_REQUESTS ||
        e == ::iox::popo::ServerRequestResult::NO_PENDING_REQUESTS_AND_SERVER_DOES_NOT_OFFER) {
      return nullptr;
    }
    throw std::runtime_error(std::string("iceoryx: the server's take failed: ") +
                             ::iox::popo::asStringLiteral(e));
  }
  void release(const void* chunk) { port_->releaseRequest(chunk); }
  void unloan(void* chunk) { port_->releaseResponse(chunk); }

 private:
  static ::iox::popo::ServerOptions options() {
    ::iox::popo::ServerOptions o;
    o.requestQueueCapacity = kRequestQueue;
    return o;
  }

  const void* route_ = nullptr;
};

// The bytes of a chunk after its Frame, checked against the chunk's size.
std::uint32_t chunk_payload_size(const void* chunk) {
  return ::iox::mepoo::ChunkHeader::fromUserPayload(chunk)->userPayloadSize();
}

// take_frame()'s "a frame came, but not a message".
const char kControlTag = 0;
const void* const kControl = &kControlTag;

// Where each direction stands after the handshake.
struct Counts {
  std::uint64_t out_seq = 0;       // frames we have sent
  std::uint64_t out_data = 0;      // data frames we have sent
  std::uint64_t out_reported = 0;  // of those, taken by the peer (its last report)
  std::uint64_t in_seq = 0;        // frames we have taken
  std::uint64_t in_data = 0;       // data frames we have taken
  std::uint64_t in_reported = 0;   // the last count of them we reported
};

struct Staged {
  std::vector<std::byte> bytes;
};

template <typename Port>
class IceoryxChannel final : public Channel {
 public:
  IceoryxChannel(std::unique_ptr<ice::RuntimeHold> hold, std::unique_ptr<Port> port, pid_t peer,
                 std::size_t max_message, std::uint32_t out_window, std::uint32_t in_window,
                 std::uint32_t spin, Counts counts)
      : spin_(spin),
        hold_(std::move(hold)),
        port_(std::move(port)),
        peer_(peer),
        peer_fd_(open_pidfd(peer)),
        max_message_(max_message),
        out_window_(out_window),
        credit_after_(std::max<std::uint32_t>(1, (in_window + 1) / 2)),
        c_(counts) {}

  IceoryxChannel(const IceoryxChannel&) = delete;
  IceoryxChannel& operator=(const IceoryxChannel&) = delete;

  // Tells the peer we are gone (best effort: a pool without chunks is
  // retried for up to 20 ms; the peer then learns it from our exit). A peer
  // that exited without its bye may have died holding one of iceoryx's
  // locks, and RouDi may be stuck on it holding one of ours: then the RouDi
  // we started is killed (ice::retire_roudi) and the port abandoned, since
  // sending and the port's teardown take locks. Taking frames takes none.
  ~IceoryxChannel() override {
    // Exit first: once the peer is gone, whatever it sent is queued.
    const bool exited = peer_exited();
    if (exited && !bye_taken_ && !bye_queued()) {
      ice::retire_roudi(port_->roudi());
      port_->abandon();  // with any chunk loaned or viewed: RouDi's memory
      return;
    }
    release_view();
    if (loaned_ != nullptr) port_->unloan(std::exchange(loaned_, nullptr));
    if (exited) return;  // no one to tell
    try {
      for (int attempt = 0; attempt < 400 && !peer_closed_ && port_->connected(); ++attempt) {
        if (send_frame(Kind::kBye, {})) break;
        std::this_thread::sleep_for(kStarvedPause);
      }
    } catch (const std::exception&) {
    }
  }

  void send(std::span<const std::byte> message) override {
    check_size(message);
    for (;;) {
      if (peer_closed_) throw PeerLost("the iceoryx peer closed its channel");
      bool starved = false;
      if (window_open()) {
        if (send_frame(Kind::kData, message)) return;
        starved = true;  // RouDi's pool: chunks come back as the peer releases them
      }
      if (take_all_into_staging()) continue;
      starved_ = starved;
      wait_for_frames(kSlice);
    }
  }

  // The copying receives: a view, copied out.
  std::size_t receive(std::span<std::byte> buffer) override {
    return copy_out(receive_view(buffer), buffer);
  }
  std::optional<std::size_t> try_receive(std::span<std::byte> buffer) override {
    const auto view = try_receive_view(buffer);
    if (!view) return std::nullopt;
    return copy_out(*view, buffer);
  }

  bool try_send(std::span<const std::byte> message) override {
    check_size(message);
    if (!window_open_now()) return false;
    starved_ = !send_frame(Kind::kData, message);
    return !starved_;
  }

  // The message bytes of a chunk loaned for `size` bytes, the same chunk
  // until it is sent; `own` when RouDi's pool has none now (send_loaned
  // then copies it into a chunk as send() does).
  std::span<std::byte> loan(std::span<std::byte> own, std::size_t size) override {
    check_size(size);
    if (loaned_ != nullptr) {
      if (loaned_size_ == size) return loaned_message();
      port_->unloan(std::exchange(loaned_, nullptr));
    }
    void* chunk = port_->loan(sizeof(Frame) + size);
    if (chunk == nullptr) return own.first(size);
    loaned_ = chunk;
    loaned_size_ = size;
    return loaned_message();
  }

  void send_loaned(std::span<const std::byte> loaned) override {
    if (!is_loan(loaned)) return send(loaned);
    for (;;) {
      if (peer_closed_) throw PeerLost("the iceoryx peer closed its channel");
      if (window_open()) return send_loan();
      if (!take_all_into_staging()) wait_for_frames(kSlice);
    }
  }

  bool try_send_loaned(std::span<const std::byte> loaned) override {
    if (!is_loan(loaned)) return try_send(loaned);
    if (!window_open_now()) return false;
    send_loan();
    return true;
  }

  std::span<const std::byte> receive_view(std::span<std::byte> own) override {
    for (;;) {
      if (const auto v = try_receive_view(own)) return *v;
      wait_for_frames(kSlice);
    }
  }

  // A message taken early (by a blocked send) is already a copy: it is
  // copied once more into `own`, as try_receive does.
  std::optional<std::span<const std::byte>> try_receive_view(std::span<std::byte> own) override {
    release_view();
    rethrow_deferred();
    if (!staged_.empty()) return std::span<const std::byte>(own.first(serve_staged(own)));
    for (;;) {
      const void* chunk = take_frame();
      if (chunk == nullptr) break;
      if (chunk == kControl) continue;
      Frame f;
      std::memcpy(&f, chunk, sizeof f);
      viewed_ = chunk;
      return std::span<const std::byte>(static_cast<const std::byte*>(chunk) + sizeof f, f.length);
    }
    if (peer_closed_) throw PeerLost("the iceoryx peer closed its channel");
    return std::nullopt;
  }

  // Gives the viewed chunk back; the credit its message earned goes once
  // the chunk is free, as after a copy.
  void release_view() noexcept override {
    if (viewed_ == nullptr) return;
    port_->release(std::exchange(viewed_, nullptr));
    credit_if_due();
  }

  // True when a frame is queued (perhaps only a credit: a spurious true)
  // or staged, or the peer closed (the next call says so).
  bool wait_receivable(std::chrono::nanoseconds timeout) override {
    return wait_until(timeout, [this] { return !staged_.empty() || port_->has_frames(); });
  }
  // Room: the window is open and the last loan was not refused (after a
  // refusal, a wait pauses kStarvedPause and then says "try again").
  bool wait_sendable(std::chrono::nanoseconds timeout) override {
    return wait_until(timeout, [this] {
      if (!window_open()) take_all_into_staging();
      return window_open() && !starved_;
    });
  }
  bool wait_either(std::chrono::nanoseconds timeout) override {
    return wait_until(timeout, [this] {
      return !staged_.empty() || port_->has_frames() || (window_open() && !starved_);
    });
  }

  std::optional<std::size_t> receive_for(std::span<std::byte> buffer,
                                         std::chrono::nanoseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (const auto n = try_receive(buffer)) return n;
      if (!wait_receivable(deadline - Clock::now())) return std::nullopt;
    }
  }

 private:
  void check_size(std::span<const std::byte> message) const { check_size(message.size()); }
  void check_size(std::size_t size) const {
    if (size == 0 || size > max_message_) {
      throw std::invalid_argument("message of " + std::to_string(size) + " bytes outside 1.." +
                                  std::to_string(max_message_));
    }
  }

  std::span<std::byte> loaned_message() const {
    return {static_cast<std::byte*>(loaned_) + sizeof(Frame), loaned_size_};
  }
  // Whether `message` is the loan's memory (else the caller's: copied). A
  // loan is sent whole: its chunk's size says the message's.
  bool is_loan(std::span<const std::byte> message) const {
    if (loaned_ == nullptr || message.data() != loaned_message().data()) return false;
    if (message.size() != loaned_size_) {
      throw std::invalid_argument("a loan of " + std::to_string(loaned_size_) + " bytes sent as " +
                                  std::to_string(message.size()));
    }
    return true;
  }
  void send_loan() {
    void* chunk = std::exchange(loaned_, nullptr);
    commit(chunk, Kind::kData, static_cast<std::uint32_t>(loaned_size_));
  }

  bool window_open() const { return c_.out_data - c_.out_reported < out_window_; }

  // A non-blocking send's question: is the window open, once what arrived
  // has been taken (its reports may open it)? Throws for a closed peer or
  // an error a credit met.
  bool window_open_now() {
    rethrow_deferred();
    if (!window_open()) take_all_into_staging();
    if (peer_closed_) throw PeerLost("the iceoryx peer closed its channel");
    return window_open();
  }

  // One frame out; false when no chunk can be loaned now.
  bool send_frame(Kind kind, std::span<const std::byte> message) {
    void* chunk = port_->loan(sizeof(Frame) + message.size());
    if (chunk == nullptr) return false;
    if (!message.empty()) {
      std::memcpy(static_cast<std::byte*>(chunk) + sizeof(Frame), message.data(), message.size());
    }
    commit(chunk, kind, static_cast<std::uint32_t>(message.size()));
    return true;
  }

  // Writes the Frame of a chunk whose message is in place and sends it.
  void commit(void* chunk, Kind kind, std::uint32_t length) {
    const Frame f{.kind = kind, .length = length, .seq = c_.out_seq, .taken = c_.in_data};
    std::memcpy(chunk, &f, sizeof f);
    port_->send(chunk);  // iceoryx's again, also when it throws
    ++c_.out_seq;
    if (kind == Kind::kData) ++c_.out_data;
    c_.in_reported = c_.in_data;
  }

  // Reports what we have taken once half the peer's window is unreported;
  // without a chunk now, every wait retries first (the peer may be blocked
  // on it). An error is not thrown here, where a message was just taken: a
  // gone peer is noted and the next call says so; any other error is
  // thrown by the next call.
  void credit_if_due() noexcept {
    if (c_.in_data - c_.in_reported < credit_after_ || peer_closed_) return;
    try {
      (void)send_frame(Kind::kCredit, {});
    } catch (const PeerLost&) {
      peer_closed_ = true;
    } catch (...) {
      deferred_ = std::current_exception();
    }
  }

  void rethrow_deferred() {
    if (deferred_) std::rethrow_exception(std::exchange(deferred_, nullptr));
  }

  // Takes one frame: its chunk when it is a message (the caller views it
  // until release_view), kControl for any other, nullptr when none is
  // queued. Checks its order and size.
  const void* take_frame() {
    const void* chunk = port_->take();
    if (chunk == nullptr) return nullptr;
    Frame f;
    std::memcpy(&f, chunk, sizeof f);
    const std::uint32_t size = chunk_payload_size(chunk);
    if (f.seq != c_.in_seq || size < sizeof f || size - sizeof f != f.length ||
        f.taken > c_.out_data || f.taken < c_.out_reported) {
      port_->release(chunk);
      throw ProtocolError(
          f.seq != c_.in_seq
              ? "iceoryx: frame " + std::to_string(f.seq) + " arrived, expected frame " +
                    std::to_string(c_.in_seq) + " (one was lost or repeated)"
              : "iceoryx: malformed frame " + std::to_string(f.seq) + " (" + std::to_string(size) +
                    "-byte chunk, " + std::to_string(f.length) + " bytes announced, report " +
                    std::to_string(f.taken) + " of " + std::to_string(c_.out_data) + " sent)");
    }
    ++c_.in_seq;
    c_.out_reported = f.taken;
    switch (f.kind) {
      case Kind::kData:
        if (f.length == 0 || f.length > max_message_) {
          port_->release(chunk);
          throw ProtocolError("iceoryx: message length " + std::to_string(f.length) +
                              " outside 1.." + std::to_string(max_message_));
        }
        ++c_.in_data;
        return chunk;
      case Kind::kCredit:
        port_->release(chunk);
        return kControl;
      case Kind::kBye:
        port_->release(chunk);
        peer_closed_ = true;
        bye_taken_ = true;
        return kControl;
      case Kind::kHello:
        break;
    }
    port_->release(chunk);
    throw ProtocolError("iceoryx: a frame of unexpected kind " +
                        std::to_string(static_cast<std::uint32_t>(f.kind)));
  }

  // A viewed message into `buffer` (where a staged one is already), then
  // its chunk released; nothing is written past `buffer`.
  std::size_t copy_out(std::span<const std::byte> view, std::span<std::byte> buffer) {
    if (view.data() != buffer.data()) {
      if (view.size() > buffer.size()) {
        release_view();
        throw ProtocolError("iceoryx: message of " + std::to_string(view.size()) +
                            " bytes does not fit the " + std::to_string(buffer.size()) +
                            "-byte receive buffer");
      }
      std::memcpy(buffer.data(), view.data(), view.size());
    }
    release_view();
    return view.size();
  }

  std::size_t serve_staged(std::span<std::byte> buffer) {
    Staged s = staged_.pop_front();
    const std::size_t n = s.bytes.size();
    if (n > buffer.size()) {
      spare_ = std::move(s.bytes);
      throw ProtocolError("iceoryx: message of " + std::to_string(n) + " bytes does not fit the " +
                          std::to_string(buffer.size()) + "-byte receive buffer");
    }
    std::memcpy(buffer.data(), s.bytes.data(), n);
    spare_ = std::move(s.bytes);
    return n;
  }

  // Takes every queued frame, staging messages; whether any came.
  bool take_all_into_staging() {
    bool any = false;
    for (;;) {
      const void* chunk = take_frame();
      if (chunk == nullptr) return any;
      any = true;
      if (chunk == kControl) continue;
      Frame f;
      std::memcpy(&f, chunk, sizeof f);
      std::vector<std::byte> bytes = std::move(spare_);
      try {
        bytes.assign(static_cast<const std::byte*>(chunk) + sizeof f,
                     static_cast<const std::byte*>(chunk) + sizeof f + f.length);
        staged_.push_back({std::move(bytes)});
      } catch (...) {
        port_->release(chunk);
        throw;
      }
      port_->release(chunk);
      credit_if_due();
    }
  }

  // Whether a bye waits among the frames not yet taken (they are dropped).
  bool bye_queued() noexcept {
    try {
      while (const void* chunk = port_->take()) {
        Frame f;
        std::memcpy(&f, chunk, sizeof f);
        port_->release(chunk);
        if (f.kind == Kind::kBye) return true;
      }
    } catch (const std::exception&) {
    }
    return false;
  }

  bool peer_exited() const noexcept { return posix::pidfd_exited(peer_fd_.get()); }

  void check_peer_alive() {
    posix::count_syscall();
    if (peer_exited()) {
      peer_closed_ = true;
      throw PeerLost("the iceoryx peer (process " + std::to_string(peer_) + ") exited");
    }
  }

  // One wait for frames of at most `timeout`, ended early by an interrupt
  // (PeerLost). The peer's exit is looked for only when a wait ends without
  // a wake-up, off the path a message takes.
  void wait_for_frames(std::chrono::nanoseconds timeout) {
    posix::throw_if_interrupted();
    credit_if_due();
    if (starved_) {
      posix::count_syscall();
      std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(timeout, kStarvedPause));
      starved_ = false;
      check_peer_alive();
    } else if (!port_->has_frames() && !spun_into_frames()) {
      posix::count_syscall();  // the WaitSet's futex wait
      if (!port_->wait(std::min<std::chrono::nanoseconds>(timeout, kSlice))) check_peer_alive();
    }
    posix::throw_if_interrupted();
  }

  // The spin budget (--spin-budget): looks for a frame that many times
  // before a wait sleeps; true once one is queued.
  bool spun_into_frames() const {
    for (std::uint32_t i = 0; i < spin_; ++i) {
      posix::cpu_relax();
      if (port_->has_frames()) return true;
    }
    return false;
  }

  template <typename Ready>
  bool wait_until(std::chrono::nanoseconds timeout, Ready ready) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (ready() || peer_closed_) return true;
      const auto left = deadline - Clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return false;
      wait_for_frames(left);
    }
  }

  std::uint32_t spin_;  // spins before a wait sleeps; 0 when both sides share a CPU
  std::unique_ptr<ice::RuntimeHold> hold_;  // outlives the port
  std::unique_ptr<Port> port_;
  pid_t peer_;
  posix::Fd peer_fd_;  // readable once the peer has exited
  std::size_t max_message_;
  std::uint32_t out_window_;
  std::uint32_t credit_after_;
  Counts c_;
  bool peer_closed_ = false;
  bool bye_taken_ = false;       // the peer closed its end (peer_closed_ may also mean it exited)
  bool starved_ = false;         // the last loan was refused: RouDi's pool is empty
  std::exception_ptr deferred_;  // an error of a credit, for the next call
  // Messages taken early (by a blocked send); no bound, as for cma.
  posix::RingQueue<Staged> staged_;
  std::vector<std::byte> spare_;  // a staging buffer to reuse
  void* loaned_ = nullptr;        // a chunk loan() handed out, not sent yet
  std::size_t loaned_size_ = 0;   // its message's bytes
  const void* viewed_ = nullptr;  // a chunk receive_view() handed out
};

// Waits for `port` to yield a frame, at most until `deadline`.
template <typename Port>
const void* take_until(Port& port, Clock::time_point deadline) {
  for (;;) {
    if (const void* chunk = port.take()) return chunk;
    posix::throw_if_interrupted();
    const auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) return nullptr;
    port.wait(std::min<std::chrono::nanoseconds>(left, kSlice));
  }
}

// Reads a hello frame: its Hello, or a ProtocolError.
Hello read_hello(const void* chunk) {
  Frame f;
  std::memcpy(&f, chunk, sizeof f);
  Hello h;
  if (chunk_payload_size(chunk) != sizeof f + sizeof h || f.kind != Kind::kHello ||
      f.length != sizeof h || f.seq != 0) {
    throw ProtocolError("iceoryx: the peer's first frame is not a hello");
  }
  std::memcpy(&h, static_cast<const std::byte*>(chunk) + sizeof f, sizeof h);
  return h;
}

template <typename Port>
void send_hello(Port& port, const Hello& h) {
  void* chunk = port.loan(sizeof(Frame) + sizeof h);
  if (chunk == nullptr) throw std::runtime_error("iceoryx: no chunk for the hello");
  const Frame f{.kind = Kind::kHello, .length = sizeof h, .seq = 0, .taken = 0};
  std::memcpy(chunk, &f, sizeof f);
  std::memcpy(static_cast<std::byte*>(chunk) + sizeof f, &h, sizeof h);
  port.send(chunk);
}

class IceoryxEndpoint : public Endpoint {
 public:
  explicit IceoryxEndpoint(const ListenOptions& options)
      : roudi_(ice::ensure_roudi()),
        instance_(instance_for(options.tag)),
        max_message_(options.max_message),
        windows_(windows_for(options.max_message)),
        spin_budget_(options.spin_budget),
        same_cpu_(options.same_cpu),
        hold_(std::make_unique<ice::RuntimeHold>(roudi_)),
        client_(std::make_unique<ClientPort>(roudi_, service_for(instance_))) {}

  std::string address() const override { return "iceoryx:" + roudi_.text() + ":" + instance_; }

  // Waits for the peer's server, sends our hello and waits for its answer.
  std::unique_ptr<Channel> accept(std::chrono::milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    while (!client_->connected()) {
      posix::throw_if_interrupted();
      if (Clock::now() > deadline) {
        throw Timeout("the iceoryx peer offered no server within " +
                      std::to_string(timeout.count()) + " ms");
      }
      std::this_thread::sleep_for(1ms);
    }
    send_hello(*client_, {.pid = static_cast<std::uint64_t>(::getpid()),
                          .request_window = windows_.request,
                          .response_window = windows_.response,
                          .max_message = max_message_,
                          .spin_budget = spin_budget_});
    const void* answer = take_until(*client_, deadline);
    if (answer == nullptr) {
      throw Timeout("the iceoryx peer did not answer our hello within " +
                    std::to_string(timeout.count()) + " ms");
    }
    Hello h;
    try {
      h = read_hello(answer);
    } catch (...) {
      client_->release(answer);
      throw;
    }
    client_->release(answer);
    // We sent the hello (frame 0 of requests) and took theirs, which
    // reported ours taken (it is not data).
    return std::make_unique<IceoryxChannel<ClientPort>>(
        std::make_unique<ice::RuntimeHold>(roudi_), std::move(client_), static_cast<pid_t>(h.pid),
        max_message_, windows_.request, windows_.response, same_cpu_ ? 0 : spin_budget_,
        Counts{.out_seq = 1, .in_seq = 1});
  }

 private:
  ice::RoudiRef roudi_;
  std::string instance_;
  std::size_t max_message_;
  Windows windows_;
  std::uint32_t spin_budget_;
  bool same_cpu_;                           // a spin would keep the peer off its CPU: none
  std::unique_ptr<ice::RuntimeHold> hold_;  // before client_: outlives it
  std::unique_ptr<ClientPort> client_;
};

class IceoryxMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "iceoryx"; }
  std::string_view family() const override { return "iceoryx"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kMessage,
            .max_message = ice::kMaxMessage,
            .crosses_hosts = false,
            .pollable = false,
            .lossy = false,
            .waiting = Waiting::kSleep,
            .readiness = Waiting::kSleep,
            // The harness writes into the loaned chunk and reads the
            // taken one in place (Channel::loan, receive_view).
            .copies = 0,
            // RouDi's names live in the run's private namespace.
            .names = Names::kNone,
            .spin_budget = true};
  }
  std::string unavailable_reason() const override { return ice::unavailable_reason(); }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    check_max_message(options.max_message);
    return std::make_unique<IceoryxEndpoint>(options);
  }

  // Registers with the listener's RouDi, offers the server and waits for the
  // client's hello, then answers it.
  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    const auto bad = [&] {
      return std::invalid_argument("malformed iceoryx address '" +
                                   std::string(address.substr(0, 64)) +
                                   "' (expected iceoryx:PID:START:INSTANCE)");
    };
    if (!address.starts_with("iceoryx:")) throw bad();
    const std::string_view rest = address.substr(8);
    const auto first = rest.find(':');
    const auto second = first == std::string_view::npos ? first : rest.find(':', first + 1);
    if (second == std::string_view::npos || second + 1 >= rest.size()) throw bad();
    const ice::RoudiRef roudi = ice::RoudiRef::parse(rest.substr(0, second));
    const std::string instance(rest.substr(second + 1));
    check_max_message(options.max_message);
    const auto deadline = Clock::now() + options.timeout;

    auto hold = std::make_unique<ice::RuntimeHold>(roudi);
    auto server = std::make_unique<ServerPort>(roudi, service_for(instance));
    const void* hello = take_until(*server, deadline);
    if (hello == nullptr) {
      throw Timeout("no iceoryx client said hello within " +
                    std::to_string(options.timeout.count()) + " ms");
    }
    server->keep_route(hello);  // released with the port
    const Hello h = read_hello(hello);
    if (h.max_message != options.max_message || h.request_window == 0 || h.response_window == 0) {
      throw ProtocolError(
          "iceoryx: the listener's hello says max_message " + std::to_string(h.max_message) +
          " (ours " + std::to_string(options.max_message) + "), windows " +
          std::to_string(h.request_window) + "/" + std::to_string(h.response_window));
    }
    // Our answer reports nothing taken: the hello is not data.
    send_hello(*server, {.pid = static_cast<std::uint64_t>(::getpid())});
    return std::make_unique<IceoryxChannel<ServerPort>>(
        std::move(hold), std::move(server), static_cast<pid_t>(h.pid), options.max_message,
        h.response_window, h.request_window, options.same_cpu ? 0 : h.spin_budget,
        Counts{.out_seq = 1, .in_seq = 1});
  }
};

#else  // a build without iceoryx

class IceoryxMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "iceoryx"; }
  std::string_view family() const override { return "iceoryx"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kMessage, .max_message = 4u << 20, .copies = 0};
  }
  std::string unavailable_reason() const override {
    return "this build has no iceoryx (install iceoryx and libiceoryx-posh-dev, then rebuild)";
  }
  std::unique_ptr<Endpoint> listen(const ListenOptions&) override {
    throw std::runtime_error(unavailable_reason());
  }
  std::unique_ptr<Channel> connect(std::string_view, const ConnectOptions&) override {
    throw std::runtime_error(unavailable_reason());
  }
};

#endif

}  // namespace

std::unique_ptr<Mechanism> make_iceoryx() { return std::make_unique<IceoryxMechanism>(); }

}  // namespace ipcbench::mech
