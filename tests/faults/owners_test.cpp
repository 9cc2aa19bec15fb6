// Owner records and `ipcbench clean` (issue 9): a run killed with SIGKILL
// leaves its objects and its record; `clean --dry-run` lists exactly those
// objects and removes nothing, `clean` removes them and nothing else; a live
// run's objects survive a concurrent clean and a second run's sweep; a
// reused pid counts as dead; objects that are not ipcbench's are untouched;
// the next run sweeps by itself; malformed records are reported, never fatal.
//
// Every test runs the real binary with a private IPCBENCH_OWNER_DIR, finds
// what a run left independently of its record (/dev/shm, the names the
// mechanisms derive from pid and case tag, /proc/sysvipc/msg by the runner's
// pid), and leaves nothing behind.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <mqueue.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../support/available.hpp"
#include "../support/files.hpp"
#include "../support/proc.hpp"
#include "../support/run.hpp"
#include "mechanisms/registry.hpp"

#ifndef IPCBENCH_BINARY
#error "IPCBENCH_BINARY must name the ipcbench executable"
#endif

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using testproc::read_file;

using testproc::proc_stat;

std::string boot_id() {
  std::string id;
  std::istringstream(read_file("/proc/sys/kernel/random/boot_id")) >> id;
  return id;
}

// An ipcbench started in the background, its output in files.
struct Child {
  pid_t pid = -1;
  std::string out_path, err_path;
  std::string out() const { return read_file(out_path); }
  std::string err() const { return read_file(err_path); }
};

std::set<std::string> objects_of(pid_t pid, pid_t peer = -1);

class OwnersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ipcbench-owners-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    work_ = tmpl;
    owner_dir_ = work_ + "/owners";
    // A peer that never connects: the runner waits in accept() with its
    // objects created and named.
    hang_ = work_ + "/hang.sh";
    std::ofstream(hang_) << "#!/bin/sh\nexec sleep 60\n";
    fs::permissions(hang_, fs::perms::owner_all);
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);  // orphaned peers come to us to be reaped
  }

  void TearDown() override {
    for (pid_t pid : children_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    children_.clear();
    reap_orphans();
    // Nothing of ours may be left: the owner directory is empty (or gone).
    std::vector<std::string> left;
    if (fs::exists(owner_dir_)) {
      for (const auto& e : fs::directory_iterator(owner_dir_)) left.push_back(e.path().string());
      EXPECT_TRUE(left.empty()) << "owner records left: " << left.front();
    }
    // A test that failed after killing a runner (or before its own clean)
    // leaves a record naming the run's objects: clean them with it before
    // the record goes with the work directory, or they are orphaned.
    if (!left.empty()) {
      const auto [status, out] = run({"clean"});
      EXPECT_EQ(status, 0) << "clean in TearDown: " << out << last_err_;
    }
    for (const std::string& name : decoy_shms_) ::shm_unlink(name.c_str());
    for (int id : decoy_queues_) ::msgctl(id, IPC_RMID, nullptr);
    std::error_code ec;
    fs::remove_all(work_, ec);
  }

  static void reap_orphans() {
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }

  // Starts ipcbench in the background (testproc::spawn: the tests kill it or
  // its peer while it runs, which run_command cannot), with the test's owner
  // directory; TearDown kills it if the test did not wait for it.
  Child spawn(const std::vector<std::string>& args, bool hanging_peer = false) {
    Child c;
    static int n = 0;
    c.out_path = work_ + "/out" + std::to_string(++n);
    c.err_path = work_ + "/err" + std::to_string(n);
    std::vector<std::string> argv = {IPCBENCH_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    if (hanging_peer) argv.insert(argv.end(), {"--peer-executable", hang_});
    c.pid = testproc::spawn(argv, {.out_path = c.out_path,
                                   .err_path = c.err_path,
                                   .env = {"IPCBENCH_OWNER_DIR=" + owner_dir_}});
    if (c.pid > 0) children_.push_back(c.pid);
    return c;
  }

  // Waits for `c` (at most `limit`); its exit status, -1 if it had to be killed.
  int wait(Child& c, std::chrono::seconds limit = 60s) {
    const std::optional<int> status = testproc::wait_exit(c.pid, limit);
    if (!status) {
      ::kill(c.pid, SIGKILL);
      ::waitpid(c.pid, nullptr, 0);
      forget(c.pid);
      ADD_FAILURE() << "ipcbench " << c.pid << " overran; stderr: " << c.err();
      return -1;
    }
    forget(c.pid);
    return testproc::exit_status(*status);
  }

  // Runs ipcbench to the end (testproc::run_command, at most 60 s), with the
  // test's owner directory; {exit status, stdout}.
  std::pair<int, std::string> run(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {IPCBENCH_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    const testproc::RunResult r =
        testproc::run_command(argv, {.limit = 60s, .env = {"IPCBENCH_OWNER_DIR=" + owner_dir_}});
    last_err_ = r.err;
    return {r.status, r.out};
  }

  void forget(pid_t pid) { std::erase(children_, pid); }

  // The child of `runner` (its peer), or -1.
  static pid_t peer_of(pid_t runner) {
    for (const pid_t pid : testproc::all_pids()) {
      const auto st = proc_stat(pid);
      if (st && st->ppid == runner) return pid;
    }
    return -1;
  }

  // Polls `ready` for up to `limit`.
  template <typename Ready>
  static bool eventually(Ready ready, std::chrono::milliseconds limit = 20s) {
    const auto deadline = Clock::now() + limit;
    while (!ready()) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }

  // SIGKILLs the runner, reaps it and waits for its peer to die with it.
  void kill_runner(Child& c) {
    const pid_t peer = peer_of(c.pid);
    ASSERT_EQ(::kill(c.pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(c.pid, &status, 0), c.pid);
    forget(c.pid);
    if (peer > 0) {
      EXPECT_TRUE(eventually(
          [&] {
            reap_orphans();
            const auto st = proc_stat(peer);
            return !st || st->state == 'Z';
          },
          5s))
          << "the peer " << peer << " outlived its runner";
      reap_orphans();
    }
  }

  std::string record_text() const {
    std::string all;
    if (!fs::exists(owner_dir_)) return all;
    for (const auto& e : fs::directory_iterator(owner_dir_)) all += read_file(e.path().string());
    return all;
  }

  // Objects that are not ipcbench's, made by a test: removed in TearDown,
  // whatever assertion ended the test.
  std::string make_decoy_shm(const std::string& name) {
    const int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    EXPECT_GE(fd, 0) << name << ": " << std::strerror(errno);
    if (fd >= 0) {
      ::close(fd);
      decoy_shms_.push_back(name);
    }
    return name;
  }
  int make_decoy_queue() {
    const int id = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    EXPECT_GE(id, 0) << "msgget: " << std::strerror(errno);
    if (id >= 0) decoy_queues_.push_back(id);
    return id;
  }

  // What the owner records hold now (added and not removed again), in the
  // spelling of objects_of. A sysv-msg line without an id only announces a
  // queue about to be created; the line with its id follows.
  std::set<std::string> held_by_records() const {
    std::set<std::string> held;
    std::istringstream in(record_text());
    const std::regex sysv("^sysv-msg key=0x[0-9a-f]+ id=([0-9]+).*");
    for (std::string line; std::getline(in, line);) {
      if (!line.starts_with("+ ") && !line.starts_with("- ")) continue;
      std::string object = line.substr(2);
      std::smatch m;
      if (object.starts_with("sysv-msg")) {
        if (!std::regex_match(object, m, sysv)) continue;
        object = "sysv-msg id=" + m[1].str();
      }
      if (line[0] == '+') {
        held.insert(object);
      } else {
        held.erase(object);
      }
    }
    return held;
  }

  // objects_of(pid), and the System V queues the records hold that the
  // kernel still has: a queue nobody has used yet carries no pid in
  // /proc/sysvipc/msg (its last sender and receiver are 0), so before accept
  // only the record can name it.
  std::set<std::string> objects_with_unused_queues(pid_t pid) const {
    std::set<std::string> found = objects_of(pid);
    for (const std::string& o : held_by_records()) {
      if (!o.starts_with("sysv-msg id=")) continue;
      msqid_ds ds{};
      if (::msgctl(std::stoi(o.substr(std::strlen("sysv-msg id="))), IPC_STAT, &ds) == 0) {
        found.insert(o);
      }
    }
    return found;
  }

  // Mid-case, with what the case holds no longer changing until it ends.
  // sysv-mq: messages went both ways: objects_of sees both queues (it finds
  // them by their last sender/receiver pid, 0 until used) and the record
  // holds them. The others: the runner accepted the peer and unlinked the
  // case's names (the record's "- " lines are written after the unlink).
  // The case is under way: its objects are held by both sides (see the definition).
  bool mid_case(pid_t runner, pid_t peer) const;

  std::string work_, owner_dir_, hang_, last_err_;
  std::vector<pid_t> children_;
  std::vector<std::string> decoy_shms_;
  std::vector<int> decoy_queues_;
};

// The objects run `pid` left, found without its record, as `clean` spells
// them: "dir PATH", "posix-shm /NAME", "posix-mq /NAME", "sysv-msg id=N".
std::set<std::string> objects_of(pid_t pid, pid_t peer) {
  std::set<std::string> found;
  const std::string stem = "ipcbench." + std::to_string(pid) + ".";
  for (const auto& e : fs::directory_iterator("/tmp")) {
    if (e.path().filename().string().starts_with(stem)) found.insert("dir " + e.path().string());
  }
  for (const auto& e : fs::directory_iterator("/dev/shm")) {
    const std::string name = e.path().filename().string();
    if (name.starts_with(stem)) found.insert("posix-shm /" + name);
  }
  // POSIX queues: /dev/mqueue may not be mounted; the names are derived
  // from the pid and the case tag ("case<index>-<pid>").
  for (int index = 0; index < 4; ++index) {
    for (const char* dir : {".up", ".down"}) {
      const std::string name =
          "/" + stem + "case" + std::to_string(index) + "-" + std::to_string(pid) + dir;
      const mqd_t q = ::mq_open(name.c_str(), O_RDONLY | O_NONBLOCK);
      if (q >= 0) {
        ::mq_close(q);
        found.insert("posix-mq " + name);
      }
    }
  }
  // System V: queues the runner (or its peer) last sent to or received from.
  std::istringstream sysv(read_file("/proc/sysvipc/msg"));
  std::string line;
  std::getline(sysv, line);  // header
  while (std::getline(sysv, line)) {
    std::istringstream f(line);
    long key, id, perms, cbytes, qnum, lspid, lrpid;
    if (!(f >> key >> id >> perms >> cbytes >> qnum >> lspid >> lrpid)) continue;
    if (lspid == pid || lrpid == pid || (peer > 0 && (lspid == peer || lrpid == peer))) {
      found.insert("sysv-msg id=" + std::to_string(id));
    }
  }
  return found;
}

bool OwnersTest::mid_case(pid_t runner, pid_t peer) const {
  const std::set<std::string> held = held_by_records();
  // System V queues have no name to unlink: both of the case's are held.
  const std::set<std::string> seen = objects_of(runner, peer);
  if (std::count_if(seen.begin(), seen.end(), [&](const std::string& o) {
        return o.starts_with("sysv-msg") && held.contains(o);
      }) == 2) {
    return true;
  }
  // Named objects: the case's names were unlinked once both sides held them.
  const std::string case_names = "/ipcbench." + std::to_string(runner) + ".case";
  bool unlinked = false;
  std::istringstream in(record_text());
  for (std::string line; std::getline(in, line);) {
    unlinked = unlinked || (line.starts_with("- ") && line.find(case_names) != std::string::npos);
  }
  return unlinked && std::none_of(held.begin(), held.end(), [&](const std::string& o) {
           return o.find(case_names) != std::string::npos;
         });
}

// The objects a `clean` output names after `verb` ("would remove", "removed"),
// in the spelling of objects_of.
std::set<std::string> listed(const std::string& output, const std::string& verb) {
  std::set<std::string> found;
  std::istringstream in(output);
  std::string line;
  const std::regex sysv("^sysv-msg key=0x[0-9a-f]+ id=([0-9]+).*");
  while (std::getline(in, line)) {
    if (!line.starts_with(verb + " ")) continue;
    std::string rest = line.substr(verb.size() + 1);
    if (rest.starts_with("empty owner record")) continue;
    const auto whose = rest.find(" (run ");
    if (whose != std::string::npos) rest.resize(whose);
    std::smatch m;
    if (std::regex_match(rest, m, sysv)) rest = "sysv-msg id=" + m[1].str();
    found.insert(rest);
  }
  return found;
}

std::string joined(const std::set<std::string>& s) {
  std::string out;
  for (const auto& x : s) out += "\n  " + x;
  return out;
}

const std::vector<std::string> kOneCase = {"--modes", "sync", "--patterns",      "latency",
                                           "--sizes", "64",   "--no-calibration"};

std::vector<std::string> run_args(const std::string& mechanism, const std::string& min_time) {
  std::vector<std::string> args = {"run",    "--mechanisms", mechanism, "--min-time",
                                   min_time, "--timeout",    "60"};
  args.insert(args.end(), kOneCase.begin(), kOneCase.end());
  return args;
}

// --- killed between listen and accept: the named objects are left --------

class KilledBeforeAccept : public OwnersTest, public ::testing::WithParamInterface<std::string> {};

// Every registered mechanism whose objects have names (Capabilities::names).
std::vector<std::string> named_mechanisms() {
  std::vector<std::string> out;
  for (const auto& m : ipcbench::mechanisms()) {
    if (m->capabilities().names != ipcbench::Names::kNone) out.emplace_back(m->name());
  }
  return out;
}

TEST_P(KilledBeforeAccept, CleanListsExactlyTheLeftObjectsThenRemovesOnlyThem) {
  const std::string mechanism = GetParam();
  IPCBENCH_SKIP_IF_UNAVAILABLE(mechanism);
  // Objects that are not this run's: one with an ipcbench-like name of
  // another pid, one without; and a System V queue.
  // (TearDown removes them.)
  const std::string decoy = make_decoy_shm("/ipcbench-decoy." + std::to_string(::getpid()));
  const int decoy_queue = make_decoy_queue();
  ASSERT_FALSE(HasFailure());

  Child runner = spawn(run_args(mechanism, "1"), /*hanging_peer=*/true);
  // The peer (the hanging script) exists once listen() is done.
  ASSERT_TRUE(eventually([&] { return peer_of(runner.pid) > 0; })) << runner.err();
  std::this_thread::sleep_for(200ms);
  const std::set<std::string> left_before = objects_with_unused_queues(runner.pid);
  kill_runner(runner);
  const std::set<std::string> left = objects_with_unused_queues(runner.pid);
  EXPECT_EQ(left, left_before);
  // The run dir, and the system-wide objects of those that have them.
  const bool named =
      ipcbench::find_mechanism(mechanism)->capabilities().names == ipcbench::Names::kSystem;
  ASSERT_GE(left.size(), named ? 2u : 1u) << joined(left) << "\nrecord:\n" << record_text();

  const auto [dry_status, dry] = run({"clean", "--dry-run"});
  EXPECT_EQ(dry_status, 0) << last_err_;
  EXPECT_EQ(listed(dry, "would remove"), left) << dry;
  EXPECT_TRUE(listed(dry, "removed").empty()) << dry;
  EXPECT_EQ(objects_with_unused_queues(runner.pid), left) << "the dry run removed something";
  const std::string count =
      std::to_string(left.size()) + (left.size() == 1 ? " object" : " objects");
  EXPECT_NE(dry.find("total: would remove " + count + " of 1 dead run"), std::string::npos) << dry;

  const auto [status, out] = run({"clean"});
  EXPECT_EQ(status, 0) << last_err_;
  EXPECT_EQ(listed(out, "removed"), left) << out;
  EXPECT_TRUE(objects_with_unused_queues(runner.pid).empty())
      << joined(objects_with_unused_queues(runner.pid));
  // Not ours: untouched.
  struct stat st {};
  EXPECT_EQ(::stat(("/dev/shm" + decoy).c_str(), &st), 0);
  msqid_ds ds{};
  EXPECT_EQ(::msgctl(decoy_queue, IPC_STAT, &ds), 0);
  // A second clean finds nothing.
  const auto [again_status, again] = run({"clean"});
  EXPECT_NE(again.find("removed 0 objects of 0 dead runs"), std::string::npos) << again;
}

INSTANTIATE_TEST_SUITE_P(Mechanisms, KilledBeforeAccept, ::testing::ValuesIn(named_mechanisms()),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// --- killed mid-case: SysV queues (and the run directory) are left ---------

// Every registered mechanism whose objects have system-wide names
// (Capabilities::names kSystem): killed mid-case, `clean` removes what it
// held. (Those with run-directory names only leave the directory, which
// KilledBeforeAccept covers.)
std::vector<std::string> system_named_mechanisms() {
  std::vector<std::string> out;
  for (const auto& m : ipcbench::mechanisms()) {
    if (m->capabilities().names == ipcbench::Names::kSystem) out.emplace_back(m->name());
  }
  return out;
}

class KilledMidCase : public OwnersTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(KilledMidCase, CleanRemovesWhatTheCaseHeld) {
  const std::string mechanism = GetParam();
  IPCBENCH_SKIP_IF_UNAVAILABLE(mechanism);
  Child runner = spawn(run_args(mechanism, "30"));
  pid_t peer = -1;
  ASSERT_TRUE(eventually([&] { return (peer = peer_of(runner.pid)) > 0; })) << runner.err();
  ASSERT_TRUE(eventually([&] { return mid_case(runner.pid, peer); }))
      << "the case never got going: objects " << joined(objects_of(runner.pid, peer))
      << "\nrecord:\n"
      << record_text() << "\nstderr: " << runner.err();
  const std::set<std::string> left_before = objects_of(runner.pid, peer);
  kill_runner(runner);
  const std::set<std::string> left = objects_of(runner.pid, peer);
  EXPECT_EQ(left, left_before);
  if (mechanism == "sysv-mq") {
    EXPECT_EQ(std::count_if(left.begin(), left.end(),
                            [](const std::string& s) { return s.starts_with("sysv-msg"); }),
              2)
        << joined(left) << "\nrecord:\n"
        << record_text();
  }
  ASSERT_FALSE(left.empty());

  const auto [dry_status, dry] = run({"clean", "--dry-run"});
  EXPECT_EQ(listed(dry, "would remove"), left) << dry;
  EXPECT_EQ(objects_of(runner.pid, peer), left);
  const auto [status, out] = run({"clean"});
  EXPECT_EQ(status, 0);
  EXPECT_EQ(listed(out, "removed"), left) << out;
  EXPECT_TRUE(objects_of(runner.pid, peer).empty()) << joined(objects_of(runner.pid, peer));
}

INSTANTIATE_TEST_SUITE_P(Mechanisms, KilledMidCase, ::testing::ValuesIn(system_named_mechanisms()),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// --- a live run is never swept --------------------------------------------

TEST_F(OwnersTest, LiveRunSurvivesConcurrentCleanAndAnotherRunsSweep) {
  Child live = spawn(run_args("sysv-mq", "30"));
  pid_t peer = -1;
  ASSERT_TRUE(eventually([&] { return (peer = peer_of(live.pid)) > 0; })) << live.err();
  // Both queues used, so what the run holds no longer changes.
  ASSERT_TRUE(eventually([&] { return mid_case(live.pid, peer); }))
      << "no messages both ways: " << joined(objects_of(live.pid, peer)) << "\nrecord:\n"
      << record_text() << "\nstderr: " << live.err();
  const std::set<std::string> held = objects_of(live.pid, peer);
  ASSERT_GE(held.size(), 3u) << joined(held);  // run dir + two queues

  const auto [status, out] = run({"clean"});
  EXPECT_EQ(status, 0);
  EXPECT_TRUE(listed(out, "removed").empty()) << out;
  EXPECT_NE(out.find("1 live run untouched"), std::string::npos) << out;
  EXPECT_EQ(objects_of(live.pid, peer), held);

  const auto [run_status, run_out] = run(run_args("pipe", "0.05"));
  EXPECT_EQ(run_status, 0) << last_err_;
  EXPECT_EQ(last_err_.find("left by"), std::string::npos) << last_err_;
  EXPECT_EQ(objects_of(live.pid, peer), held);

  // The live run ends normally (Ctrl-C) and takes everything with it.
  ASSERT_EQ(::kill(live.pid, SIGINT), 0);
  EXPECT_EQ(wait(live), 130) << live.err();
  EXPECT_TRUE(objects_of(live.pid, peer).empty()) << joined(objects_of(live.pid, peer));
  EXPECT_EQ(record_text(), "");
}

// --- the next run sweeps by itself -----------------------------------------

TEST_F(OwnersTest, NextRunSweepsDeadOwnersObjects) {
  Child dead = spawn(run_args("shm-spin", "1"), /*hanging_peer=*/true);
  ASSERT_TRUE(eventually([&] { return peer_of(dead.pid) > 0; })) << dead.err();
  std::this_thread::sleep_for(200ms);
  kill_runner(dead);
  const std::set<std::string> left = objects_of(dead.pid);
  ASSERT_GE(left.size(), 2u) << joined(left);

  const auto [status, out] = run(run_args("pipe", "0.05"));
  EXPECT_EQ(status, 0) << last_err_;
  EXPECT_NE(
      last_err_.find("removed " + std::to_string(left.size()) + " objects left by 1 dead run"),
      std::string::npos)
      << last_err_;
  EXPECT_TRUE(objects_of(dead.pid).empty()) << joined(objects_of(dead.pid));
}

// --- records written by hand: reused pids, foreign objects, bad records ----

class HandWrittenRecord : public OwnersTest {
 protected:
  void SetUp() override {
    OwnersTest::SetUp();
    fs::create_directory(owner_dir_);
    fs::permissions(owner_dir_, fs::perms::owner_all);
    // A live process that is not ipcbench; its pid is the "reused" one.
    sleeper_ = testproc::spawn({"/bin/sleep", "60"});
    ASSERT_GT(sleeper_, 0);
    children_.push_back(sleeper_);
    ASSERT_TRUE(eventually([&] { return proc_stat(sleeper_).has_value(); }));
  }

  void write_record(pid_t pid, unsigned long long start, const std::string& body) {
    std::ofstream(owner_dir_ + "/" + std::to_string(pid) + "-" + std::to_string(start) + ".owner")
        << "ipcbench-owner 1 pid=" << pid << " start=" << start << " boot=" << boot_id()
        << " uid=" << ::geteuid() << " time=" << std::time(nullptr) - 10 << "\n"
        << body;
  }

  std::string make_shm(const std::string& name) {
    const int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    EXPECT_GE(fd, 0) << name;
    ::close(fd);
    made_.push_back(name);
    return name;
  }

  static bool shm_exists(const std::string& name) {
    struct stat st {};
    return ::stat(("/dev/shm" + name).c_str(), &st) == 0;
  }

  void TearDown() override {
    for (const auto& n : made_) ::shm_unlink(n.c_str());
    for (const auto& f : fs::directory_iterator(owner_dir_)) fs::remove(f.path());
    OwnersTest::TearDown();
  }

  pid_t sleeper_ = -1;
  std::vector<std::string> made_;
};

TEST_F(HandWrittenRecord, ReusedPidCountsAsDeadAndMatchingStartAsAlive) {
  const std::string p = std::to_string(sleeper_);
  const auto sleeper = proc_stat(sleeper_);
  ASSERT_TRUE(sleeper.has_value());
  const unsigned long long real_start = sleeper->start_time;
  // Same pid, other start time: an earlier owner that died.
  const std::string dead_shm = make_shm("/ipcbench." + p + ".case0-" + p + ".spin");
  const std::string dead_dir = "/tmp/ipcbench." + p + ".ownTst";
  fs::create_directory(dead_dir);
  write_record(sleeper_, real_start - 1, "+ dir " + dead_dir + "\n+ posix-shm " + dead_shm + "\n");
  // Same pid and start time: alive, untouched.
  const std::string live_shm = make_shm("/ipcbench." + p + ".case1-" + p + ".spin");
  write_record(sleeper_, real_start, "+ posix-shm " + live_shm + "\n");

  const auto [dry_status, dry] = run({"clean", "--dry-run"});
  EXPECT_EQ(listed(dry, "would remove"),
            (std::set<std::string>{"dir " + dead_dir, "posix-shm " + dead_shm}))
      << dry;
  EXPECT_NE(dry.find("1 live run untouched"), std::string::npos) << dry;
  EXPECT_TRUE(shm_exists(dead_shm));
  EXPECT_TRUE(fs::exists(dead_dir));

  const auto [status, out] = run({"clean"});
  EXPECT_EQ(status, 0);
  EXPECT_FALSE(shm_exists(dead_shm));
  EXPECT_FALSE(fs::exists(dead_dir));
  EXPECT_TRUE(shm_exists(live_shm)) << out;
  EXPECT_TRUE(fs::exists(owner_dir_ + "/" + p + "-" + std::to_string(real_start) + ".owner"));
  EXPECT_FALSE(fs::exists(owner_dir_ + "/" + p + "-" + std::to_string(real_start - 1) + ".owner"));
}

TEST_F(HandWrittenRecord, ObjectsThatAreNotIpcbenchsAreLeft) {
  // A dead owner (a pid that exited) whose record names foreign objects.
  const pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  const std::string g = std::to_string(gone);
  const std::string foreign_shm = make_shm("/notipcbench." + g);
  const std::string other_pid_shm =
      make_shm("/ipcbench." + std::to_string(sleeper_) + ".case0.spin");  // another run's pid
  const std::string other_uid_shm = make_shm("/ipcbench." + g + ".case0-" + g + ".spin");
  ASSERT_EQ(::chown(("/dev/shm" + other_uid_shm).c_str(), 65534, 65534), 0);
  const int queue = make_decoy_queue();  // key 0: not the recorded key
  ASSERT_GE(queue, 0);
  const std::string foreign_dir = work_ + "/not-a-run-dir";
  fs::create_directory(foreign_dir);
  write_record(gone, 12345,
               "+ posix-shm " + foreign_shm + "\n+ posix-shm " + other_pid_shm + "\n+ posix-shm " +
                   other_uid_shm + "\n+ sysv-msg key=0x1234abcd id=" + std::to_string(queue) +
                   " ctime=1\n+ dir " + foreign_dir + "\n");

  const auto [status, out] = run({"clean"});
  EXPECT_EQ(status, 0);
  EXPECT_TRUE(listed(out, "removed").empty()) << out;
  EXPECT_EQ(listed(out, "left").size(), 5u) << out;
  EXPECT_TRUE(shm_exists(foreign_shm));
  EXPECT_TRUE(shm_exists(other_pid_shm));
  EXPECT_TRUE(shm_exists(other_uid_shm));
  msqid_ds ds{};
  EXPECT_EQ(::msgctl(queue, IPC_STAT, &ds), 0);
  EXPECT_TRUE(fs::exists(foreign_dir));
  // What is not ours is never ours: the record has done its job.
  EXPECT_TRUE(fs::is_empty(owner_dir_)) << out;
}

// This process's group's name (RouDi's payload segment is named after it).
std::string group_name() {
  const group* g = ::getgrgid(::getegid());
  return g != nullptr ? g->gr_name : "";
}

// A run without root keeps iceoryx's RouDi in the machine's namespace under
// its fixed names and records them. A dead owner's are removed by clean
// only while no RouDi holds /tmp/iox-unique-roudi.lock, only where they are
// this user's files or sockets (not a symlink), and only its RouDi's
// runtimes' ("/tmp/ipcbench-r<pid>-*"), never another name the record
// lists. In a mount namespace of the test's own, so the machine's /tmp and
// /dev/shm are not touched; the lock is held by flock(1) (then a sleep
// holding its descriptor), found through /proc/locks before clean runs.
TEST_F(HandWrittenRecord, IceoryxNamesGoOnlyWhileNoRoudiRunsAndOnlyTheirOwn) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for a mount namespace of its own";
  const pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  const std::string script = R"sh(set -eu
# The binary may live under /tmp (a clone there), which the tmpfs hides:
# it runs from a descriptor opened first.
exec 8<"$IPCBENCH"
ipcbench=/proc/$$/fd/8
mount --make-rprivate /
mount -t tmpfs t /tmp
mount -t tmpfs t /dev/shm
group=$(id -gn)
mkdir -m 700 /tmp/owners
for f in /tmp/roudi /tmp/iox-unique-roudi.lock /dev/shm/iceoryx_mgmt /dev/shm/$group \
         /tmp/ipcbench-r4242-77-1 /tmp/ipcbench-r4242-77-1.lock /tmp/ipcbench-r42-77-1; do
  : >"$f"
done
ln -s /etc/hostname /tmp/roudi.lock
{
  echo "ipcbench-owner 1 pid=$GONE start=12345 boot=$(cat /proc/sys/kernel/random/boot_id) uid=0 time=$(($(date +%s) - 10))"
  for n in /tmp/roudi /tmp/roudi.lock /tmp/iox-unique-roudi.lock /dev/shm/iceoryx_mgmt \
           /dev/shm/$group '/tmp/ipcbench-r4242-*' /etc/hostname; do
    echo "+ iceoryx $n"
  done
} >/tmp/owners/$GONE-12345.owner
export IPCBENCH_OWNER_DIR=/tmp/owners
(flock 9 && exec sleep 60) 9>>/tmp/iox-unique-roudi.lock &
holder=$!
ino=$(stat -c %i /tmp/iox-unique-roudi.lock)
i=0
until grep -q ":$ino " /proc/locks; do
  i=$((i + 1)); [ $i -lt 2000 ] || { echo "no lock seen"; exit 3; }
  sleep 0.005
done
echo "== held"
"$ipcbench" clean
ls /tmp /dev/shm | sort
kill $holder
wait $holder || true
echo "== free"
"$ipcbench" clean
ls /tmp /dev/shm | sort
echo "== hostname $(cat /etc/hostname | wc -c)"
)sh";
  const testproc::RunResult r = testproc::run_command(
      {"/usr/bin/unshare", "-m", "/bin/sh", "-c", script},
      {.limit = 60s,
       .env = {"GONE=" + std::to_string(gone), std::string("IPCBENCH=") + IPCBENCH_BINARY}});
  ASSERT_EQ(r.status, 0) << r;
  const std::string held = r.out.substr(0, r.out.find("== free"));
  const std::string free = r.out.substr(r.out.find("== free"));
  // Held: everything left, naming the RouDi that runs, and the record kept
  // for later; nothing removed.
  EXPECT_TRUE(listed(held, "removed").empty()) << r.out;
  EXPECT_NE(held.find("a RouDi runs"), std::string::npos) << r.out;
  EXPECT_NE(held.find("\nowners\n"), std::string::npos) << r.out;
  for (const char* name :
       {"roudi", "iox-unique-roudi.lock", "iceoryx_mgmt", "ipcbench-r4242-77-1"}) {
    EXPECT_NE(held.find(std::string("\n") + name + "\n"), std::string::npos) << name << "\n"
                                                                             << r.out;
  }
  // Free: RouDi's files and its runtimes' go; the symlink, the other
  // RouDi's runtime, and /etc/hostname stay.
  EXPECT_EQ(
      listed(free, "removed"),
      (std::set<std::string>{"iceoryx /tmp/roudi", "iceoryx /tmp/iox-unique-roudi.lock",
                             "iceoryx /dev/shm/iceoryx_mgmt", "iceoryx /dev/shm/" + group_name(),
                             "iceoryx /tmp/ipcbench-r4242-*"}))
      << r.out;
  const std::string after = free.substr(0, free.find("== hostname"));
  for (const char* name : {"iceoryx_mgmt", "iox-unique-roudi.lock", "ipcbench-r4242-77-1"}) {
    EXPECT_EQ(after.find(std::string("\n") + name + "\n"), std::string::npos) << name << "\n"
                                                                              << r.out;
  }
  for (const char* name : {"roudi.lock", "ipcbench-r42-77-1"}) {
    EXPECT_NE(after.find(std::string("\n") + name + "\n"), std::string::npos) << name << "\n"
                                                                              << r.out;
  }
  EXPECT_EQ(r.out.find("== hostname 0"), std::string::npos) << "/etc/hostname was emptied";
}

TEST_F(HandWrittenRecord, MalformedRecordsAreReportedNotFatal) {
  const pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  const std::string g = std::to_string(gone);
  std::ofstream(owner_dir_ + "/1-2.owner") << "not a record\n";
  std::ofstream(owner_dir_ + "/" + g + "-99.owner");  // empty: died before its header
  const std::string shm = make_shm("/ipcbench." + g + ".case0-" + g + ".spin");
  write_record(gone, 98,
               "+ posix-shm " + shm + "\n+ bogus line\n+ posix-shm /ipcbench." + g +
                   ".cut");  // last line cut short

  const auto [status, out] = run({"clean"});
  EXPECT_EQ(status, 0) << last_err_;
  EXPECT_NE(out.find("left malformed owner record " + owner_dir_ + "/1-2.owner"), std::string::npos)
      << out;
  EXPECT_NE(out.find("removed empty owner record"), std::string::npos) << out;
  EXPECT_NE(out.find("line 3 is malformed"), std::string::npos) << out;
  EXPECT_NE(out.find("line 4 is cut short"), std::string::npos) << out;
  // The good line was acted on; the malformed records stay for a human.
  EXPECT_FALSE(shm_exists(shm)) << out;
  EXPECT_TRUE(fs::exists(owner_dir_ + "/1-2.owner"));
  EXPECT_FALSE(fs::exists(owner_dir_ + "/" + g + "-99.owner"));
  EXPECT_TRUE(fs::exists(owner_dir_ + "/" + g + "-98.owner"));
}

}  // namespace
