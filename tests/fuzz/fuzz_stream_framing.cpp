// libFuzzer target: the framing decoder of the byte-stream mechanisms
// (FramedStreamChannel's receive side), fed arbitrary bytes through a real
// pipe or socketpair.
//
// The input is a script (read with FuzzedDataProvider): the channel's
// max_message and usual receive-buffer size, then operations: write raw
// bytes, write a frame header, write N filler bytes (so frames larger than
// the 64 KiB read buffer need no huge input), try_receive or receive (some
// with another buffer size), wait_receivable(0), close the writing end. Everything runs in one
// thread and in a fixed order, so a crash replays exactly.
//
// A reference decoder follows the same bytes. Every result is checked
// against it:
//   - a message must be the next whole frame, byte for byte;
//   - ProtocolError only for a bad length (0, above max_message) or a frame
//     the call's buffer cannot hold, once its 4 bytes were written;
//   - PeerLost only after the writer closed, with no whole frame left;
//   - "nothing yet" (try_receive) only while the next frame is incomplete;
//   - wait_receivable(0) must not say "no" while a whole frame is waiting;
//   - nothing else may be thrown, and every receive buffer is allocated with
//     its exact size so ASan reports any byte written past it.
// After the first exception the stream is given up, as the harness does.
#include <fcntl.h>
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "mechanisms/channels/stream_framing.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"

namespace {

using ipcbench::FramedStreamChannel;
using ipcbench::kFrameHeaderBytes;
using ipcbench::PeerLost;
using ipcbench::ProtocolError;
using ipcbench::posix::Fd;

// Limits chosen around the decoder's own boundaries: the 4-byte header, the
// 64 KiB read buffer (frames that fit it, exactly fill it, or bypass it).
constexpr std::array<std::size_t, 12> kMaxMessages = {1,     3,     16,    100,   4096,   65531,
                                                      65532, 65533, 65536, 70000, 131072, 200000};
// Receive buffers, as an offset from max_message (some smaller, so a valid
// frame may not fit) or absolute.
constexpr std::array<long, 8> kBufferDelta = {0, 0, 0, 1, -1, -10, 1000, -70000};

// Bytes written in all: pipes get 1 MiB of capacity (F_SETPIPE_SZ), a Unix
// socket's send buffer is smaller and charges overhead per write.
constexpr std::size_t kPipeStreamLimit = 512 * 1024;
constexpr std::size_t kSocketStreamLimit = 128 * 1024;
constexpr int kMaxOperations = 256;

[[noreturn]] void fail(const char* what, std::size_t frame_at) {
  std::fprintf(stderr, "fuzz_stream_framing: %s (reference frame at stream offset %zu)\n", what,
               frame_at);
  std::abort();
}

// The bytes written so far and where the next frame starts.
class Reference {
 public:
  explicit Reference(std::size_t max_message) : max_message_(max_message) {}

  // What the next frame is, for a call with a receive buffer of `buffer`.
  enum class Next {
    kIncomplete,     // its header or payload has not all been written
    kBadLength,      // its length is 0 or above max_message
    kTooBig,         // a valid length that the buffer cannot hold, whole or not
    kTooBigPartial,  // the same, payload not all written yet
    kWhole,          // all there, and it fits
  };

  Next next(std::size_t buffer) const {
    const std::size_t avail = stream_.size() - at_;
    if (avail < kFrameHeaderBytes) return Next::kIncomplete;
    const std::size_t len = length();
    if (len == 0 || len > max_message_) return Next::kBadLength;
    const bool whole = avail >= kFrameHeaderBytes + len;
    if (len > buffer) return whole ? Next::kTooBig : Next::kTooBigPartial;
    return whole ? Next::kWhole : Next::kIncomplete;
  }

  std::size_t length() const {
    std::uint32_t len = 0;
    std::memcpy(&len, stream_.data() + at_, sizeof len);
    return le32toh(len);
  }

