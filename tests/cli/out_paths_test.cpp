// --out and what is at its path: "-" and /dev/stdout write to stdout, a FIFO with a reader is
// written through (one without a reader is refused), a symlink stays a link, a device node is
// written through and never replaced, a block device is refused, a failing write exits 1.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>

#include "../support/files.hpp"
#include "../support/ipcbench.hpp"
#include "../support/leftovers.hpp"
#include "../support/text.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace testproc;

// ---------------------------------------------------------------------------------------------
// --out and what is at its path: never replace a device node, a FIFO or a symlink

// The smallest real run, writing its result to `out`.
RunResult run_small(const std::string& out) {
  return run_ipcbench({"run", "--mechanisms", "pipe", "--modes", "sync", "--patterns", "latency",
                       "--sizes", "64", "--min-time", "0.02", "--no-calibration", "--out", out});
}

// The file type of `path` itself (a symlink is not followed).
fs::file_type type_of(const std::string& path) { return fs::symlink_status(path).type(); }

// Checks that `text` is a whole, complete result.
void expect_complete_result(const std::string& text, const std::string& where) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const std::exception& e) {
    ADD_FAILURE() << where << " is not JSON (" << e.what() << "):\n" << text;
    return;
  }
  EXPECT_EQ(doc["ipcbench"]["complete"], true) << where;
  EXPECT_EQ(doc["benchmarks"].size(), 1u) << where;
}

// Makes a character device node in the test's directory, or says why not.
std::string make_char_device(const TempDir& dir, const std::string& name, unsigned minor) {
  const std::string path = dir.file(name);
  if (::mknod(path.c_str(), S_IFCHR | 0666, ::makedev(1, minor)) != 0) return {};
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {  // e.g. a nodev mount
    ::unlink(path.c_str());
    return {};
  }
  ::close(fd);
  return path;
}

TEST(OutPaths, DashWritesTheResultAloneToStdout) {
  const RunResult r = run_small("-");
  EXPECT_EQ(r.status, 0) << r;
  expect_complete_result(r.out, "stdout");
  EXPECT_NE(r.err.find("pipe/sync/latency/64"), std::string::npos)
      << "the console output goes to stderr\n"
      << r;
}

TEST(OutPaths, DevStdoutIsWrittenThroughTheDescriptor) {
  const RunResult r = run_small("/dev/stdout");
  EXPECT_EQ(r.status, 0) << r;
  expect_complete_result(r.out, "stdout");
}

