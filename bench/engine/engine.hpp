// Engines: how the async trials wait for a pollable channel and, with
// io_uring, move its bytes. The trials (bench/measure/) drive a channel
// through a Driver and see only the Channel interface: the engine is a
// decorator around the mechanism's channel, or the channel itself (poll).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "bench/core/settings.hpp"
#include "mechanisms/mechanism.hpp"

namespace ipcbench::engine {

// The engines a mechanism's async cases can run on: none for one that is
// not pollable (its channel waits its own way: spin, futex; the row's
// `wait` says which), poll and epoll for a pollable one, and io_uring too
// where its bytes are plain reads and writes (Capabilities::raw_io).
std::vector<Engine> engines_of(const Capabilities& caps);

// Why `e` cannot run on this machine (io_uring: the kernel or a seccomp
// policy refuses io_uring_setup, or the build has no liburing), in words a
// user can act on; empty when it can. Probed once.
std::string unavailable_reason(Engine e);

// A decorator's end of the trial (engine.cpp's implementations).
class Decorator : public Channel {
 public:
  // Hands the descriptors back to the channel at a message boundary, as
  // found; throws ProtocolError when bytes came that nothing asked for.
  virtual void finish() = 0;
};

// One trial's channel as `engine` drives it. poll: the channel itself.
// epoll: its waits are epoll_pwait2 on sets made once. io_uring: the
// decorator does the channel's I/O (Channel::raw_io) and waits in
// io_uring_enter. Call finish() before the channel is used directly again
// (the stats exchange after the timed span).
class Driver {
 public:
  Driver(Channel& channel, Engine engine, std::size_t max_message);
  Channel& channel() noexcept { return decorator_ ? *decorator_ : channel_; }
  void finish() {
    if (decorator_) decorator_->finish();
  }

 private:
  Channel& channel_;
  std::unique_ptr<Decorator> decorator_;
};

// The decorators (epoll.cpp, io_uring.cpp). make_io_uring throws
// std::system_error when io_uring cannot be set up, ProtocolError when the
// channel is not at a message boundary.
std::unique_ptr<Decorator> make_epoll(Channel& channel);
std::unique_ptr<Decorator> make_io_uring(Channel& channel, std::size_t max_message);

}  // namespace ipcbench::engine
