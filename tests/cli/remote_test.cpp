// Across hosts on one host: `ipcbench serve` on loopback in the background, `ipcbench run
// --remote` against it (the namespace tests in tests/remote/ do it over a real link, as root);
// the token rules of both ends.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "../support/files.hpp"
#include "../support/ipcbench.hpp"
#include "../support/load_sweep.hpp"
#include "../support/results.hpp"
#include "../support/run.hpp"
#include "../support/text.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace testproc;

// The serve log at `path`, headed by its name, for a failure message.
std::string log_text(const std::string& path) {
  return "\n--- " + path + " ---\n" + read_file(path);
}

// A free TCP port on loopback (bound once, then released).
int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// `ipcbench serve` in the background (testproc::spawn: run_command would wait for it to end,
// and the test runs clients against it meanwhile), its stderr in `log`; stopped with SIGTERM at
// the end.
class ServeProcess {
 public:
  explicit ServeProcess(const Args& args, const std::string& log) {
    Args argv = {kBinary, "serve"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = spawn(argv, {.err_path = log});
  }
  ~ServeProcess() { stop(); }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;
  // SIGTERM; returns the exit status (-1 if it had to be killed).
  int stop() {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    const std::optional<int> ws = wait_exit(pid_, std::chrono::seconds(3));
    if (ws) {
      status_ = exit_status(*ws);
    } else {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      status_ = -1;
    }
    pid_ = -1;
    return status_;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

// Waits until `port` on loopback accepts connections (serve is up).
bool wait_listening(int port) {
  for (int i = 0; i < 500; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

// Across hosts on one host: serve on loopback, run --remote against it (the
// namespace tests in tests/remote/ do it over a real link, as root).
TEST(Remote, LoopbackServeMeasuresEveryHostCrossingMechanism) {
  TempDir dir;
  const int port = free_loopback_port();
  ASSERT_GT(port, 0);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  ServeProcess serve({"--listen", address}, dir.file("serve.log"));
  ASSERT_TRUE(wait_listening(port)) << log_text(dir.file("serve.log"));
  const std::string out = dir.file("cross.json");
  const RunResult r =
      run_ipcbench({"run", "--remote", address, "--modes", "sync,async", "--sizes", "64",
                    "--min-time", "0.02", "--verify", "full", "--no-calibration", "--out", out});
  ASSERT_EQ(r.status, 0) << r << log_text(dir.file("serve.log"));
  const auto doc = read_json(out);
  ASSERT_TRUE(doc);
  ASSERT_TRUE((*doc)["ipcbench"].contains("remote"));
  EXPECT_EQ((*doc)["ipcbench"]["remote"]["address"], address);
  EXPECT_TRUE((*doc)["ipcbench"]["remote"]["host"].contains("kernel"));
  std::set<std::string> measured;
  for (const json& b : (*doc)["benchmarks"]) {
    SCOPED_TRACE(entry_label(b));
    EXPECT_EQ(b.value("across_hosts", false), true);
    EXPECT_TRUE(b["floor_ratio"].is_null());
    EXPECT_FALSE(b.contains("oneway_p50_ns"));
    if (is_measured_iteration(b)) measured.insert(b["mechanism"].get<std::string>());
  }
  std::set<std::string> crossing;
  for (const MechanismInfo& m : listed_mechanisms()) {
    if (m.crosses_hosts) crossing.insert(m.name);
  }
  EXPECT_EQ(measured, crossing);
  const RunResult v = validate(out);
  EXPECT_EQ(v.status, 0) << "the schema accepts a remote run\n" << v;
  EXPECT_EQ(serve.stop(), 0) << log_text(dir.file("serve.log"));
}

TEST(Remote, ServeOffLoopbackWithoutTokenIsRefused) {
  const RunResult r = run_ipcbench({"serve", "--listen", "0.0.0.0:7070"});
  EXPECT_EQ(r.status, 2) << r;
  EXPECT_TRUE(r.err.starts_with(kErrorPrefix)) << r;
  EXPECT_TRUE(mentions(r.err, "--insecure")) << r;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r;
}

TEST(Remote, TokenFileReadableByOthersIsRefused) {
  TempDir dir;
  const std::string token = dir.file("token");
  { std::ofstream(token) << "secret\n"; }
  ::chmod(token.c_str(), 0644);
  const RunResult r = run_ipcbench({"serve", "--listen", "0.0.0.0:7070", "--token-file", token});
  EXPECT_EQ(r.status, 2) << r;
  EXPECT_TRUE(mentions(r.err, "chmod 600")) << r;
  ::chmod(token.c_str(), 0600);
  const RunResult client = run_ipcbench({"run", "--remote", "127.0.0.1:1", "--mechanisms", "tcp",
                                         "--token-file", token + "-missing"});
  EXPECT_EQ(client.status, 2) << client;
}

TEST(Remote, WrongTokenFailsTheRunBeforeAnyCase) {
  TempDir dir;
  const int port = free_loopback_port();
  ASSERT_GT(port, 0);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  const std::string token = dir.file("token"), wrong = dir.file("wrong");
  std::ofstream(token) << "right-token\n";
  std::ofstream(wrong) << "wrong-token\n";
  ::chmod(token.c_str(), 0600);
  ::chmod(wrong.c_str(), 0600);
  ServeProcess serve({"--listen", address, "--token-file", token}, dir.file("serve.log"));
  ASSERT_TRUE(wait_listening(port));
  const std::string out = dir.file("r.json");
  const RunResult r =
      run_ipcbench({"run", "--remote", address, "--mechanisms", "tcp", "--sizes", "64",
                    "--min-time", "0.02", "--token-file", wrong, "--out", out});
  EXPECT_EQ(r.status, 1) << r;
  EXPECT_TRUE(mentions(r.err, "wrong token")) << r;
  EXPECT_EQ(r.err.find("Running"), std::string::npos) << "no case ran\n" << r;
  EXPECT_FALSE(fs::exists(out));
  // The same server still serves a client with the right token.
  const RunResult good =
      run_ipcbench({"run", "--remote", address, "--mechanisms", "tcp", "--modes", "sync",
                    "--patterns", "latency", "--sizes", "64", "--min-time", "0.02",
                    "--no-calibration", "--token-file", token, "--out", out});
  EXPECT_EQ(good.status, 0) << good << log_text(dir.file("serve.log"));
  EXPECT_EQ(serve.stop(), 0);
}

// A load sweep across hosts: the same peak, round trip, unloaded and steps, every row
// across hosts (round trips only), and the sweep's summary.
TEST(Remote, LoadSweepAcrossHosts) {
  TempDir dir;
  const int port = free_loopback_port();
  ASSERT_GT(port, 0);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  ServeProcess serve({"--listen", address}, dir.file("serve.log"));
  ASSERT_TRUE(wait_listening(port)) << log_text(dir.file("serve.log"));
  const std::string out = dir.file("load.json");
  const RunResult r = run_ipcbench({"run", "--remote", address, "--mechanisms", "tcp", "--sizes",
                                    "64", "--load-sweep=10%,30%,50%", "--min-time", "0.05",
                                    "--no-calibration", "--out", out});
  ASSERT_EQ(r.status, 0) << r << log_text(dir.file("serve.log"));
  const auto doc = read_json(out);
  ASSERT_TRUE(doc);
  std::multiset<std::string> roles;
  std::vector<json> steps;
  for (const json& b : (*doc)["benchmarks"]) {
    SCOPED_TRACE(entry_label(b));
    EXPECT_EQ(b.value("across_hosts", false), true);
    EXPECT_EQ(b["pattern"], "load");
    EXPECT_FALSE(b.contains("oneway_p50_ns")) << "round trips only across hosts";
    roles.insert(b["load_role"].get<std::string>());
    if (b["load_role"] == "step") {
      EXPECT_GT(b["offered_rate"].get<double>(), 0);
      EXPECT_GT(b["achieved_rate"].get<double>(), 0);
      steps.push_back(b);
    }
  }
  EXPECT_EQ(roles.count("peak"), 1u);
  EXPECT_EQ(roles.count("round-trip"), 1u);
  EXPECT_EQ(roles.count("unloaded"), 1u);
  const json& sweeps = (*doc)["ipcbench"]["load_sweeps"];
  ASSERT_EQ(sweeps.size(), 1u);
  EXPECT_EQ(sweeps[0]["mechanism"], "tcp");
  EXPECT_GT(sweeps[0]["peak_echo_rate"].get<double>(), 0);
  expect_sweep_follows_its_rule(steps, {"10%", "30%", "50%"}, sweeps[0]);
  const RunResult v = validate(out);
  EXPECT_EQ(v.status, 0) << v;
  EXPECT_EQ(serve.stop(), 0) << log_text(dir.file("serve.log"));
}
