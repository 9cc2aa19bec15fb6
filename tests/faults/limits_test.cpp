// Exhausted limits (issue 9): a low open-file limit, a full /dev/shm, the
// POSIX queue limits, no free System V ids. The affected case fails with an
// error naming the limit and what to do, the other cases of the same run
// succeed (exit status 1, a JSON with everyone's results), nothing is left.
//
// The suite changes no system setting: every limit is made small only for
// the ipcbench child, in the child before exec (run_command's before_exec):
// setrlimit, a small tmpfs over /dev/shm in a private mount namespace
// (unshare(CLONE_NEWNS)), or the per-namespace sysctls of a private IPC
// namespace (unshare(CLONE_NEWIPC) + /proc/sys/fs/mqueue/queues_max,
// /proc/sys/kernel/msgmni). Tests that need root or namespaces skip, saying
// why, where those are not available.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../support/files.hpp"
#include "../support/run.hpp"

#ifndef IPCBENCH_BINARY
#error "IPCBENCH_BINARY must name the ipcbench executable"
#endif

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Exit status of a child whose setup (unshare, mount, sysctl) was refused.
constexpr int kSetupRefused = 120;

using testproc::read_file;

// In the child: fails the setup with a reason the parent reads.
[[noreturn]] void refuse(const std::string& reason_path, const std::string& why) {
  std::ofstream(reason_path) << why << ": " << std::strerror(errno);
  ::_exit(kSetupRefused);
}

bool write_file(const char* path, const char* text) {
  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const auto n = static_cast<ssize_t>(std::strlen(text));
  const bool ok = ::write(fd, text, static_cast<std::size_t>(n)) == n;
  ::close(fd);
  return ok;
}

struct Outcome {
  int status = -1;
  bool refused = false;
  std::string refusal;
  std::string err;
  nlohmann::json result;                      // the JSON file (null if none)
  std::map<std::string, std::string> errors;  // mechanism -> error ("" = succeeded)
  pid_t pid = -1;
};

class LimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, sysctls)";
    char tmpl[] = "/tmp/ipcbench-limits-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    work_ = tmpl;
  }
  void TearDown() override {
    if (work_.empty()) return;
    // No owner record left: every run ended normally.
    const std::string owners = work_ + "/owners";
    if (fs::exists(owners)) {
      EXPECT_TRUE(fs::is_empty(owners)) << "owner record left";
    }
    std::error_code ec;
    fs::remove_all(work_, ec);
  }

  // Runs `ipcbench run --mechanisms M,...` one sync latency case each of
  // `size`, after `setup` ran in the child just before exec (it calls refuse()
  // to refuse).
  Outcome run(const std::string& mechanisms, const std::string& size,
              const std::function<void(const std::string&)>& setup) {
    Outcome o;
    const std::string out = work_ + "/result.json";
    const std::string reason = work_ + "/refused";
    fs::remove(out);
    // In the child: only stdin/out/err (descriptors the test happens to hold
    // must not count against its open-file limit), then the test's setup.
    const auto in_child = [&] {
      ::syscall(SYS_close_range, 3u, ~0u, 0u);
      setup(reason);
    };
    const testproc::RunResult r = testproc::run_command(
        {IPCBENCH_BINARY, "run", "--mechanisms", mechanisms, "--modes", "sync", "--patterns",
         "latency", "--sizes", size, "--min-time", "0.02", "--no-calibration", "--out", out},
        {.limit = 120s,
         .env = {"IPCBENCH_OWNER_DIR=" + work_ + "/owners"},
         .before_exec = in_child});
    o.pid = r.pid;
    o.status = r.status;
    o.err = r.err;
    if (o.status == kSetupRefused && fs::exists(reason)) {
      o.refused = true;
      o.refusal = read_file(reason);
      return o;
    }
    if (fs::exists(out)) {
      o.result = nlohmann::json::parse(read_file(out), nullptr, false);
      if (o.result.is_object() && o.result.contains("benchmarks")) {
        for (const auto& b : o.result["benchmarks"]) {
          o.errors[b.value("mechanism", "")] =
              b.value("error_occurred", false) ? b.value("error_message", "?") : "";
        }
      }
    }
    return o;
  }

  // What a run of pid `pid` may have left in the shared name spaces.
  static std::vector<std::string> leftovers(pid_t pid) {
    std::vector<std::string> left;
    const std::string stem = "ipcbench." + std::to_string(pid) + ".";
    for (const char* dir : {"/tmp", "/dev/shm"}) {
      for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().filename().string().starts_with(stem)) left.push_back(e.path().string());
      }
    }
    return left;
  }

  // The common verdict: exit 1, the affected mechanism failed with all of
  // `texts` in its error, every other one succeeded, nothing left.
  void expect_only_failed(const Outcome& o, const std::string& affected,
                          const std::vector<std::string>& texts) {
    EXPECT_EQ(o.status, 1) << o.err;
    ASSERT_FALSE(o.errors.empty()) << "no JSON result; stderr:\n" << o.err;
    for (const auto& [mechanism, error] : o.errors) {
      if (mechanism == affected) {
        EXPECT_FALSE(error.empty()) << affected << " did not fail";
        for (const auto& t : texts) {
          EXPECT_NE(error.find(t), std::string::npos) << "'" << t << "' missing from: " << error;
        }
      } else {
        EXPECT_EQ(error, "") << mechanism << " should have succeeded";
      }
    }
    EXPECT_TRUE(o.errors.contains(affected));
    EXPECT_TRUE(leftovers(o.pid).empty()) << leftovers(o.pid).front();
  }

  std::string work_;
};

