// Running a program from a test: argv (argv[0] an absolute path) in a child
// process with stdin from /dev/null and stdout and stderr captured, within a
// deadline (past it the child is killed and the test fails), optionally
// signalled once a given text appears on its stderr. Shared by the tests
// that run ipcbench, the validator or any other program.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace testproc {

using Args = std::vector<std::string>;

struct RunResult {
  int status = -1;  // exit status; 128 + N when killed by signal N; -1 if it could not run
  std::string out;  // everything it wrote to stdout
  std::string err;  // everything it wrote to stderr
  pid_t pid = -1;   // its process id (ipcbench names its run directory after it)
};

inline std::string describe(const Args& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

inline std::ostream& operator<<(std::ostream& os, const RunResult& r) {
  return os << "exit status " << r.status << "\n--- stdout ---\n"
            << r.out << "--- stderr ---\n"
            << r.err << "--------------";
}

// Optional: send `signal` to the child `delay` after `text` first appears on its stderr.
struct Interrupt {
  std::string text;
  std::chrono::milliseconds delay{0};
  int signal = SIGINT;
};

// Runs argv (argv[0] an absolute path) with stdin from /dev/null and stdout/stderr captured.
// A child that runs longer than `limit` is killed and the test fails.
inline RunResult run_command(const Args& argv,
                             const std::optional<Interrupt>& interrupt = std::nullopt,
                             std::chrono::seconds limit = std::chrono::seconds(120)) {
  RunResult r;
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return r;
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return r;
  }
  std::vector<std::string> storage = argv;
  std::vector<char*> cargv;
  for (auto& a : storage) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    return r;
  }
  if (pid == 0) {
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    ::execv(cargv[0], cargv.data());
    const char msg[] = "run_command: exec failed\n";
    (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(127);
  }
  r.pid = pid;
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);

  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + limit;
  std::optional<Clock::time_point> signal_at;
  bool signalled = false;
  bool exited = false;
  int wstatus = 0;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  bool open[2] = {true, true};
  char buf[65536];

  // Reads until both pipes reach EOF, or the child has exited and the pipes are drained (a
  // grandchild that inherited them must not keep us waiting).
  while (open[0] || open[1]) {
    for (int i = 0; i < 2; ++i) fds[i].fd = open[i] ? (i == 0 ? out_pipe[0] : err_pipe[0]) : -1;
    const int n = ::poll(fds, 2, exited ? 0 : 20);
    if (n < 0 && errno != EINTR) {
      ADD_FAILURE() << "poll: " << std::strerror(errno);
      break;
    }
    bool got_data = false;
    for (int i = 0; i < 2; ++i) {
      if (!open[i] || fds[i].revents == 0) continue;
      const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(got));
        got_data = true;
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        open[i] = false;
      }
    }
    if (interrupt && !signalled) {
      if (!signal_at && r.err.find(interrupt->text) != std::string::npos) {
        signal_at = Clock::now() + interrupt->delay;
      }
      if (signal_at && Clock::now() >= *signal_at && !exited) {
        ::kill(pid, interrupt->signal);
        signalled = true;
      }
    }
    if (!exited) {
      const pid_t w = ::waitpid(pid, &wstatus, WNOHANG);
      if (w == pid) exited = true;
    } else if (!got_data) {
      break;  // exited and nothing left to read right now
    }
    if (!exited && Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &wstatus, 0);
      ADD_FAILURE() << "timed out after " << limit.count() << " s: " << describe(argv);
      ::close(out_pipe[0]);
      ::close(err_pipe[0]);
      return r;
    }
  }
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  if (!exited) ::waitpid(pid, &wstatus, 0);
  if (WIFEXITED(wstatus)) {
    r.status = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    r.status = 128 + WTERMSIG(wstatus);
  }
  return r;
}

}  // namespace testproc
