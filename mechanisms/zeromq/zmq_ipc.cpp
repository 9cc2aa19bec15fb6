// zmq-ipc: ZeroMQ PAIR sockets over ipc:// (a Unix domain stream socket).
//
// The listener binds ipc://<run_dir>/<tag>.zmq in the run's private 0700
// directory; the socket file (mode 0600) exists only until the peer has
// connected. Address: that endpoint, "ipc:///path".
#include <sys/stat.h>

#include <cerrno>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "mechanisms/channels/zmq_channel.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/retry.hpp"

namespace ipcbench::mech {
namespace {

class ZmqIpcMechanism final : public zmq_channel::ZmqMechanism {
 public:
  std::string_view name() const override { return "zmq-ipc"; }

 protected:
  bool crosses_hosts() const override { return false; }
  std::string_view scheme() const override { return "ipc://"; }

  zmq_channel::BindTarget bind_target(const ListenOptions& options) const override {
    if (options.run_dir.empty()) throw std::invalid_argument("zmq-ipc needs a run directory");
    std::string path = options.run_dir + "/" + options.tag + ".zmq";
    return {.endpoint = "ipc://" + path, .socket_file = path};
  }

  // A missing socket fails at once (ZeroMQ would retry until the timeout).
  std::string_view check_address(std::string_view address) const override {
    const std::string_view path = ZmqMechanism::check_address(address);
    if (path.front() != '/') {
      throw std::invalid_argument("zmq-ipc address '" + std::string(address) +
                                  "' does not name an absolute path");
    }
    struct stat st;
    if (::stat(std::string(path).c_str(), &st) != 0) {
      posix::throw_errno("cannot connect to zmq-ipc " + std::string(path));
    }
    if (!S_ISSOCK(st.st_mode)) {
      posix::throw_errno(ENOTSOCK, "cannot connect to zmq-ipc " + std::string(path));
    }
    return path;
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_zmq_ipc() { return std::make_unique<ZmqIpcMechanism>(); }

}  // namespace ipcbench::mech
