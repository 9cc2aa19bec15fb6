#include "bench/cli/cli.hpp"

int main(int argc, char** argv) { return ipcbench::cli_main(argc, argv); }
