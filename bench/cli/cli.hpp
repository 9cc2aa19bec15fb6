// The command line: `ipcbench list | run | peer`. Every argument is checked
// before anything runs; a bad one gets one line on stderr and exit status 2.
#pragma once

namespace ipcbench {

// Exit statuses of `ipcbench run`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitCaseFailed = 1;  // written file lists the failures
inline constexpr int kExitUsage = 2;       // bad input; nothing ran

int cli_main(int argc, char** argv);

}  // namespace ipcbench
