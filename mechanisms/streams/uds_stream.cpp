// uds-stream: a Unix domain stream socket in the run's private directory.
//
// The socket file exists only between listen() and accept(): it is removed as
// soon as the peer has connected.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "mechanisms/channels/stream_framing.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/socket.hpp"

namespace ipcbench::mech {
namespace {

sockaddr_un make_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    throw std::invalid_argument("unix socket path '" + path + "' is empty or longer than " +
                                std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

class UdsStreamEndpoint : public Endpoint {
 public:
  UdsStreamEndpoint(std::string path, std::size_t max_message)
      : path_(std::move(path)), max_message_(max_message) {
    const sockaddr_un addr = make_address(path_);
    listen_fd_ = posix::Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listen_fd_) posix::throw_errno("cannot create unix stream socket");
    // bind() fails with EADDRINUSE if the name exists: creation is exclusive.
    if (::bind(listen_fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      posix::throw_errno("cannot bind unix socket " + path_);
    }
    bound_ = true;
    try {
      if (::chmod(path_.c_str(), 0600) != 0) posix::throw_errno("cannot chmod " + path_);
      if (::listen(listen_fd_.get(), 1) != 0) posix::throw_errno("cannot listen on " + path_);
    } catch (...) {
      remove_name();  // the destructor does not run for a failed constructor
      throw;
    }
  }
  ~UdsStreamEndpoint() override { remove_name(); }

  std::string address() const override { return path_; }

  std::unique_ptr<Channel> accept(std::chrono::milliseconds timeout) override {
    posix::Fd conn = posix::accept_with_timeout(listen_fd_.get(), timeout, path_);
    remove_name();
    listen_fd_.reset();
    return std::make_unique<FramedStreamChannel>(std::move(conn), posix::Fd(), max_message_, true);
  }

 private:
  void remove_name() noexcept {
    if (bound_) {
      ::unlink(path_.c_str());
      bound_ = false;
    }
  }

  std::string path_;
  std::size_t max_message_;
  posix::Fd listen_fd_;
  bool bound_ = false;
};

class UdsStreamMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "uds-stream"; }
  std::string_view family() const override { return "socket"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kStream,
            .max_message = kMaxStreamMessage,
            .crosses_hosts = false,
            .pollable = true,
            .lossy = false,
            .names = Names::kRunDir,
            .raw_io = true};
  }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    if (options.run_dir.empty()) throw std::invalid_argument("uds-stream needs a run directory");
    return std::make_unique<UdsStreamEndpoint>(options.run_dir + "/" + options.tag + ".sock",
                                               options.max_message);
  }

  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    const sockaddr_un addr = make_address(std::string(address));
    posix::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) posix::throw_errno("cannot create unix stream socket");
    posix::connect_with_timeout(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr,
                                options.timeout, "unix socket " + std::string(address));
    return std::make_unique<FramedStreamChannel>(std::move(fd), posix::Fd(), options.max_message,
                                                 true);
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_uds_stream() { return std::make_unique<UdsStreamMechanism>(); }

}  // namespace ipcbench::mech
