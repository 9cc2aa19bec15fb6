#include "bench/control/control.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/socket.hpp"

namespace ipcbench::control {
namespace {

using json = nlohmann::json;

}  // namespace

std::string printable(std::string_view text) {
  std::string out(text.substr(0, 80));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (text.size() > 80) out += "...";
  return out;
}

namespace {

std::string shown(std::string_view text) { return printable(text); }

// The message's type, for a reason (shown, not raw).
std::string type_of(const json& m) {
  const auto t = m.find("type");
  return t != m.end() && t->is_string() ? printable(t->get_ref<const std::string&>()) : "?";
}

const json& field(const json& m, const char* key) {
  const auto it = m.find(key);
  if (it == m.end()) throw ControlError(type_of(m) + ": missing '" + key + "'");
  return *it;
}

std::int64_t integer(const json& m, const char* key, std::int64_t lo, std::int64_t hi) {
  const json& v = field(m, key);
  if (!v.is_number_integer()) {
    throw ControlError(type_of(m) + ": '" + key + "' must be an integer");
  }
  // Unsigned values above INT64_MAX would wrap: compare as unsigned first.
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(hi)) {
    throw ControlError(type_of(m) + ": '" + key + "' out of range (" + std::to_string(lo) + ".." +
                       std::to_string(hi) + ")");
  }
  const std::int64_t x = v.get<std::int64_t>();
  if (x < lo || x > hi) {
    throw ControlError(type_of(m) + ": '" + key + "' = " + std::to_string(x) + " out of range (" +
                       std::to_string(lo) + ".." + std::to_string(hi) + ")");
  }
  return x;
}

const std::string& text(const json& m, const char* key, std::size_t max_bytes) {
  const json& v = field(m, key);
  if (!v.is_string()) {
    throw ControlError(type_of(m) + ": '" + key + "' must be a string");
  }
  const std::string& s = v.get_ref<const std::string&>();
  if (s.size() > max_bytes) {
    throw ControlError(type_of(m) + ": '" + key + "' is longer than " + std::to_string(max_bytes) +
                       " bytes");
  }
  return s;
}

}  // namespace

void Decoder::append(const char* data, std::size_t size) {
  if (offset_ > 0 && offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  buffer_.append(data, size);
}

std::optional<json> Decoder::next() {
  if (buffered() < 4) return std::nullopt;
  const auto* p = reinterpret_cast<const unsigned char*>(buffer_.data() + offset_);
  const std::uint32_t n = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                          (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
  if (n == 0) throw ControlError("empty control message (length 0)");
  if (n > kMaxControlMessage) {
    throw ControlError("oversized control message (" + std::to_string(n) + " bytes, limit " +
                       std::to_string(kMaxControlMessage) + ")");
  }
  if (buffered() < 4 + std::size_t{n}) return std::nullopt;
  const std::string_view body(buffer_.data() + offset_ + 4, n);
  offset_ += 4 + std::size_t{n};
  json m = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (m.is_discarded()) throw ControlError("control message is not JSON: '" + shown(body) + "'");
  if (!m.is_object()) throw ControlError("control message is not a JSON object");
  const auto t = m.find("type");
  if (t == m.end() || !t->is_string()) throw ControlError("control message has no string 'type'");
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  return m;
}

std::string encode(const json& message) {
  const std::string body = message.dump(-1, ' ', false, json::error_handler_t::replace);
  if (body.empty() || body.size() > kMaxControlMessage) {
    throw ControlError("control message of " + std::to_string(body.size()) +
                       " bytes exceeds the limit");
  }
  const auto n = static_cast<std::uint32_t>(body.size());
  std::string out(4, '\0');
  out[0] = static_cast<char>(n >> 24);
  out[1] = static_cast<char>(n >> 16);
  out[2] = static_cast<char>(n >> 8);
  out[3] = static_cast<char>(n);
  return out + body;
}

void check_keys(const json& message, std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : message.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      throw ControlError(type_of(message) + ": unexpected field '" + shown(key) + "'");
    }
  }
}

