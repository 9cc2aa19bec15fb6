// libFuzzer target: the control protocol of `ipcbench serve` (bench/control/control.cpp).
//
// The input is a byte stream as a client could send it, cut into chunks
// (each chunk's first byte says how many bytes follow) and fed to the
// Decoder piece by piece, as recv() would. Checked against a reference
// reading of the framing (4-byte big-endian length 1..64 KiB, then one JSON
// object with a string "type"): the same messages in the same order, a
// ControlError exactly where the reference finds a bad frame, nothing
// before a frame is whole. Every decoded message then goes through the
// validators (hello, setup, ready), which must accept only what the
// protocol allows (checked field by field) or throw ControlError with a
// one-line reason; and encode() of a decoded message must decode to the
// same message. Anything else aborts; ASan/UBSan catch overruns.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench/control/control.hpp"

namespace {

using ipcbench::control::ControlError;
using nlohmann::json;

[[noreturn]] void fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz_control: %s %s\n", what, detail.c_str());
  std::abort();
}

void check_reason(const char* what) {
  const std::string_view r(what);
  if (r.empty()) fail("empty reason");
  for (char c : r) {
    if (static_cast<unsigned char>(c) < 0x20) fail("reason with a control byte:", std::string(r));
  }
}

// The reference: whole frames of `stream`, then how it ends.
struct Reference {
  std::vector<json> messages;
  bool bad = false;  // a bad frame follows the messages
};

Reference reference(std::string_view s) {
  Reference ref;
  std::size_t i = 0;
  while (s.size() - i >= 4) {
    const auto b = [&](std::size_t k) {
      return static_cast<std::uint32_t>(static_cast<unsigned char>(s[i + k]));
    };
    const std::uint32_t n = (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
    if (n == 0 || n > ipcbench::control::kMaxControlMessage) {
      ref.bad = true;
      return ref;
    }
    if (s.size() - i - 4 < n) return ref;  // incomplete: nothing yet
    json m = json::parse(s.substr(i + 4, n), nullptr, false);
    if (m.is_discarded() || !m.is_object() || !m.contains("type") || !m["type"].is_string()) {
      ref.bad = true;
      return ref;
    }
    ref.messages.push_back(std::move(m));
    i += 4 + n;
  }
  return ref;
}

const ipcbench::control::ServerLimits& limits() {
  static const ipcbench::control::ServerLimits l{{{"tcp", 64u << 20}, {"udp", 65507}}, {1, 3}};
  return l;
}

void check_validators(const json& m) {
  try {
    const std::string token = ipcbench::control::parse_hello(m);
    if (m.value("version", -1) != ipcbench::control::kVersion)
      fail("hello: wrong version accepted");
    if (token.size() > ipcbench::control::kMaxTokenBytes) fail("hello: long token accepted");
    for (const auto& [k, v] : m.items()) {
      if (k != "type" && k != "version" && k != "token") fail("hello: unknown key accepted:", k);
    }
  } catch (const ControlError& e) {
    check_reason(e.what());
  }
  try {
    const auto r = ipcbench::control::parse_setup(m, limits());
    bool offered = false;
    for (const auto& o : limits().mechanisms) {
      if (o.name == r.mechanism) {
        offered = true;
        if (r.max_message < 1 || r.max_message > o.max_message)
          fail("setup: size out of range accepted");
      }
    }
    if (!offered) fail("setup: mechanism not offered accepted:", r.mechanism);
    if (r.cpu != -1 && r.cpu != 1 && r.cpu != 3) fail("setup: CPU not offered accepted");
    const std::string& verify = m["verify"].get_ref<const std::string&>();
    if (r.verify_full != (verify == "full")) fail("setup: verify misread");
    for (const auto& [k, v] : m.items()) {
      if (k != "type" && k != "mechanism" && k != "max_message" && k != "verify" && k != "cpu") {
        fail("setup: unknown key accepted:", k);
      }
    }
  } catch (const ControlError& e) {
    check_reason(e.what());
  }
  try {
    std::int32_t pid = 0;
    const std::string address = ipcbench::control::parse_ready_address(m, &pid);
    if (pid < 1) fail("ready: bad pid accepted");
    if (address.find(':') == std::string::npos) fail("ready: address without port accepted");
  } catch (const ControlError& e) {
    check_reason(e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Reassemble the stream and its chunking.
  std::string stream;
  std::vector<std::string> chunks;
  for (std::size_t i = 0; i < size;) {
    const std::size_t n = std::min<std::size_t>(data[i] == 0 ? 1 : data[i], size - i - 1);
    ++i;
    chunks.emplace_back(reinterpret_cast<const char*>(data + i), n);
    stream.append(chunks.back());
    i += n;
  }
  const Reference ref = reference(stream);

  ipcbench::control::Decoder decoder;
  std::vector<json> got;
  bool bad = false;
  try {
    for (const std::string& c : chunks) {
      decoder.append(c.data(), c.size());
      while (auto m = decoder.next()) got.push_back(std::move(*m));
    }
  } catch (const ControlError& e) {
    check_reason(e.what());
    bad = true;
  }
  if (bad != ref.bad) fail(bad ? "decoder refused a good stream" : "decoder accepted a bad frame");
  if (got.size() != ref.messages.size()) {
    fail("message count differs:",
         std::to_string(got.size()) + " vs " + std::to_string(ref.messages.size()));
  }
  for (std::size_t k = 0; k < got.size(); ++k) {
    if (got[k] != ref.messages[k]) fail("message differs from the reference");
    check_validators(got[k]);
    // Round trip: what we would send decodes to the same message.
    std::string wire;
    try {
      wire = ipcbench::control::encode(got[k]);
    } catch (const ControlError& e) {
      check_reason(e.what());
      continue;  // (invalid UTF-8 replaced can grow a message past the limit)
    }
    ipcbench::control::Decoder again;
    again.append(wire.data(), wire.size());
    const auto back = again.next();
    if (!back) fail("encoded message does not decode");
    // Strings with invalid UTF-8 are replaced on encoding; compare only
    // messages that dump cleanly.
    bool clean = true;
    try {
      (void)got[k].dump();
    } catch (const json::type_error&) {
      clean = false;
    }
    if (clean && *back != got[k]) fail("round trip changed the message");
  }
  return 0;
}
