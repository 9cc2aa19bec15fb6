// Running the built ipcbench (IPCBENCH_BINARY) as a user would, and the programs that read
// its result (the schema validator): the paths, the runs, and what `list --json` says of the
// mechanisms. Header-only, shared by the tests under tests/cli.
#pragma once

#include <sched.h>

#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "run.hpp"

#ifndef IPCBENCH_BINARY
#error "IPCBENCH_BINARY must name the ipcbench executable"
#endif
#ifndef IPCBENCH_SOURCE_DIR
#error "IPCBENCH_SOURCE_DIR must name the source tree"
#endif

namespace testproc {

inline constexpr const char* kBinary = IPCBENCH_BINARY;
inline constexpr const char* kSourceDir = IPCBENCH_SOURCE_DIR;
inline constexpr const char* kPython = "/usr/bin/python3";  // Debian's, with python3-jsonschema
inline constexpr const char* kErrorPrefix = "ipcbench: error: ";  // how a usage error begins

// The mechanisms of the short run (result_test's ShortRun), which every build has.
inline const Args kShortRunMechanisms = {"pipe", "uds-stream", "tcp"};

// The result file's contract, and the script that checks a file against it.
inline std::string schema_path() { return std::string(kSourceDir) + "/docs/result.schema.json"; }
inline std::string validator_path() {
  return std::string(kSourceDir) + "/tests/tools/validate_result.py";
}

// Runs `ipcbench ARGS` to completion (run_command), optionally interrupted.
inline RunResult run_ipcbench(const Args& args,
                              const std::optional<Interrupt>& interrupt = std::nullopt) {
  Args argv = {kBinary};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, interrupt);
}

// Runs the schema validator script on a result file.
inline RunResult validate(const std::string& result_file) {
  return run_command({kPython, validator_path(), schema_path(), result_file});
}

// The CPUs this process may run on (the ones a run may pin to).
inline std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) out.push_back(c);
  }
  return out;
}

// One mechanism as 'ipcbench list --json' describes it (the fields the tests use).
struct MechanismInfo {
  std::string name;
  bool lossy = false;
  bool crosses_hosts = false;
};

// Every mechanism of the build, in the order 'ipcbench list --json' gives them.
inline std::vector<MechanismInfo> listed_mechanisms() {
  const RunResult r = run_ipcbench({"list", "--json"});
  EXPECT_EQ(r.status, 0) << r;
  std::vector<MechanismInfo> out;
  try {
    for (const nlohmann::json& m : nlohmann::json::parse(r.out)) {
      out.push_back({m.at("name").get<std::string>(), m.at("lossy").get<bool>(),
                     m.at("crosses_hosts").get<bool>()});
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "list --json: " << e.what() << "\n" << r;
  }
  return out;
}

}  // namespace testproc