std::string parse_hello(const json& m) {
  // The version first: a later client may send fields this one does not know.
  const std::int64_t version = integer(m, "version", 0, 1'000'000);
  if (version != kVersion) {
    throw ControlError("protocol version mismatch: this server speaks version " +
                       std::to_string(kVersion) + ", the client " + std::to_string(version) +
                       " (run the same ipcbench version on both hosts)");
  }
  check_keys(m, {"type", "version", "token"});
  return text(m, "token", kMaxTokenBytes);
}

SetupRequest parse_setup(const json& m, const ServerLimits& limits) {
  check_keys(m, {"type", "mechanism", "max_message", "verify", "cpu"});
  SetupRequest r;
  r.mechanism = text(m, "mechanism", 64);
  const auto offer =
      std::find_if(limits.mechanisms.begin(), limits.mechanisms.end(),
                   [&](const ServerLimits::Offer& o) { return o.name == r.mechanism; });
  if (offer == limits.mechanisms.end()) {
    std::string names;
    for (const auto& o : limits.mechanisms) names.append(names.empty() ? "" : ", ").append(o.name);
    throw ControlError("setup: mechanism '" + shown(r.mechanism) +
                       "' is not one that crosses hosts here (offered: " + names + ")");
  }
  r.max_message = static_cast<std::size_t>(
      integer(m, "max_message", 1, static_cast<std::int64_t>(offer->max_message)));
  const std::string& verify = text(m, "verify", 16);
  if (verify != "header" && verify != "full") {
    throw ControlError("setup: 'verify' must be \"header\" or \"full\"");
  }
  r.verify_full = verify == "full";
  r.cpu = static_cast<int>(integer(m, "cpu", -1, 1 << 20));
  if (r.cpu >= 0 && std::find(limits.cpus.begin(), limits.cpus.end(), r.cpu) == limits.cpus.end()) {
    std::string cpus;
    for (int c : limits.cpus) cpus.append(cpus.empty() ? "" : ",").append(std::to_string(c));
    throw ControlError("setup: CPU " + std::to_string(r.cpu) + " is not one this server offers (" +
                       (cpus.empty() ? std::string("none") : cpus) + ")");
  }
  return r;
}

std::string parse_ready_address(const json& m, std::int32_t* peer_pid) {
  check_keys(m, {"type", "address", "peer_pid"});
  const std::string& address = text(m, "address", 300);
  *peer_pid = static_cast<std::int32_t>(integer(m, "peer_pid", 1, 0x7fffffff));
  std::string host_port = address;
  if (host_port.starts_with("tcp://")) host_port.erase(0, 6);
  try {
    (void)split_host_port(host_port);
  } catch (const std::invalid_argument& e) {
    throw ControlError(std::string("ready: ") + e.what());
  }
  return address;
}

bool tokens_equal(std::string_view a, std::string_view b) noexcept {
  // Compare every byte of the longer string, so the time says nothing about
  // where they differ (only, at most, the lengths).
  const std::size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

std::string read_token_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw std::runtime_error("cannot read token file '" + path + "': " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode))
    throw std::runtime_error("token file '" + path + "' is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw std::runtime_error("token file '" + path + "' is readable or writable by others (mode " +
                             mode + "): run 'chmod 600 " + path + "'");
  }
  std::ifstream in(path);
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) {
    token.pop_back();
  }
  if (token.empty())
    throw std::runtime_error("token file '" + path + "' is empty: put a secret on its first line");
  if (token.size() > kMaxTokenBytes) {
    throw std::runtime_error("token in '" + path + "' is longer than " +
                             std::to_string(kMaxTokenBytes) + " bytes");
  }
  return token;
}

