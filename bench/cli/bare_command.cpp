// `ipcbench bare`: the command line of the bare reference loops
// (bench/measure/bare_loops.hpp).
#include "bench/cli/bare_command.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/core/clock.hpp"
#include "bench/core/sysinfo.hpp"
#include "bench/core/units.hpp"
#include "bench/measure/bare_loops.hpp"

namespace ipcbench {

namespace {

struct BareArgs {
  std::string family;
  std::string pattern;
  std::string size = "64";
  std::string cpus;
  double seconds = 1;
};

struct BadInput : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int run_bare(const BareArgs& a) {
  BareFamily family{};
  std::size_t size = 0;
  int runner = -1, peer = -1;
  try {
    const auto f = parse_bare_family(a.family);
    if (!f) {
      throw BadInput("unknown --family '" + a.family + "' (valid: pipe, unix-stream, tcp, udp)");
    }
    family = *f;
    if (a.pattern != "latency" && a.pattern != "throughput") {
      throw BadInput("unknown --pattern '" + a.pattern + "' (valid: latency, throughput)");
    }
    try {
      size = parse_size(a.size);
    } catch (const std::invalid_argument& e) {
      throw BadInput(std::string("--size: ") + e.what());
    }
    if (size > bare_max_message(family)) {
      throw BadInput("--size " + format_size(size) + " is larger than " + bare_family_name(family) +
                     " carries (" + format_size(bare_max_message(family)) + ")");
    }
    if (!(a.seconds > 0) || a.seconds > 3600) {
      throw BadInput("--seconds must be a number of seconds above 0 and at most 3600");
    }
    if (!a.cpus.empty()) {
      std::vector<int> cpus;
      try {
        cpus = parse_cpu_list(a.cpus);
      } catch (const std::invalid_argument& e) {
        throw BadInput(std::string("--cpus: ") + e.what());
      }
      if (cpus.size() != 2) throw BadInput("--cpus takes two CPUs, runner and peer, like 0,1");
      const std::vector<int> allowed = allowed_cpus();
      for (int c : cpus) {
        if (std::find(allowed.begin(), allowed.end(), c) == allowed.end()) {
          throw BadInput("--cpus: CPU " + std::to_string(c) +
                         " does not exist or is not available");
        }
      }
      runner = cpus[0];
      peer = cpus[1];
    }
  } catch (const BadInput& e) {
    std::fprintf(stderr, "ipcbench: error: %s\n", e.what());
    return 2;
  }

  try {
    if (runner >= 0) pin_current_thread(runner);
    const Clock clock = Clock::calibrate();
    nlohmann::json out = {{"family", bare_family_name(family)},
                          {"pattern", a.pattern},
                          {"size", size},
                          {"runner_cpu", runner},
                          {"peer_cpu", peer}};
    const auto duration = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(a.seconds));
    {
      BarePair pair(family, size, runner, peer, clock);
      if (a.pattern == "latency") {
        const BareLatency r = pair.run_latency_for(duration);
        out["p50_ns"] = r.p50_ns;
        out["mean_ns"] = r.mean_ns;
        out["min_ns"] = r.min_ns;
        out["round_trips"] = r.round_trips;
        out["lost"] = r.lost;
        out["seconds"] = r.seconds;
      } else {
        const BareStream r = pair.run_stream_for(duration);
        out["messages"] = r.messages;
        out["sent"] = r.sent;
        out["seconds"] = r.seconds;
        out["bytes_per_second"] = r.bytes_per_second;
        out["messages_per_second"] = r.messages_per_second;
      }
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbench: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace

void add_bare_command(CLI::App& app) {
  auto args = std::make_shared<BareArgs>();
  CLI::App* bare = app.add_subcommand("bare", "internal: reference loops for crosscheck");
  bare->group("");  // hidden, like `peer`
  bare->add_option("--family", args->family, "pipe, unix-stream, tcp or udp")->required();
  bare->add_option("--pattern", args->pattern, "latency or throughput")->required();
  bare->add_option("--size", args->size, "Message size, e.g. 64 or 64KiB")->capture_default_str();
  bare->add_option("--cpus", args->cpus, "Runner and peer CPUs, e.g. 0,1 (default: unpinned)");
  bare->add_option("--seconds", args->seconds, "Length of the measured block")
      ->capture_default_str();
  // Runs during parsing and ends the process: cli_main needs no branch for it.
  bare->callback([args] {
    const int code = run_bare(*args);
    std::fflush(stdout);
    std::fflush(stderr);
    std::exit(code);
  });
}

}  // namespace ipcbench
