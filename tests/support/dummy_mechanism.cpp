// A mechanism that exists only in the build of scripts/check-new-mechanism
// (CMake -DIPCBENCH_EXTRA_MECHANISM=this file): "dummy", a Unix stream socket
// in the run directory under framing of its own name. It stands for the next
// mechanism someone adds: the check shows that the conformance and fault
// suites pick it up from the registry with no edit to any test.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "mechanisms/channels/stream_framing.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/socket.hpp"

namespace ipcbench::mech {
namespace {

sockaddr_un socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    throw std::invalid_argument("dummy: socket path '" + path + "' is empty or too long");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

class DummyEndpoint : public Endpoint {
 public:
  DummyEndpoint(std::string path, std::size_t max_message)
      : path_(std::move(path)), max_message_(max_message) {
    const sockaddr_un addr = socket_address(path_);
    fd_ = posix::Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd_) posix::throw_errno("dummy: cannot create a socket");
    if (::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      posix::throw_errno("dummy: cannot bind " + path_);
    }
    bound_ = true;
    if (::chmod(path_.c_str(), 0600) != 0 || ::listen(fd_.get(), 1) != 0) {
      const int err = errno;
      unbind();
      posix::throw_errno(err, "dummy: cannot listen on " + path_);
    }
  }
  ~DummyEndpoint() override { unbind(); }

  std::string address() const override { return path_; }

  std::unique_ptr<Channel> accept(std::chrono::milliseconds timeout) override {
    posix::Fd conn = posix::accept_with_timeout(fd_.get(), timeout, path_);
    unbind();
    fd_.reset();
    return std::make_unique<FramedStreamChannel>(std::move(conn), posix::Fd(), max_message_, true);
  }

 private:
  void unbind() noexcept {
    if (bound_) ::unlink(path_.c_str());
    bound_ = false;
  }

  std::string path_;
  std::size_t max_message_;
  posix::Fd fd_;
  bool bound_ = false;
};

class DummyMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "dummy"; }
  std::string_view family() const override { return "test"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kStream,
            .max_message = kMaxStreamMessage,
            .crosses_hosts = false,
            .pollable = true,
            .lossy = false,
            .names = Names::kRunDir};
  }
  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    if (options.run_dir.empty()) throw std::invalid_argument("dummy needs a run directory");
    return std::make_unique<DummyEndpoint>(options.run_dir + "/" + options.tag + ".dummy",
                                           options.max_message);
  }
  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    const sockaddr_un addr = socket_address(std::string(address));
    posix::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) posix::throw_errno("dummy: cannot create a socket");
    posix::connect_with_timeout(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr,
                                options.timeout, "dummy socket " + std::string(address));
    return std::make_unique<FramedStreamChannel>(std::move(fd), posix::Fd(), options.max_message,
                                                 true);
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_extra_mechanism() { return std::make_unique<DummyMechanism>(); }

}  // namespace ipcbench::mech