void Connection::send(const json& message) {
  const std::string wire = encode(message);
  std::size_t off = 0;
  while (off < wire.size()) {
    const ssize_t n = ::send(fd_.get(), wire.data() + off, wire.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        posix::throw_if_interrupted();
        continue;
      }
      if (errno == EPIPE || errno == ECONNRESET) throw PeerLost("control connection closed");
      posix::throw_errno("cannot send on the control connection");
    }
    off += static_cast<std::size_t>(n);
  }
}

void Connection::send_last_word(const json& message) noexcept {
  try {
    const std::string wire = encode(message);
    (void)::send(fd_.get(), wire.data(), wire.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  } catch (...) {
  }
}

json Connection::receive(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto m = decoder_.next()) return std::move(*m);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      throw Timeout("no control message within " + std::to_string(timeout.count()) + " ms");
    }
    pollfd p{fd_.get(), POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0) {
      if (errno == EINTR) {
        posix::throw_if_interrupted();
        continue;
      }
      posix::throw_errno("poll on the control connection failed");
    }
    if (r == 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) throw PeerLost("control connection closed by the other side");
    if (n < 0) {
      if (errno == EINTR) {
        posix::throw_if_interrupted();
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) continue;
      if (errno == ECONNRESET) throw PeerLost("control connection reset by the other side");
      posix::throw_errno("cannot receive on the control connection");
    }
    decoder_.append(buf, static_cast<std::size_t>(n));
  }
}

std::optional<json> Connection::read_available() {
  if (auto m = decoder_.next()) return m;
  char buf[4096];
  const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
  if (n == 0) throw PeerLost("control connection closed by the other side");
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return std::nullopt;
    if (errno == ECONNRESET) throw PeerLost("control connection reset by the other side");
    posix::throw_errno("cannot receive on the control connection");
  }
  decoder_.append(buf, static_cast<std::size_t>(n));
  return decoder_.next();
}

std::pair<std::string, int> split_host_port(const std::string& text) {
  posix::HostPort hp;
  try {
    hp = posix::split_host_port(text, "");
  } catch (const std::invalid_argument&) {  // say it printable
    throw std::invalid_argument("malformed address '" + shown(text) + "' (expected HOST:PORT)");
  }
  if (hp.port.size() > 5 || !std::all_of(hp.port.begin(), hp.port.end(), ::isdigit)) {
    throw std::invalid_argument("malformed port in '" + shown(text) + "' (expected 1..65535)");
  }
  const int port = std::stoi(hp.port);
  if (port < 1 || port > 65535) {
    throw std::invalid_argument("port " + hp.port + " out of range (1..65535)");
  }
  return {hp.host, port};
}

posix::Fd connect_tcp(const std::string& host_port, std::chrono::milliseconds timeout) {
  const auto [host, port] = split_host_port(host_port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) {
    throw std::runtime_error("cannot resolve '" + host + "': " + ::gai_strerror(rc));
  }
  posix::Fd fd;
  std::string why;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    fd = posix::Fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) continue;
    try {
      posix::connect_with_timeout(fd.get(), ai->ai_addr, ai->ai_addrlen, timeout, host_port);
      break;
    } catch (const std::exception& e) {
      why = e.what();
      fd.reset();
    }
  }
  ::freeaddrinfo(res);
  // connect_with_timeout's reason already names the address.
  if (!fd) throw std::runtime_error(why.empty() ? "cannot connect to " + host_port : why);
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

std::string local_host(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return posix::numeric_host(ss);
}

std::string peer_host(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return posix::numeric_host(ss);
}

nlohmann::ordered_json host_json(const HostInfo& host) {
  return {{"hostname", host.hostname},
          {"cpu_model", host.cpu_model},
          {"cpus_online", host.cpus_online},
          {"cpus_allowed", host.cpus_allowed},
          {"kernel", host.kernel},
          {"hypervisor", host.hypervisor.empty() ? nlohmann::ordered_json(nullptr)
                                                 : nlohmann::ordered_json(host.hypervisor)},
          {"governor", host.governor.empty() ? nlohmann::ordered_json(nullptr)
                                             : nlohmann::ordered_json(host.governor)}};
}

}  // namespace ipcbench::control