  // Checks a delivered message against the next frame and moves past it.
  void delivered(std::span<const std::byte> message, std::size_t buffer) {
    if (next(buffer) != Next::kWhole)
      fail("a message was delivered where no whole frame fits", at_);
    if (message.size() != length()) fail("a message has the wrong length", at_);
    if (std::memcmp(message.data(), stream_.data() + at_ + kFrameHeaderBytes, message.size()) !=
        0) {
      fail("a message's bytes differ from the frame's", at_);
    }
    at_ += kFrameHeaderBytes + message.size();
  }

  std::vector<std::byte>& stream() { return stream_; }
  std::size_t at() const { return at_; }

 private:
  std::size_t max_message_;
  std::vector<std::byte> stream_;
  std::size_t at_ = 0;
};

using Next = Reference::Next;

class Harness {
 public:
  explicit Harness(FuzzedDataProvider& fdp) : fdp_(fdp) {
    is_socket_ = fdp_.ConsumeBool();
    max_message_ = fdp_.PickValueInArray(kMaxMessages);
    buffer_size_ = buffer_size(fdp_.PickValueInArray(kBufferDelta));
    limit_ = is_socket_ ? kSocketStreamLimit : kPipeStreamLimit;
    ref_.emplace(max_message_);

    int fds[2];
    if (is_socket_) {
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
      const int big = 4 << 20;  // the kernel caps it at its maximum
      ::setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    } else {
      if (::pipe2(fds, O_CLOEXEC) != 0) std::abort();
      ::fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);  // fds[0] reads, fds[1] writes
    }
    // The writer never blocks: a full buffer just ends the writing.
    ::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    writer_ = Fd(fds[1]);
    channel_.emplace(Fd(fds[0]), Fd(), max_message_, is_socket_);
  }

  void run() {
    for (int op = 0; op < kMaxOperations && fdp_.remaining_bytes() > 0 && !done_; ++op) {
      switch (fdp_.ConsumeIntegralInRange<int>(0, 7)) {
        case 0:
        case 1:
          write(fdp_.ConsumeBytes<std::byte>(fdp_.ConsumeIntegralInRange<std::size_t>(1, 512)));
          break;
        case 2: {  // a frame header: lengths near the limits are the interesting ones
          std::uint32_t len = 0;
          switch (fdp_.ConsumeIntegralInRange<int>(0, 3)) {
            case 0:
              len = fdp_.ConsumeIntegral<std::uint32_t>();
              break;
            case 1:
              len = static_cast<std::uint32_t>(max_message_ +
                                               fdp_.ConsumeIntegralInRange<int>(-2, 2));
              break;
            case 2:
              len = static_cast<std::uint32_t>(buffer_size_ +
                                               fdp_.ConsumeIntegralInRange<int>(-2, 2));
              break;
            default:
              len = fdp_.ConsumeIntegralInRange<std::uint32_t>(0, 300);
              break;
          }
          len = htole32(len);
          std::vector<std::byte> header(sizeof len);
          std::memcpy(header.data(), &len, sizeof len);
          write(header);
          break;
        }
        case 3: {  // filler: a recognisable pattern, so misplaced bytes show
          const std::size_t n = fdp_.ConsumeIntegralInRange<std::size_t>(1, 80000);
          std::vector<std::byte> filler(n);
          const std::size_t base = ref_->stream().size();
          for (std::size_t i = 0; i < n; ++i) {
            filler[i] = static_cast<std::byte>(((base + i) * 131 + 7) >> 3);
          }
          write(filler);
          break;
        }
        case 4:
          try_receive(call_buffer());
          break;
        case 5: {
          const bool may_close = fdp_.ConsumeBool();
          receive(call_buffer(), may_close);
          break;
        }
        case 6:
          wait_receivable();
          break;
        default:
          close_writer();
          break;
      }
    }
    // The writer goes away; whatever is left must come out, then PeerLost.
    close_writer();
    for (int i = 0; !done_; ++i) {
      if (i > 100000) fail("the channel never reported the end of the stream", ref_->at());
      if (i % 2 == 0) {
        try_receive(buffer_size_);
      } else {
        receive(buffer_size_, true);
      }
    }
  }

 private:
  std::size_t buffer_size(long delta) const {
    const long size = static_cast<long>(max_message_) + delta;
    return size < 1 ? 1 : static_cast<std::size_t>(size);
  }

