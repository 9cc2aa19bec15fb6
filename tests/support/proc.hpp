// What the tests read of other processes in /proc: state, parent, start
// time and command line. Header-only, shared by the tests that look for the
// processes ipcbench starts (its peers, the bare loop's peer). Files are read
// with read_file (files.hpp).
#pragma once

#include <dirent.h>
#include <sys/types.h>

#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "files.hpp"

namespace testproc {

// The fields of /proc/PID/stat the tests use.
struct ProcStat {
  char state = '?';
  pid_t ppid = -1;
  unsigned long long start_time = 0;  // clock ticks since boot: tells pid reuse apart
};

// Process `pid`'s state, parent and start time; nullopt if it is gone.
inline std::optional<ProcStat> proc_stat(pid_t pid) {
  const std::string text = read_file("/proc/" + std::to_string(pid) + "/stat");
  // "pid (comm) state ppid ..."; comm may contain anything, so parse after
  // the last ')'. starttime is field 22 overall, the 20th after comm.
  const auto paren = text.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream in(text.substr(paren + 1));
  ProcStat st;
  std::string skip;
  in >> st.state >> st.ppid;
  for (int field = 5; field < 22 && in; ++field) in >> skip;
  in >> st.start_time;
  if (!in) return std::nullopt;
  return st;
}

// Process `pid`'s command line, one string per argument (empty if it is gone).
inline std::vector<std::string> proc_cmdline(pid_t pid) {
  const std::string raw = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> args;
  std::string cur;
  for (char ch : raw) {
    if (ch == '\0') {
      args.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(ch);
    }
  }
  if (!cur.empty()) args.push_back(cur);
  return args;
}

// Every pid in /proc now.
inline std::vector<pid_t> all_pids() {
  std::vector<pid_t> pids;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return pids;
  while (const dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    const long v = std::strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0' && v > 0) pids.push_back(static_cast<pid_t>(v));
  }
  ::closedir(dir);
  return pids;
}

// The children of `parent` that are alive (not zombies), with their stat.
inline std::vector<std::pair<pid_t, ProcStat>> live_children(pid_t parent) {
  std::vector<std::pair<pid_t, ProcStat>> out;
  for (const pid_t pid : all_pids()) {
    const auto st = proc_stat(pid);
    if (st && st->ppid == parent && st->state != 'Z' && st->state != 'X')
      out.emplace_back(pid, *st);
  }
  return out;
}

// An ipcbench peer: "<...>/ipcbench peer ...". (Between fork and exec the
// child still shows the runner's command line, which does not match.)
inline bool is_peer_cmdline(const std::vector<std::string>& args) {
  return args.size() >= 2 && args[1] == "peer" && args[0].ends_with("ipcbench");
}

}  // namespace testproc
