// pipe: a pair of anonymous pipes, one per direction (channels/pipe_pair.hpp),
// each message framed with its length and written with writev.
#include "mechanisms/channels/pipe_pair.hpp"
#include "mechanisms/channels/stream_framing.hpp"

namespace ipcbench::mech {
namespace {

std::unique_ptr<Channel> make_channel(posix::Fd read, posix::Fd write, std::size_t max_message) {
  return std::make_unique<FramedStreamChannel>(std::move(read), std::move(write), max_message,
                                               false);
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
            .lossy = false,
            .raw_io = true};
  }

  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    ignore_sigpipe();
    return std::make_unique<pipes::PipePairEndpoint>(options.max_message, make_channel);
  }

  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    ignore_sigpipe();
    return pipes::connect_pipe_pair(address, options.max_message, make_channel, "pipe");
  }
};

}  // namespace

std::unique_ptr<Mechanism> make_pipe() { return std::make_unique<PipeMechanism>(); }

}  // namespace ipcbench::mech
