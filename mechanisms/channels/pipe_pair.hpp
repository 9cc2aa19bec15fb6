// Two anonymous pipes, one per direction: the endpoint and the address of
// the pipe mechanisms (pipe, pipe-splice), which differ only in the channel
// they build over the ends. Anonymous pipes have no name, so the peer
// inherits its ends across exec; the address names them ("fd:READ,WRITE"
// from the peer's view).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mechanisms/mechanism.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/retry.hpp"

namespace ipcbench::pipes {

// Builds one side's channel over its read and write ends.
using MakeChannel = std::unique_ptr<Channel> (*)(posix::Fd read, posix::Fd write,
                                                 std::size_t max_message);

struct PipePair {
  posix::Fd read;
  posix::Fd write;
};

inline PipePair make_pipe_pair() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) posix::throw_errno("cannot create pipe");
  return {posix::Fd(fds[0]), posix::Fd(fds[1])};
}

class PipePairEndpoint : public Endpoint {
 public:
  PipePairEndpoint(std::size_t max_message, MakeChannel make)
      : max_message_(max_message),
        make_(make),
        to_peer_(make_pipe_pair()),
        from_peer_(make_pipe_pair()) {}

  std::string address() const override {
    return "fd:" + std::to_string(to_peer_.read.get()) + "," +
           std::to_string(from_peer_.write.get());
  }

  std::vector<int> inherited_fds() const override {
    return {to_peer_.read.get(), from_peer_.write.get()};
  }

  std::unique_ptr<Channel> accept(std::chrono::milliseconds /*timeout*/) override {
    // The peer holds its own copies now; closing ours makes its death visible
    // here as end of file / EPIPE.
    to_peer_.read.reset();
    from_peer_.write.reset();
    return make_(std::move(from_peer_.read), std::move(to_peer_.write), max_message_);
  }

 private:
  std::size_t max_message_;
  MakeChannel make_;
  PipePair to_peer_;
  PipePair from_peer_;
};

// The peer's side: the ends the address names, checked before they are
// owned (closing a descriptor that is not ours would be worse than an
// error) and made close-on-exec (they must not leak into what it execs).
// `what` names the mechanism in errors.
inline std::unique_ptr<Channel> connect_pipe_pair(std::string_view address, std::size_t max_message,
                                                  MakeChannel make, std::string_view what) {
  const auto malformed = [&] {
    return std::invalid_argument("malformed " + std::string(what) + " address '" +
                                 std::string(address) + "' (expected fd:READ,WRITE)");
  };
  const auto parse_fd = [&](std::string_view s) {
    int fd = -1;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), fd);
    if (ec != std::errc() || p != s.data() + s.size() || fd < 0) throw malformed();
    return fd;
  };
  if (!address.starts_with("fd:") || address.find(',') == std::string_view::npos) {
    throw malformed();
  }
  const auto body = address.substr(3);
  const auto comma = body.find(',');
  const int rfd = parse_fd(body.substr(0, comma));
  const int wfd = parse_fd(body.substr(comma + 1));
  for (int fd : {rfd, wfd}) {
    if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
      posix::throw_errno("inherited " + std::string(what) + " descriptor " + std::to_string(fd) +
                         " is not open");
    }
  }
  return make(posix::Fd(rfd), posix::Fd(wfd), max_message);
}

}  // namespace ipcbench::pipes
