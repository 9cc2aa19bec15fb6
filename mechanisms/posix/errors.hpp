// Error types shared by mechanisms and the harness.
//
// Setup failures throw std::system_error (errno + "cannot create ..."); the
// exceptions below name the failures the harness must tell apart, because
// they decide what goes into the report.
#pragma once

#include <stdexcept>
#include <string>

namespace ipcbench {

// The other side is gone: end of file, EPIPE, ECONNRESET, or the watchdog
// interrupted a blocking call because the peer died or stopped answering.
// The case fails with this message; the run goes on.
class PeerLost : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The bytes that arrived are not a valid message: a frame longer than the
// mechanism's limit or the caller's buffer, a truncated frame, a wrong
// sequence number or length. Never silently accepted.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A wait ran past its deadline (for example the peer never connected).
class Timeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ipcbench
