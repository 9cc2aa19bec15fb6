// Where `run --out PATH` writes its result. The path is checked, and opened
// where it has to be, before anything runs; the text is written once at the
// end. What is at PATH decides how, so the file's user gets what they meant
// and nothing on the machine is harmed:
//   -                       standard output (the run's console output then
//                           goes to stderr)
//   /dev/stdout, /dev/fd/N, the descriptor itself (a duplicate of it)
//   /proc/self/fd/N
//   character device, FIFO  opened now and written through, never replaced;
//                           a FIFO without a reader is an error now
//   symlink                 its final target is replaced atomically (temp
//                           file in the target's directory + rename), the
//                           link stays a link; a device or FIFO at the end
//                           of the chain is written through
//   regular file, new path  temp file beside it + rename: a reader never
//                           sees half a file
//   directory, block device, socket, missing or unwritable directory:
//                           refused now, with the reason
#pragma once

#include <string>

#include "mechanisms/posix/fd.hpp"

namespace ipcbench {

class OutputFile {
 public:
  // Checks `path` and opens what must be opened now. Throws
  // std::invalid_argument with a one-line reason a user can act on.
  static OutputFile open(const std::string& path);

  // The path as given ("standard output" for "-"), for messages.
  const std::string& name() const { return name_; }
  // True when the result goes to this process's standard output: the run's
  // other output must then go to stderr (see redirect_stdout_to_stderr).
  bool is_stdout() const { return is_stdout_; }

  // Writes all of `text` (once). Throws std::runtime_error saying
  // "cannot write NAME: REASON" (e.g. ENOSPC, EPIPE); a replaced file is
  // then left as it was.
  void write(const std::string& text);

 private:
  OutputFile() = default;
  void write_through(const std::string& text);
  void replace(const std::string& text);

  std::string name_;
  std::string target_;  // replace: the regular file to replace (or create)
  posix::Fd stream_;    // write-through: the open descriptor
  bool is_stdout_ = false;
};

// Points descriptor 1 at stderr, so that everything printed to stdout from
// now on (our lines, Google Benchmark's console) goes to stderr. Call after
// OutputFile::open has taken its own duplicate of the old stdout.
void redirect_stdout_to_stderr();

}  // namespace ipcbench
