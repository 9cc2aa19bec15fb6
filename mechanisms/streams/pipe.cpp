// pipe: a pair of anonymous pipes, one per direction.
//
// Anonymous pipes have no name, so the peer inherits the descriptors across
// exec; the address names them ("fd:READ,WRITE" from the peer's view).
#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <stdexcept>
#include <string>

#include "mechanisms/channels/stream_framing.hpp"
#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/retry.hpp"

namespace ipcbench::mech {
namespace {

struct PipePair {
  posix::Fd read;
  posix::Fd write;
};

PipePair make_pipe_pair() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) posix::throw_errno("cannot create pipe");
  return {posix::Fd(fds[0]), posix::Fd(fds[1])};
}

class PipeEndpoint : public Endpoint {
 public:
  explicit PipeEndpoint(std::size_t max_message)
      : max_message_(max_message), to_peer_(make_pipe_pair()), from_peer_(make_pipe_pair()) {}

  std::string address() const override {
    return "fd:" + std::to_string(to_peer_.read.get()) + "," +
           std::to_string(from_peer_.write.get());
  }

  std::vector<int> inherited_fds() const override {
    return {to_peer_.read.get(), from_peer_.write.get()};
  }

  std::unique_ptr<Channel> accept(std::chrono::milliseconds) override {
    // The peer holds its own copies now; closing ours makes its death visible
    // here as end of file / EPIPE.
    to_peer_.read.reset();
    from_peer_.write.reset();
    return std::make_unique<FramedStreamChannel>(std::move(from_peer_.read),
                                                 std::move(to_peer_.write), max_message_, false);
  }

 private:
  std::size_t max_message_;
  PipePair to_peer_;
  PipePair from_peer_;
};

int parse_fd(std::string_view s, std::string_view address) {
  int fd = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), fd);
  if (ec != std::errc() || p != s.data() + s.size() || fd < 0) {
    throw std::invalid_argument("malformed pipe address '" + std::string(address) +
                                "' (expected fd:READ,WRITE)");
  }
  return fd;
}

class PipeMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "pipe"; }
  std::string_view family() const override { return "pipe"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kStream,
            .max_message = kMaxStreamMessage,
            .crosses_hosts = false,
            .pollable = true,
            .lossy = false};
  }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    ignore_sigpipe();
    return std::make_unique<PipeEndpoint>(options.max_message);
  }

  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    ignore_sigpipe();
    if (!address.starts_with("fd:") || address.find(',') == std::string_view::npos) {
      throw std::invalid_argument("malformed pipe address '" + std::string(address) +
                                  "' (expected fd:READ,WRITE)");
    }
    const auto body = address.substr(3);
    const auto comma = body.find(',');
    const int rfd = parse_fd(body.substr(0, comma), address);
    const int wfd = parse_fd(body.substr(comma + 1), address);
    // Check before taking ownership (closing a descriptor that is not ours
    // would be worse than an error). Inherited descriptors must also not
    // leak into anything this process execs.
    for (int fd : {rfd, wfd}) {
      if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        posix::throw_errno("inherited pipe descriptor " + std::to_string(fd) + " is not open");
      }
    }
    posix::Fd read_fd(rfd);
    posix::Fd write_fd(wfd);
    return std::make_unique<FramedStreamChannel>(std::move(read_fd), std::move(write_fd),
                                                 options.max_message, false);
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_pipe() { return std::make_unique<PipeMechanism>(); }

}  // namespace ipcbench::mech
