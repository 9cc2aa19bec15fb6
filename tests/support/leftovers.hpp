// What runs leave behind: their run directories and peer processes, and every IPC object
// scripts/leftovers sees. Header-only, shared by the tests that check a run cleaned up.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "files.hpp"
#include "proc.hpp"
#include "run.hpp"
#include "text.hpp"

#ifndef IPCBENCH_SOURCE_DIR
#error "IPCBENCH_SOURCE_DIR must name the source tree"
#endif

namespace testproc {

// Pids of running "ipcbench peer ... --parent <parent>" processes.
inline std::vector<pid_t> peers_of(pid_t parent) {
  std::vector<pid_t> out;
  for (const pid_t pid : all_pids()) {
    const std::vector<std::string> args = proc_cmdline(pid);
    if (args.size() < 2 || args[1] != "peer") continue;
    for (std::size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] == "--parent" && args[i + 1] == std::to_string(parent)) out.push_back(pid);
    }
  }
  return out;
}

// Checks that the finished run `r` left nothing behind: no run directory of its own (the set of
// ipcbench.* entries is compared with `before`; only the entries named after r's pid are its
// own, others belong to runs outside this test), no temporary or probe file beside its output
// in `out_dir`, and no peer process.
inline void expect_no_leftovers(const RunResult& r, const std::set<std::string>& before,
                                const std::string& out_dir) {
  namespace fs = std::filesystem;
  ASSERT_GT(r.pid, 0);
  for (const std::string& entry : run_directories()) {
    if (before.count(entry) == 0 && owner_of_run_directory(entry) == r.pid) {
      ADD_FAILURE() << "the finished run (pid " << r.pid << ") left its run directory " << entry;
    }
  }
  std::error_code ec;
  for (fs::directory_iterator it(out_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    EXPECT_EQ(name.find(".tmp-"), std::string::npos) << "temporary file left: " << it->path();
    EXPECT_FALSE(name.starts_with(".ipcbench-probe-")) << "probe file left: " << it->path();
  }
  // A peer is killed when its runner dies; give an exiting one a moment to go.
  std::vector<pid_t> peers = peers_of(r.pid);
  for (int i = 0; i < 50 && !peers.empty(); ++i) {
    ::usleep(20'000);
    peers = peers_of(r.pid);
  }
  EXPECT_TRUE(peers.empty()) << peers.size() << " peer process(es) of run " << r.pid
                             << " still running, e.g. pid " << peers.front();
}

// The lines of scripts/leftovers: every run directory, POSIX shm and queue, System V object of
// this user, owner record and peer process there is now, one per line (compare two snapshots).
inline std::vector<std::string> leftover_objects() {
  const RunResult r = run_command({"/bin/bash", IPCBENCH_SOURCE_DIR "/scripts/leftovers"},
                                  std::nullopt, std::chrono::seconds(60));
  if (r.status < 0 || r.status == 127) ADD_FAILURE() << "cannot run scripts/leftovers\n" << r;
  return lines_of(r.out);
}

}  // namespace testproc
