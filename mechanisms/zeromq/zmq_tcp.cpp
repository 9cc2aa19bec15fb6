// zmq-tcp: ZeroMQ PAIR sockets over tcp:// (TCP_NODELAY is ZeroMQ's default).
//
// The listener binds an ephemeral port on ListenOptions::bind_host
// ("tcp://HOST:*"), so concurrent runs never collide, and reads the port
// back with ZMQ_LAST_ENDPOINT. Address: "tcp://HOST:PORT" ("tcp://[V6]:PORT").
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "mechanisms/channels/zmq_channel.hpp"
#include "mechanisms/mechanism.hpp"

namespace ipcbench::mech {
namespace {

class ZmqTcpMechanism final : public zmq_channel::ZmqMechanism {
 public:
  std::string_view name() const override { return "zmq-tcp"; }

 protected:
  bool crosses_hosts() const override { return true; }
  std::string_view scheme() const override { return "tcp://"; }

  zmq_channel::BindTarget bind_target(const ListenOptions& options) const override {
    std::string host = options.bind_host.empty() ? "127.0.0.1" : options.bind_host;
    if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
    return {.endpoint = "tcp://" + host + ":*", .socket_file = {}};
  }

  // Only the client that set up the case may connect: ZeroMQ then drops
  // other TCP connections as they arrive. (ZMQ_TCP_ACCEPT_FILTER is
  // deprecated in favour of ZAP, which needs a handler thread; it still
  // works in libzmq 4.3.)
  void configure_listener(zmq::socket_t& socket, const ListenOptions& options) const override {
    if (options.allowed_peer.empty()) return;
    if (zmq_setsockopt(socket.handle(), ZMQ_TCP_ACCEPT_FILTER, options.allowed_peer.data(),
                       options.allowed_peer.size()) != 0) {
      throw std::invalid_argument("zmq-tcp: cannot restrict connections to '" +
                                  options.allowed_peer + "': " + zmq_strerror(zmq_errno()));
    }
  }

  // ZeroMQ is IPv4-only unless told otherwise; a bracketed host is IPv6.
  void configure_transport(zmq::socket_t& socket, std::string_view endpoint) const override {
    if (endpoint.find('[') != std::string_view::npos) socket.set(zmq::sockopt::ipv6, true);
  }

  std::string_view check_address(std::string_view address) const override {
    const std::string_view host_port = ZmqMechanism::check_address(address);
    const auto colon = host_port.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == host_port.size()) {
      throw std::invalid_argument("malformed zmq-tcp address '" + std::string(address) +
                                  "' (expected tcp://HOST:PORT)");
    }
    return host_port;
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_zmq_tcp() { return std::make_unique<ZmqTcpMechanism>(); }

}  // namespace ipcbench::mech
