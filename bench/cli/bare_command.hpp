// The hidden subcommand `ipcbench bare` (internal: reference loops for
// scripts/crosscheck.sh): --family pipe|unix-stream|tcp|udp, --pattern
// latency|throughput, --size 64, --cpus A,B (default unpinned), --seconds 1.
// Prints one JSON line. Its callback runs the loop during parsing and ends
// the process (0; 1 when the measurement failed; 2 with one line on stderr
// for bad input), so the caller needs nothing but this call.
#pragma once

namespace CLI {
class App;
}

namespace ipcbench {

void add_bare_command(CLI::App& app);

}  // namespace ipcbench
