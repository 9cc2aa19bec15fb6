// The control protocol between `ipcbench run --remote` (the client) and
// `ipcbench serve` (the server): small, versioned, length-prefixed JSON.
//
// A message is a 4-byte big-endian length N (1..kMaxControlMessage) and N
// bytes of one JSON object with a string "type". The conversation:
//
//   client                                server
//   hello {version, token}       ->
//                                <-       welcome {version, host, cpus}
//                                         (or error {reason}, then close;
//                                          busy {reason} at once when another
//                                          client is being served)
//   setup {mechanism, max_message,
//          verify, cpu}          ->       starts its peer, which listens
//                                <-       ready {address, peer_pid}
//   ... the case runs over the data connection (client connects) ...
//                                <-       peer_exit {status}   (if the peer dies)
//   teardown {}                  ->
//                                <-       done {status}
//   bye {}                       ->       (closes; serves the next client)
//
// Anything malformed, oversized, out of order or unexpected ends that
// connection with an error {reason} and a logged line; the server goes on.
// The decoder and the validators are pure functions (fuzzed by
// tests/fuzz/fuzz_control.cpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bench/core/sysinfo.hpp"
#include "mechanisms/posix/fd.hpp"

namespace ipcbench::control {

// 2: the peer's stats reply carries its system call count.
// 3: ... and the count of ipcbench's own calls (posix::count_syscall).
inline constexpr int kVersion = 3;
inline constexpr std::size_t kMaxControlMessage = 64 * 1024;
inline constexpr std::size_t kMaxTokenBytes = 1024;
inline constexpr int kDefaultPort = 7070;

// A control message that breaks the protocol; what() is the reason, one line.
struct ControlError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Splits a byte stream into control messages. Feed it what arrives; next()
// returns each whole message in order, std::nullopt while one is incomplete,
// and throws ControlError for a bad length, bad JSON, a non-object or a
// missing "type" (the connection must then be closed).
class Decoder {
 public:
  void append(const char* data, std::size_t size);
  std::optional<nlohmann::json> next();
  std::size_t buffered() const noexcept { return buffer_.size() - offset_; }

 private:
  std::string buffer_;
  std::size_t offset_ = 0;
};

// The wire form of `message` (length prefix + compact JSON). Throws
// ControlError if it would exceed the limit.
std::string encode(const nlohmann::json& message);

// What a client may ask for, validated against what the server offers.
struct SetupRequest {
  std::string mechanism;
  std::size_t max_message = 0;
  bool verify_full = false;
  int cpu = -1;  // -1: the server's choice
};

// What the server allows: host-crossing mechanisms with their limits, CPUs.
struct ServerLimits {
  struct Offer {
    std::string name;
    std::size_t max_message = 0;
  };
  std::vector<Offer> mechanisms;
  std::vector<int> cpus;  // CPUs a peer may be pinned to
};

// Validators: every field checked (type, range, no unknown keys); throw
// ControlError with the reason.
void check_keys(const nlohmann::json& message, std::initializer_list<std::string_view> allowed);
// hello: returns the token (may be empty).
std::string parse_hello(const nlohmann::json& message);
SetupRequest parse_setup(const nlohmann::json& message, const ServerLimits& limits);
// The address a ready message carries: "HOST:PORT" or "tcp://HOST:PORT",
// port 1..65535; returns it.
std::string parse_ready_address(const nlohmann::json& message, std::int32_t* peer_pid);

// Text from the wire, safe for a one-line log or reason: at most 80
// characters, control bytes shown as '?'.
std::string printable(std::string_view text);

// Same length, same bytes, in time that does not depend on where they
// differ.
bool tokens_equal(std::string_view a, std::string_view b) noexcept;

// Reads a token from `path`: the file must be a regular file that only its
// owner can read or write (mode 0600 or stricter) and hold one non-empty line.
// Throws std::runtime_error saying what is wrong and what to do.
std::string read_token_file(const std::string& path);

// One control connection (either side): blocking sends, receives with a
// deadline. Not thread-safe.
class Connection {
 public:
  explicit Connection(posix::Fd fd) : fd_(std::move(fd)) {}
  // Sends one message; throws std::system_error / PeerLost when the
  // connection is gone.
  void send(const nlohmann::json& message);
  // Sends without blocking for long (best effort, for a last word such as
  // busy or error before closing). Never throws.
  void send_last_word(const nlohmann::json& message) noexcept;
  // Waits up to `timeout` for one whole message. Throws ControlError for a
  // protocol violation, PeerLost on end-of-file, Timeout when none came.
  nlohmann::json receive(std::chrono::milliseconds timeout);
  // Reads what has arrived, without blocking, and returns the next whole
  // message if there is one. Throws like receive() (PeerLost on end-of-file).
  std::optional<nlohmann::json> read_available();
  int fd() const noexcept { return fd_.get(); }

 private:
  posix::Fd fd_;
  Decoder decoder_;
};

// Connects to "HOST:PORT" within `timeout`; throws with a one-line reason.
posix::Fd connect_tcp(const std::string& host_port, std::chrono::milliseconds timeout);

// Splits "HOST:PORT" ("[V6]:PORT"); throws std::invalid_argument.
std::pair<std::string, int> split_host_port(const std::string& text);

// The numeric address of a socket's own end / its peer's ("198.18.0.1").
std::string local_host(int fd);
std::string peer_host(int fd);

// The host facts as the result file records them and `serve` sends them.
nlohmann::ordered_json host_json(const HostInfo& host);

}  // namespace ipcbench::control
