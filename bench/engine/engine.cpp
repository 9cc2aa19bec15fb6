// The engine a trial runs on: which apply to a mechanism, and the driver.
#include "bench/engine/engine.hpp"

#include <stdexcept>

namespace ipcbench::engine {

std::vector<Engine> engines_of(const Capabilities& caps) {
  if (!caps.pollable) return {};
  if (caps.raw_io) return {Engine::kPoll, Engine::kEpoll, Engine::kIoUring};
  return {Engine::kPoll, Engine::kEpoll};
}

Driver::Driver(Channel& channel, Engine engine, std::size_t max_message) : channel_(channel) {
  switch (engine) {
    case Engine::kPoll:
      break;
    case Engine::kEpoll:
      decorator_ = make_epoll(channel);
      break;
    case Engine::kIoUring:
      decorator_ = make_io_uring(channel, max_message);
      break;
  }
}

}  // namespace ipcbench::engine