// Joins a private IPC namespace, sets `sysctl` to `value` there and drops
// CAP_SYS_RESOURCE (root would bypass queues_max) for the exec'd program.
std::function<void(const std::string&)> private_ipc(const char* sysctl, const char* value) {
  return [=](const std::string& reason) {
    if (::unshare(CLONE_NEWIPC) != 0) refuse(reason, "unshare(CLONE_NEWIPC)");
    if (!write_file(sysctl, value)) refuse(reason, std::string("writing ") + sysctl);
    if (::prctl(PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0) != 0) {
      refuse(reason, "dropping CAP_SYS_RESOURCE");
    }
  };
}

TEST_F(LimitsTest, LowOpenFileLimitNamesRlimitNofile) {
  // The smallest limit at which sysv-mq (no descriptors of its own) still
  // runs: pipe and posix-mq need more and must fail, saying which limit.
  for (rlim_t limit = 8; limit <= 16; ++limit) {
    const Outcome o = run("sysv-mq,pipe,posix-mq", "64", [limit](const std::string& reason) {
      const rlimit rl{limit, limit};
      if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) refuse(reason, "setrlimit(RLIMIT_NOFILE)");
    });
    if (o.errors.empty() || !o.errors.at("sysv-mq").empty()) continue;  // too low for anything
    EXPECT_EQ(o.status, 1) << o.err;
    for (const char* affected : {"pipe", "posix-mq"}) {
      const std::string& error = o.errors.at(affected);
      EXPECT_NE(error.find("the open-file limit (RLIMIT_NOFILE, " + std::to_string(limit) +
                           ") is reached: raise it with `ulimit -n`"),
                std::string::npos)
          << affected << " at limit " << limit << ": '" << error << "'";
    }
    EXPECT_TRUE(leftovers(o.pid).empty());
    return;
  }
  FAIL() << "sysv-mq never ran with RLIMIT_NOFILE of at most 16";
}

