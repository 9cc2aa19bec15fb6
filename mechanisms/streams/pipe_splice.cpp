// pipe-splice: the pipes of `pipe`, but the sender hands its pages to the
// pipe with vmsplice(2) instead of writing (copying) them into the kernel;
// the receiver reads into its own memory as with `pipe` (splicing to
// nowhere would measure nothing).
//
// vmsplice puts references to the sender's pages in the pipe, so those
// pages must not change until the reader has consumed them. The harness
// reuses its send buffer for the next message at once, so each frame
// (length + payload) is first written into a staging ring of our own,
// which stands for an application that builds its message in place; the
// ring is spliced from and never rewritten while its bytes can still be in
// the pipe: a pipe holds at most F_GETPIPE_SZ bytes (one page per slot,
// and a spliced slot holds at most a page), so a ring of that capacity plus
// two frames (one frame's room lost at the wrap, one frame being written)
// only ever overwrites bytes the reader has taken. Copies per message: the
// sender's into the ring, the reader's out of the pipe; none in between.
// Each splice takes at least one pipe slot, so a default 64 KiB pipe holds
// only 16 small messages however small they are.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "mechanisms/channels/pipe_pair.hpp"
#include "mechanisms/channels/stream_framing.hpp"
#include "mechanisms/posix/mapping.hpp"

namespace ipcbench::mech {
namespace {

// Largest message: the ring holds the pipe (grown to a frame) and two
// frames, on each side.
constexpr std::size_t kMaxSpliceMessage = 16u << 20;
constexpr std::size_t kPage = 4096;

class PipeSpliceChannel : public FramedStreamChannel {
 public:
  PipeSpliceChannel(posix::Fd read, posix::Fd write, std::size_t max_message)
      : FramedStreamChannel(std::move(read), std::move(write), max_message, false) {
    // After the base class grew the pipe to hold a frame.
    const int pipe_bytes = ::fcntl(send_fd(), F_GETPIPE_SZ);
    if (pipe_bytes <= 0) posix::throw_errno("cannot read the pipe's size");
    const std::size_t frame = kFrameHeaderBytes + max_message;
    const std::size_t size =
        (static_cast<std::size_t>(pipe_bytes) + 2 * frame + kPage - 1) / kPage * kPage;
    // Populated now: page faults must not be measured.
    ring_ = posix::MappedRegion::map_shared(size, -1, MAP_POPULATE, "the pipe-splice staging ring");
  }

  // Its sends are vmsplices: an engine writing the bytes would measure `pipe`.
  std::optional<RawIo> raw_io() const noexcept override { return std::nullopt; }

 protected:
  ssize_t write_some(const ::iovec* iov, int iovcnt) override {
    std::size_t total = 0;
    for (int i = 0; i < iovcnt; ++i) total += iov[i].iov_len;
    // After a partial splice the caller passes the rest of the same frame,
    // which is in the ring already, right at pos_.
    const bool staged = iovcnt > 0 && iov[0].iov_base == next_source_ && total == staged_ahead_;
    if (!staged) {
      if (pos_ + total > ring_.size()) pos_ = 0;
      std::byte* to = ring_.data() + pos_;
      for (int i = 0; i < iovcnt; ++i) {
        std::memcpy(to, iov[i].iov_base, iov[i].iov_len);
        to += iov[i].iov_len;
      }
    }
    ::iovec from{ring_.data() + pos_, total};
    const ssize_t n = ::vmsplice(send_fd(), &from, 1, nonblocking() ? SPLICE_F_NONBLOCK : 0u);
    if (n < 0) return n;
    const auto spliced = static_cast<std::size_t>(n);
    pos_ += spliced;
    staged_ahead_ = total - spliced;
    next_source_ = staged_ahead_ == 0 ? nullptr : source_at(iov, iovcnt, spliced);
    return n;
  }

 private:
  // Where byte `offset` of the caller's iovecs lies.
  static const void* source_at(const ::iovec* iov, int iovcnt, std::size_t offset) {
    for (int i = 0; i < iovcnt; ++i) {
      if (offset < iov[i].iov_len) return static_cast<const std::byte*>(iov[i].iov_base) + offset;
      offset -= iov[i].iov_len;
    }
    return nullptr;
  }

  posix::MappedRegion ring_;
  std::size_t pos_ = 0;                // where the next frame's bytes go
  std::size_t staged_ahead_ = 0;       // bytes at pos_ staged but not yet spliced
  const void* next_source_ = nullptr;  // the caller's address of the first of them
};

std::unique_ptr<Channel> make_channel(posix::Fd read, posix::Fd write, std::size_t max_message) {
  return std::make_unique<PipeSpliceChannel>(std::move(read), std::move(write), max_message);
}

class PipeSpliceMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "pipe-splice"; }
  std::string_view family() const override { return "pipe"; }
  Capabilities capabilities() const override {
    return {.boundaries = Boundaries::kStream,
            .max_message = kMaxSpliceMessage,
            .crosses_hosts = false,
            .pollable = true,
            .lossy = false};
  }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    ignore_sigpipe();
    return std::make_unique<pipes::PipePairEndpoint>(options.max_message, make_channel);
  }

  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    ignore_sigpipe();
    return pipes::connect_pipe_pair(address, options.max_message, make_channel, "pipe-splice");
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_pipe_splice() { return std::make_unique<PipeSpliceMechanism>(); }

}  // namespace ipcbench::mech