TEST(OutPaths, FifoWithAReaderGetsTheResultAndStaysAFifo) {
  TempDir dir;
  const std::string fifo = dir.file("result.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  // The reader is open before the run starts (the handshake ipcbench needs):
  // a non-blocking open for reading succeeds without a writer.
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0) << std::strerror(errno);
  std::atomic<bool> run_over{false};
  std::string received;
  std::thread drain([&] {  // drains while the run writes (the JSON may exceed the pipe buffer)
    char buf[65536];
    for (;;) {
      const bool over = run_over.load();
      const ssize_t n = ::read(reader, buf, sizeof buf);
      if (n > 0) {
        received.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (over) break;  // the writer is gone and everything was read
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  const RunResult r = run_small(fifo);
  run_over.store(true);
  drain.join();
  ::close(reader);
  EXPECT_EQ(r.status, 0) << r;
  expect_complete_result(received, "the FIFO's reader");
  EXPECT_EQ(type_of(fifo), fs::file_type::fifo) << "the FIFO was replaced";
}

TEST(OutPaths, FifoWithoutAReaderIsRefusedBeforeAnythingRuns) {
  TempDir dir;
  const std::string fifo = dir.file("nobody.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const auto before = run_directories();
  const RunResult r = run_small(fifo);
  EXPECT_EQ(r.status, 2) << r;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line\n" << r;
  EXPECT_TRUE(r.err.starts_with(kErrorPrefix)) << r;
  EXPECT_TRUE(mentions(r.err, fifo)) << r;
  EXPECT_NE(r.err.find("no reader"), std::string::npos) << r;
  EXPECT_EQ(r.err.find("Running"), std::string::npos) << "nothing ran\n" << r;
  EXPECT_EQ(type_of(fifo), fs::file_type::fifo);
  expect_no_leftovers(r, before, dir.path());
}

TEST(OutPaths, SymlinkStaysALinkAndItsTargetIsReplaced) {
  TempDir dir;
  fs::create_directory(dir.file("real"));
  const std::string target = dir.file("real/result.json");
  write_json(target, json{{"old", true}});
  const std::string link = dir.file("latest.json");
  fs::create_symlink("real/result.json", link);  // relative, as people make them
  const RunResult r = run_small(link);
  EXPECT_EQ(r.status, 0) << r;
  EXPECT_EQ(type_of(link), fs::file_type::symlink) << "the link was replaced by a file";
  EXPECT_EQ(fs::read_symlink(link), "real/result.json");
  expect_complete_result(read_file(target), target);
  // No temporary file left beside the link or the target.
  std::set<std::string> top, real;
  for (const auto& e : fs::directory_iterator(dir.path())) top.insert(e.path().filename());
  for (const auto& e : fs::directory_iterator(dir.file("real"))) real.insert(e.path().filename());
  EXPECT_EQ(top, (std::set<std::string>{"latest.json", "real"}));
  EXPECT_EQ(real, (std::set<std::string>{"result.json"}));
}

TEST(OutPaths, DanglingSymlinkGetsItsTargetCreated) {
  TempDir dir;
  const std::string link = dir.file("latest.json");
  fs::create_symlink(dir.file("new.json"), link);
  const RunResult r = run_small(link);
  EXPECT_EQ(r.status, 0) << r;
  EXPECT_EQ(type_of(link), fs::file_type::symlink);
  const auto doc = read_json(dir.file("new.json"));
  ASSERT_TRUE(doc) << r;
  EXPECT_EQ((*doc)["ipcbench"]["complete"], true);
}

TEST(OutPaths, CharacterDeviceIsWrittenThroughNotReplaced) {
  TempDir dir;
  const std::string null = make_char_device(dir, "null", 3);
  if (null.empty()) GTEST_SKIP() << "cannot make a usable device node here (needs root, no nodev)";
  const RunResult r = run_small(null);
  EXPECT_EQ(r.status, 0) << r;
  EXPECT_EQ(type_of(null), fs::file_type::character) << "the device node was replaced";
  struct stat st {};
  ASSERT_EQ(::stat(null.c_str(), &st), 0);
  EXPECT_EQ(st.st_rdev, ::makedev(1, 3));
}

TEST(OutPaths, WriteThatFailsAtTheEndExitsOneWithOneLine) {
  TempDir dir;
  const std::string full = make_char_device(dir, "full", 7);  // like /dev/full: ENOSPC
  if (full.empty()) GTEST_SKIP() << "cannot make a usable device node here (needs root, no nodev)";
  const RunResult r = run_small(full);
  EXPECT_EQ(r.status, 1) << r;
  const std::string line =
      std::string(kErrorPrefix) + "cannot write " + full + ": " + std::strerror(ENOSPC) + "\n";
  EXPECT_NE(r.err.find(line), std::string::npos) << "expected: " << line << r;
  EXPECT_EQ(r.err.find("wrote"), std::string::npos) << r;
  EXPECT_EQ(type_of(full), fs::file_type::character);
}

TEST(OutPaths, BlockDeviceIsRefusedBeforeAnythingRuns) {
  TempDir dir;
  const std::string disk = dir.file("disk");
  if (::mknod(disk.c_str(), S_IFBLK | 0600, ::makedev(7, 0)) != 0) {
    GTEST_SKIP() << "cannot make a device node here: " << std::strerror(errno);
  }
  const RunResult r = run_small(disk);
  EXPECT_EQ(r.status, 2) << r;
  EXPECT_TRUE(mentions(r.err, disk)) << r;
  EXPECT_NE(r.err.find("block device"), std::string::npos) << r;
  EXPECT_EQ(type_of(disk), fs::file_type::block);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// --hgrm DIR: one HdrHistogram .hgrm text per measured latency case

RunResult run_hgrm(const std::string& dir, const std::string& out) {
  return run_ipcbench({"run", "--mechanisms", "pipe", "--modes", "sync", "--patterns",
                       "latency,throughput", "--sizes", "64", "--min-time", "0.02",
                       "--no-calibration", "--hgrm", dir, "--out", out});
}

TEST(HgrmDir, IsCreatedAndHoldsEachLatencyCaseWithItsSamples) {
  TempDir dir;
  const std::string hgrm = dir.file("new/hgrm");  // neither exists yet
  const RunResult r = run_hgrm(hgrm, dir.file("r.json"));
  ASSERT_EQ(r.status, 0) << r;
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(hgrm)) files.insert(e.path().filename());
  EXPECT_EQ(files, (std::set<std::string>{"pipe_sync_latency_64.hgrm"}))
      << "latency cases only: a throughput case has no round trips";
  const std::string text = read_file(hgrm + "/pipe_sync_latency_64.hgrm");
  EXPECT_TRUE(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"))
      << text;
  const auto doc = read_json(dir.file("r.json"));
  ASSERT_TRUE(doc) << r;
  const json* row = nullptr;
  for (const json& b : (*doc)["benchmarks"]) {
    if (b["name"].get<std::string>().starts_with("pipe/sync/latency/64")) row = &b;
  }
  ASSERT_NE(row, nullptr);
  // The same samples as the JSON row: the count, the largest, the median.
  const auto samples = (*row)["samples"].get<double>();
  char want[96];
  std::snprintf(want, sizeof want, "Total count    = %12.0f]", samples);
  EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  std::snprintf(want, sizeof want, "#[Max     = %12.3f,", (*row)["max_ns"].get<double>() / 1000);
  EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  std::snprintf(want, sizeof want, "%12.3f 0.500000000000", (*row)["p50_ns"].get<double>() / 1000);
  EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
}

TEST(HgrmDir, ThatIsNotADirectoryIsRefusedBeforeAnythingRuns) {
  TempDir dir;
  const std::string file = dir.file("file");
  write_json(file, json{{"keep", true}});
  const std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const std::string dangling = dir.file("dangling");
  fs::create_symlink(dir.file("nowhere"), dangling);
  for (const std::string& path : {file, fifo, dangling}) {
    const auto before = run_directories();
    const RunResult r = run_hgrm(path, dir.file("r.json"));
    EXPECT_EQ(r.status, 2) << r;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line\n" << r;
    EXPECT_TRUE(r.err.starts_with(kErrorPrefix)) << r;
    EXPECT_TRUE(mentions(r.err, path)) << r;
    EXPECT_EQ(r.err.find("Running"), std::string::npos) << "nothing ran\n" << r;
    EXPECT_FALSE(fs::exists(dir.file("r.json"))) << "no result file\n" << r;
    expect_no_leftovers(r, before, dir.path());
  }
  EXPECT_EQ(type_of(file), fs::file_type::regular);
  EXPECT_EQ(read_json(file).value_or(json{}), (json{{"keep", true}}));
  EXPECT_EQ(type_of(fifo), fs::file_type::fifo);
  EXPECT_EQ(type_of(dangling), fs::file_type::symlink);
  EXPECT_FALSE(fs::exists(dir.file("nowhere"))) << "a dangling link's target is not made";
}