  // Most calls use the channel's usual buffer; some pass another one (the
  // interface allows it), e.g. smaller than a frame an earlier call began.
  std::size_t call_buffer() {
    if (fdp_.ConsumeIntegralInRange<int>(0, 3) != 0) return buffer_size_;
    return buffer_size(fdp_.PickValueInArray(kBufferDelta));
  }

  void write(std::vector<std::byte> bytes) {
    if (!writer_ || bytes.empty()) return;
    auto& stream = ref_->stream();
    if (stream.size() >= limit_) return;
    bytes.resize(std::min(bytes.size(), limit_ - stream.size()));
    const ssize_t n = ::write(writer_.get(), bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      std::abort();
    }
    stream.insert(stream.end(), bytes.begin(), bytes.begin() + n);
  }

  void close_writer() { writer_.reset(); }

  // Runs a receiving call with a buffer of exactly `size` bytes (so ASan
  // reports any byte written past it) and checks how it ended.
  template <typename Call>
  void checked(std::size_t size, Call&& call) {
    const Next next = ref_->next(size);
    std::unique_ptr<std::byte[]> buffer(new std::byte[size]);
    try {
      call(std::span(buffer.get(), size));
    } catch (const ProtocolError&) {
      if (next != Next::kBadLength && next != Next::kTooBig && next != Next::kTooBigPartial) {
        fail("ProtocolError, but the next frame is valid and fits the buffer", ref_->at());
      }
      done_ = true;
    } catch (const PeerLost&) {
      if (writer_) fail("PeerLost while the writer is still open", ref_->at());
      if (next != Next::kIncomplete && next != Next::kTooBigPartial) {
        fail("PeerLost although a whole frame or a bad length is waiting", ref_->at());
      }
      done_ = true;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fuzz_stream_framing: unexpected exception: %s\n", e.what());
      fail("an exception other than ProtocolError or PeerLost", ref_->at());
    }
  }

  void try_receive(std::size_t size) {
    checked(size, [&](std::span<std::byte> buffer) {
      const std::optional<std::size_t> n = channel_->try_receive(buffer);
      if (!n) {
        const Next next = ref_->next(size);
        if (next != Next::kIncomplete && next != Next::kTooBigPartial) {
          fail("try_receive returned nothing although a whole frame or a bad length is waiting",
               ref_->at());
        }
        if (!writer_) fail("try_receive returned nothing after the writer closed", ref_->at());
        return;
      }
      if (*n > size) fail("try_receive returned more than the buffer holds", ref_->at());
      ref_->delivered(buffer.first(*n), size);
    });
  }

  // A blocking receive only when it cannot block for good: what it must act
  // on is all there, or the writer is gone (closed first if `may_close`).
  void receive(std::size_t size, bool may_close) {
    const Next next = ref_->next(size);
    if ((next == Next::kIncomplete || next == Next::kTooBigPartial) && writer_) {
      if (!may_close) return;
      close_writer();
    }
    checked(size, [&](std::span<std::byte> buffer) {
      const std::size_t n = channel_->receive(buffer);
      if (n > size) fail("receive returned more than the buffer holds", ref_->at());
      ref_->delivered(buffer.first(n), size);
    });
  }

  void wait_receivable() {
    checked(buffer_size_, [&](std::span<std::byte>) {
      const bool ready = channel_->wait_receivable(std::chrono::nanoseconds::zero());
      if (!ready && ref_->next(buffer_size_) == Next::kWhole) {
        fail("wait_receivable said no although a whole frame is waiting", ref_->at());
      }
    });
  }

  FuzzedDataProvider& fdp_;
  bool is_socket_ = false;
  std::size_t max_message_ = 0;
  std::size_t buffer_size_ = 0;  // the usual receive buffer
  std::size_t limit_ = 0;
  std::optional<Reference> ref_;
  Fd writer_;
  std::optional<FramedStreamChannel> channel_;
  bool done_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider fdp(data, size);
  Harness harness(fdp);
  harness.run();
  return 0;
}