TEST_F(LimitsTest, FullDevShmNamesItsSizeAndFreeSpace) {
  // A private 64 MiB /dev/shm filled up to its last MiB, as other programs
  // would fill it (a small one would only lower the Boost mechanisms'
  // largest message, and their cases would be skipped). 256 KiB cases:
  // shm-spin needs two 1 MiB rings, boost-shm and boost-mq several MiB of
  // slots or messages; pipe needs none.
  const Outcome o =
      run("shm-spin,boost-shm,boost-mq,pipe", "256KiB", [](const std::string& reason) {
        if (::unshare(CLONE_NEWNS) != 0) refuse(reason, "unshare(CLONE_NEWNS)");
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
          refuse(reason, "making mounts private");
        }
        if (::mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777") !=
            0) {
          refuse(reason, "mounting a tmpfs on /dev/shm");
        }
        const int fd = ::open("/dev/shm/filler", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || ::posix_fallocate(fd, 0, 63 << 20) != 0) refuse(reason, "filling /dev/shm");
        ::close(fd);
      });
  if (o.refused) GTEST_SKIP() << o.refusal;
  EXPECT_EQ(o.status, 1) << o.err;
  ASSERT_EQ(o.errors.size(), 4u) << o.err;
  for (const char* affected : {"shm-spin", "boost-shm", "boost-mq"}) {
    const std::string& error = o.errors.at(affected);
    EXPECT_NE(error.find("/dev/shm is full (size 64.0 MiB, free "), std::string::npos)
        << affected << ": '" << error << "'";
    EXPECT_NE(error.find("free space or mount it larger"), std::string::npos) << error;
  }
  EXPECT_EQ(o.errors.at("pipe"), "");
  // The tmpfs went with the namespace; the host's /dev/shm holds nothing.
  EXPECT_TRUE(leftovers(o.pid).empty());
}

TEST_F(LimitsTest, PosixQueuesMaxNamesTheSysctl) {
  const Outcome o = run("posix-mq,pipe", "64", private_ipc("/proc/sys/fs/mqueue/queues_max", "0"));
  if (o.refused) GTEST_SKIP() << o.refusal;
  expect_only_failed(o, "posix-mq",
                     {"fs.mqueue.queues_max, 0 queues) is reached", "sysctl fs.mqueue.queues_max"});
}

TEST_F(LimitsTest, RlimitMsgqueueNamesTheRlimit) {
  const Outcome o = run("posix-mq,pipe", "64", [](const std::string& reason) {
    const rlimit rl{0, 0};
    if (::setrlimit(RLIMIT_MSGQUEUE, &rl) != 0) refuse(reason, "setrlimit(RLIMIT_MSGQUEUE)");
  });
  if (o.refused) GTEST_SKIP() << o.refusal;
  expect_only_failed(o, "posix-mq", {"RLIMIT_MSGQUEUE, 0 bytes per user", "ulimit -q"});
}

TEST_F(LimitsTest, NoFreeSysvIdsNamesMsgmni) {
  const Outcome o = run("sysv-mq,pipe", "64", private_ipc("/proc/sys/kernel/msgmni", "0"));
  if (o.refused) GTEST_SKIP() << o.refusal;
  expect_only_failed(o, "sysv-mq", {"kernel.msgmni, 0 queues) is reached", "sysctl kernel.msgmni"});
}

TEST_F(LimitsTest, SysvIdsUsedUpByOthersNamesMsgmni) {
  // msgmni 4 in a private namespace, all four taken before ipcbench starts
  // (as another program would): the same error, the host untouched.
  const Outcome o = run("sysv-mq,pipe", "64", [](const std::string& reason) {
    private_ipc("/proc/sys/kernel/msgmni", "4")(reason);
    for (int i = 0; i < 4; ++i) {
      if (::msgget(IPC_PRIVATE, IPC_CREAT | 0600) < 0) {
        refuse(reason, "filling the namespace's queues");
      }
    }
  });
  if (o.refused) GTEST_SKIP() << o.refusal;
  expect_only_failed(o, "sysv-mq", {"kernel.msgmni, 4 queues) is reached"});
}

}  // namespace
