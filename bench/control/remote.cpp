#include "bench/control/remote.hpp"

#include <stdexcept>

#include "mechanisms/posix/errors.hpp"

namespace ipcbench {

using nlohmann::json;

namespace {
constexpr auto kHandshake = std::chrono::milliseconds(5000);
}

json RemoteServer::expect(const char* type, std::chrono::milliseconds timeout) {
  for (;;) {
    json m = connection_->receive(timeout);
    const std::string& t = m["type"].get_ref<const std::string&>();
    if (t == type) return m;
    if (t == "peer_exit") {  // the peer ended before we asked: remember how
      peer_status_ = m.value("status", std::string("peer ended"));
      continue;
    }
    if (t == "error" || t == "busy") {
      throw std::runtime_error("server " + options_.address + ": " +
                               m.value("reason", std::string("refused")));
    }
    throw control::ControlError("server " + options_.address + " sent '" + control::printable(t) +
                                "', expected '" + type + "'");
  }
}

void RemoteServer::greet() {
  drop();
  try {
    connection_ = std::make_unique<control::Connection>(
        control::connect_tcp(options_.address, options_.timeout));
    connection_->send(
        {{"type", "hello"}, {"version", control::kVersion}, {"token", options_.token}});
    json w = expect("welcome", kHandshake);
    const int version = w.value("version", -1);
    if (version != control::kVersion) {
      throw std::runtime_error("server " + options_.address + " speaks control protocol version " +
                               std::to_string(version) + ", this client " +
                               std::to_string(control::kVersion) +
                               " (run the same ipcbench version on both hosts)");
    }
    if (!w.contains("host") || !w["host"].is_object()) {
      throw control::ControlError("server " + options_.address + ": welcome without host facts");
    }
    welcome_ = std::move(w);
  } catch (const std::exception& e) {
    drop();
    const std::string what = e.what();
    if (what.starts_with("server ")) throw std::runtime_error(what);
    throw std::runtime_error("server " + options_.address + ": " + what);
  }
}

RemoteServer::Ready RemoteServer::setup(const std::string& mechanism, std::size_t max_message,
                                        bool verify_full) {
  if (!connection_) greet();
  peer_status_.clear();
  try {
    connection_->send({{"type", "setup"},
                       {"mechanism", mechanism},
                       {"max_message", max_message},
                       {"verify", verify_full ? "full" : "header"},
                       {"cpu", options_.cpu}});
    const json m = expect("ready", options_.timeout);
    Ready r;
    std::int32_t pid = -1;
    r.address = control::parse_ready_address(m, &pid);
    r.peer_pid = pid;
    return r;
  } catch (const std::exception& e) {
    drop();
    const std::string what = e.what();
    throw PeerLost(what.starts_with("server ") ? what : "server " + options_.address + ": " + what);
  }
}

std::string RemoteServer::teardown() noexcept {
  if (!connection_) return peer_status_.empty() ? "control connection lost" : peer_status_;
  try {
    connection_->send({{"type", "teardown"}});
    const json m = expect("done", std::chrono::milliseconds(5000));
    return m.value("status", std::string("peer ended"));
  } catch (const std::exception& e) {
    drop();
    return std::string("teardown failed: ") + e.what();
  }
}

std::string RemoteServer::epitaph(std::chrono::milliseconds wait) noexcept {
  if (!peer_status_.empty()) return "remote " + peer_status_;
  if (!connection_) return "control connection to the server lost";
  try {
    const json m = connection_->receive(wait);
    if (m["type"] == "peer_exit") {
      peer_status_ = m.value("status", std::string("peer ended"));
      return "remote " + peer_status_;
    }
    return "server said '" + m["type"].get<std::string>() + "'";
  } catch (const Timeout&) {
    return "remote peer still running";
  } catch (const std::exception& e) {
    drop();
    return std::string("control connection to the server: ") + e.what();
  }
}

void RemoteServer::bye() noexcept {
  if (!connection_) return;
  try {
    connection_->send({{"type", "bye"}});
  } catch (...) {
  }
  drop();
}

}  // namespace ipcbench
