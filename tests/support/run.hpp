// Running a program from a test, argv[0] an absolute path. Both ways below set the child up
// alike: stdin from /dev/null, default signal dispositions and no signal blocked (whatever
// the test process has), and NAME=value variables added to the inherited environment.
// - run_command: to completion, within a deadline (past it the child is killed and the test
//   fails), stdout and stderr captured, optionally signalled once a text appears on its
//   stderr. For every run a test only looks at when it is over: ipcbench, the validator,
//   scripts/leftovers, any other program.
// - spawn: in the background, stdout and stderr to files, for a test that acts on the child
//   while it runs (signals it, kills its peer, runs clients against it); wait_exit waits for
//   it with a deadline.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace testproc {

using Args = std::vector<std::string>;

struct RunResult {
  int status = -1;  // exit status; 128 + N when killed by signal N; -1 if it could not run
  std::string out;  // everything it wrote to stdout
  std::string err;  // everything it wrote to stderr
  pid_t pid = -1;   // its process id (ipcbench names its run directory after it)
};

// The words of argv joined by spaces, for messages.
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

// A wait status as a shell has it: the exit status, 128 + N when killed by signal N, else -1.
inline int exit_status(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

// Optional: send `signal` to the child `delay` after `text` first appears on its stderr.
struct Interrupt {
  std::string text;
  std::chrono::milliseconds delay{0};
  int signal = SIGINT;
};

// What run_command does beyond running argv; every field may be left out.
struct RunOptions {
  std::optional<Interrupt> interrupt{};  // a signal once a text appears on stderr
  std::chrono::seconds limit{120};       // the deadline: past it, kill the child and fail
  Args env{};                            // NAME=value, added to the inherited variables
  std::function<void()> before_exec{};   // runs in the child just before exec
  // Called after each read from stderr with all of it so far (to note when a line came).
  std::function<void(const std::string&)> on_stderr{};
};

namespace detail {

// argv and envp for execve, built before fork (the child then makes no allocation of its own).
class ExecImage {
 public:
  ExecImage(const Args& argv, const Args& env) : args_(argv), env_(env) {
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      const std::size_t eq = entry.find('=');
      const std::string_view name = entry.substr(0, eq == std::string_view::npos ? eq : eq + 1);
      const bool replaced = std::any_of(env.begin(), env.end(), [&](const std::string& v) {
        return eq != std::string_view::npos && v.starts_with(name);
      });
      if (!replaced) env_.emplace_back(entry);
    }
    for (auto& a : args_) argv_.push_back(a.data());
    argv_.push_back(nullptr);
    for (auto& e : env_) envp_.push_back(e.data());
    envp_.push_back(nullptr);
  }
  char* const* argv() const { return argv_.data(); }
  char* const* envp() const { return envp_.data(); }

 private:
  Args args_, env_;
  std::vector<char*> argv_, envp_;
};

// In the child after fork: stdin from /dev/null, stdout and stderr to the given descriptors,
// signals as a fresh process has them, `before_exec` (if any), exec. Never returns.
[[noreturn]] inline void exec_child(const ExecImage& image, int out_fd, int err_fd,
                                    const std::function<void()>& before_exec) {
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
  ::dup2(out_fd, STDOUT_FILENO);
  ::dup2(err_fd, STDERR_FILENO);
  for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGCHLD}) ::signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (before_exec) before_exec();
  ::execve(image.argv()[0], image.argv(), image.envp());
  const char msg[] = "testproc: exec failed: ";
  (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)!::write(STDERR_FILENO, image.argv()[0], std::strlen(image.argv()[0]));
  (void)!::write(STDERR_FILENO, "\n", 1);
  ::_exit(127);
}

}  // namespace detail

// Runs argv to completion with stdout and stderr captured (see RunOptions). A child that runs
// longer than `options.limit` is killed and the test fails.
inline RunResult run_command(const Args& argv, const RunOptions& options) {
  RunResult r;
  const detail::ExecImage image(argv, options.env);
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

  const pid_t pid = ::fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    return r;
  }
  if (pid == 0) detail::exec_child(image, out_pipe[1], err_pipe[1], options.before_exec);
  r.pid = pid;
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);

  using Clock = std::chrono::steady_clock;
  const auto& interrupt = options.interrupt;
  const auto deadline = Clock::now() + options.limit;
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
        if (i == 1 && options.on_stderr) options.on_stderr(r.err);
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
      ADD_FAILURE() << "timed out after " << options.limit.count() << " s: " << describe(argv);
      ::close(out_pipe[0]);
      ::close(err_pipe[0]);
      return r;
    }
  }
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  if (!exited) ::waitpid(pid, &wstatus, 0);
  r.status = exit_status(wstatus);
  return r;
}

// The same with only an interrupt and a deadline, the common case.
inline RunResult run_command(const Args& argv,
                             const std::optional<Interrupt>& interrupt = std::nullopt,
                             std::chrono::seconds limit = std::chrono::seconds(120)) {
  return run_command(argv, RunOptions{.interrupt = interrupt, .limit = limit});
}

// Where spawn sends a background child's stdout and stderr ("" is /dev/null; one path for
// both interleaves them in one file) and what it adds to its environment.
struct SpawnOptions {
  std::string out_path{};
  std::string err_path{};
  Args env{};
};

// Starts argv in the background (see SpawnOptions); its pid, or -1 and a test failure. The
// caller reaps it (wait_exit, or its own waitpid).
inline pid_t spawn(const Args& argv, const SpawnOptions& options = {}) {
  const detail::ExecImage image(argv, options.env);
  const auto open_output = [](const std::string& path) {
    return ::open(path.empty() ? "/dev/null" : path.c_str(),
                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  };
  const int out_fd = open_output(options.out_path);
  const int err_fd = options.err_path == options.out_path ? out_fd : open_output(options.err_path);
  if (out_fd < 0 || err_fd < 0) {
    ADD_FAILURE() << "cannot open the output files of " << describe(argv) << ": "
                  << std::strerror(errno);
    for (int fd : {out_fd, err_fd}) {
      if (fd >= 0) ::close(fd);
    }
    return -1;
  }
  const pid_t pid = ::fork();
  if (pid == 0) detail::exec_child(image, out_fd, err_fd, {});
  if (pid < 0) ADD_FAILURE() << "fork: " << std::strerror(errno);
  ::close(out_fd);
  if (err_fd != out_fd) ::close(err_fd);
  return pid;
}

// Waits up to `limit` for the child `pid` to exit: its wait status (for WIFEXITED and the
// like; exit_status decodes it), or nullopt if it is still running then (it is left so).
inline std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int wstatus = 0;
    const pid_t got = ::waitpid(pid, &wstatus, WNOHANG);
    if (got == pid) return wstatus;
    if (got < 0 && errno != EINTR) {
      ADD_FAILURE() << "waitpid(" << pid << "): " << std::strerror(errno);
      return std::nullopt;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace testproc
