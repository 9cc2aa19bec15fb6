// Files the tests make and read: a private temporary directory per test, whole files, JSON
// documents, and ipcbench's run directories (the ones a run makes beside its objects).
// Header-only, shared by the tests under tests/cli and tests/faults.
#pragma once

#include <errno.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/types.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <system_error>

namespace testproc {

// Whole file, binary-safe; empty if it cannot be read.
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The base directory ipcbench puts its run directories in (same rule as bench/cli/cli.cpp).
inline std::string run_dir_base() {
  const char* tmp = std::getenv("TMPDIR");
  return (tmp != nullptr && *tmp != '\0' && std::strlen(tmp) < 40) ? tmp : "/tmp";
}

// A private directory for one test's files ("<run_dir_base>/<test binary>.XXXXXX"), removed
// with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string templ = run_dir_base() + "/" + program_invocation_short_name + ".XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
      templ = "/nonexistent-test-dir";
    }
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The JSON document in `path`; a test failure (and nullopt) if it is missing or not JSON.
inline std::optional<nlohmann::json> read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    ADD_FAILURE() << "cannot open " << path;
    return std::nullopt;
  }
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    ADD_FAILURE() << path << " is not JSON: " << e.what();
    return std::nullopt;
  }
}

// Writes `doc` to `path` (indented); a fatal test failure if it cannot.
inline void write_json(const std::string& path, const nlohmann::json& doc) {
  std::ofstream out(path);
  out << doc.dump(2) << "\n";
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// Entries named ipcbench.* in the run directory base (and /tmp): ipcbench's run directories,
// "ipcbench.<pid>.XXXXXX".
inline std::set<std::string> run_directories() {
  namespace fs = std::filesystem;
  std::set<std::string> out;
  for (const std::string& base : {run_dir_base(), std::string("/tmp")}) {
    std::error_code ec;
    for (fs::directory_iterator it(base, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.starts_with("ipcbench.")) out.insert(it->path().string());
    }
  }
  return out;
}

// The pid in ".../ipcbench.<pid>.XXXXXX", or -1.
inline pid_t owner_of_run_directory(const std::string& path) {
  const std::string name = std::filesystem::path(path).filename().string();
  const std::size_t dot = name.find('.', 9);
  if (dot == std::string::npos) return -1;
  try {
    return static_cast<pid_t>(std::stol(name.substr(9, dot - 9)));
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace testproc
