#include "bench/serve/serve.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <stdexcept>

#include "bench/control/control.hpp"
#include "bench/core/sysinfo.hpp"
#include "bench/peer/peer.hpp"
#include "bench/peer/peer_process.hpp"
#include "mechanisms/posix/errors.hpp"
#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/retry.hpp"
#include "mechanisms/posix/time.hpp"
#include "mechanisms/registry.hpp"

namespace ipcbench {
namespace {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// One line per event on stderr, with a timestamp.
void log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log(const char* fmt, ...) {
  char when[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&now, &tm);
  std::strftime(when, sizeof when, "%H:%M:%S", &tm);
  std::fprintf(stderr, "ipcbench serve %s: ", when);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}

// A peer process started for one case.
class ServerPeer {
 public:
  ServerPeer(const ServeOptions& options, const control::SetupRequest& setup, int cpu,
             const std::string& listen_host, const std::string& allow_from) {
    Mechanism* mech = find_mechanism(setup.mechanism);
    std::vector<std::string> args = {options.executable,
                                     "peer",
                                     "--mechanism",
                                     setup.mechanism,
                                     "--listen-host",
                                     listen_host,
                                     "--allow-from",
                                     allow_from,
                                     "--cpu",
                                     std::to_string(cpu),
                                     "--max-message",
                                     std::to_string(setup.max_message),
                                     "--verify",
                                     setup.verify_full ? "full" : "header",
                                     "--parent",
                                     std::to_string(::getpid()),
                                     "--timeout-ms",
                                     std::to_string(options.peer_timeout.count())};
    if (mech->capabilities().lossy) args.emplace_back("--lossy");
    PeerProcess p = spawn_peer_process(std::move(args), {}, true);
    pid_ = p.pid;
    pidfd_ = std::move(p.pidfd);
    stdout_ = std::move(p.stdout_read);
    stderr_ = std::move(p.stderr_read);
  }

  ~ServerPeer() { stop(std::chrono::milliseconds(0)); }
  ServerPeer(const ServerPeer&) = delete;
  ServerPeer& operator=(const ServerPeer&) = delete;

  pid_t pid() const noexcept { return pid_; }
  int pidfd() const noexcept { return pidfd_.get(); }
  bool reaped() const noexcept { return reaped_; }

  // The address line the peer prints once it listens; throws if it exits or
  // says nothing within `timeout`.
  std::string address(std::chrono::milliseconds timeout) {
    std::string line;
    const auto deadline = SteadyClock::now() + timeout;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
      if (left.count() <= 0) throw Timeout("the peer did not start listening in time");
      pollfd p{stdout_.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char c;
      const ssize_t n = ::read(stdout_.get(), &c, 1);
      if (n <= 0)
        throw PeerLost("the peer could not start: " + stop(std::chrono::milliseconds(500)));
      if (c == '\n') return line;
      if (line.size() > 300) throw ProtocolError("the peer printed no address");
      line.push_back(c);
    }
  }

  // Waits up to `grace` for the peer to leave, then kills it; reaps it and
  // describes how it ended. Never throws.
  std::string stop(std::chrono::milliseconds grace) noexcept {
    if (reaped_) return status_;
    if (!wait(grace)) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &wait_status_, 0);  // SIGKILL cannot be ignored
      reaped_ = true;
      killed_ = true;
      abandoned_ = grace.count() == 0;
    }
    status_ = describe();
    return status_;
  }

 private:
  bool wait(std::chrono::milliseconds timeout) noexcept {
    pollfd p{pidfd_.get(), POLLIN, 0};
    if (timeout.count() > 0) ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (::waitpid(pid_, &wait_status_, WNOHANG) == pid_) reaped_ = true;
    return reaped_;
  }

  std::string describe() noexcept {
    std::string what;
    if (killed_) {
      what = abandoned_ ? "peer killed by the server (case abandoned)"
                        : "peer killed by the server (it did not leave in time)";
    } else {
      what = describe_exit(wait_status_);
    }
    const std::string err = read_stderr(stderr_.get(), true);
    if (!err.empty()) what += ": " + err;
    return what;
  }

  pid_t pid_ = -1;
  posix::Fd pidfd_, stdout_, stderr_;
  int wait_status_ = 0;
  bool reaped_ = false;
  bool killed_ = false;
  bool abandoned_ = false;  // killed at once, not after a grace period
  std::string status_;
};

// Why a client's connection ends. `tell` says whether the client gets the
// reason in an error message first (not after end-of-file).
struct Hangup {
  std::string reason;
  bool tell = true;
};

class Server {
 public:
  explicit Server(const ServeOptions& options) : options_(options) {
    limits_.cpus = options.cpus;
    for (const auto& m : mechanisms()) {
      const Capabilities caps = m->capabilities();
      if (caps.crosses_hosts)
        limits_.mechanisms.push_back({std::string(m->name()), caps.max_message});
    }
    if (limits_.cpus.empty()) limits_.cpus = allowed_cpus();
    pinned_ = !options.cpus.empty();
    host_ = control::host_json(read_host_info());
  }

  int run() {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &stop, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    signals_ = posix::Fd(::signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!signals_) posix::throw_errno("signalfd failed");
    listen_socket();
    while (!stopping_) {
      pollfd p[2] = {{listen_.get(), POLLIN, 0}, {signals_.get(), POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        posix::throw_errno("poll failed");
      }
      if (p[1].revents != 0) {
        on_signal();
        break;
      }
      if (p[0].revents != 0) {
        posix::Fd conn(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (conn) serve_client(std::move(conn));
      }
    }
    log("stopped");
    return 0;
  }

 private:
  void listen_socket() {
    const auto [host, port] = control::split_host_port(options_.listen);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    addrinfo* res = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc != 0) throw std::runtime_error("cannot resolve '" + host + "': " + ::gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);
    listen_ =
        posix::Fd(::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol));
    if (!listen_) posix::throw_errno("cannot create the listening socket");
    const int one = 1;
    ::setsockopt(listen_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(listen_.get(), res->ai_addr, res->ai_addrlen) != 0) {
      posix::throw_errno("cannot listen on " + options_.listen);
    }
    if (::listen(listen_.get(), 8) != 0) posix::throw_errno("cannot listen on " + options_.listen);
    std::string cpus;
    for (int c : options_.cpus) cpus.append(cpus.empty() ? "" : ",").append(std::to_string(c));
    log("listening on %s (%s; peers %s)", options_.listen.c_str(),
        options_.token.empty() ? "no token" : "token required",
        cpus.empty() ? "unpinned" : ("on CPU " + cpus).c_str());
  }

  void on_signal() {
    signalfd_siginfo si{};
    if (::read(signals_.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      log("%s: stopping", ::strsignal(static_cast<int>(si.ssi_signo)));
    }
    stopping_ = true;
  }

  // Another client while one is served: told so, and closed.
  void refuse_busy(const std::string& current) {
    posix::Fd other(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!other) return;
    const std::string who = control::peer_host(other.get());
    control::Connection c(std::move(other));
    c.send_last_word(
        {{"type", "busy"}, {"reason", "busy: serving another client (" + current + ")"}});
    log("%s: refused: busy with %s", who.c_str(), current.c_str());
  }

  void serve_client(posix::Fd fd) {
    const std::string client = control::peer_host(fd.get());
    const std::string local = control::local_host(fd.get());
    control::Connection conn(std::move(fd));
    log("%s: connected", client.c_str());
    enum class State { kHello, kIdle, kCase } state = State::kHello;
    std::unique_ptr<ServerPeer> peer;
    bool peer_reported = false;
    auto deadline = SteadyClock::now() + options_.handshake_timeout;
    std::size_t cases = 0;
    try {
      for (;;) {
        pollfd p[4] = {{conn.fd(), POLLIN, 0},
                       {listen_.get(), POLLIN, 0},
                       {signals_.get(), POLLIN, 0},
                       {peer && !peer->reaped() ? peer->pidfd() : -1, POLLIN, 0}};
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
        if (left.count() <= 0) {
          throw Hangup{state == State::kHello  ? "no hello within the handshake timeout"
                       : state == State::kIdle ? "idle for too long (no setup or bye)"
                                               : "case took longer than the case timeout"};
        }
        const int r = ::poll(p, 4, static_cast<int>(std::min<long>(left.count(), 1000)));
        if (r < 0) {
          if (errno == EINTR) continue;
          posix::throw_errno("poll failed");
        }
        if (p[2].revents != 0) {
          on_signal();
          throw Hangup{"the server is stopping"};
        }
        if (p[1].revents != 0) refuse_busy(client);
        if (p[3].fd >= 0 && p[3].revents != 0) {
          const std::string status = peer->stop(std::chrono::milliseconds(0));
          log("%s: %s", client.c_str(), status.c_str());
          conn.send({{"type", "peer_exit"}, {"status", status}});
          peer_reported = true;
        }
        if (p[0].revents == 0) continue;
        // End-of-file may show on the first read or after a message already
        // handled (a client that sends and closes at once): the same reason.
        const auto next = [&]() -> std::optional<json> {
          try {
            return conn.read_available();
          } catch (const PeerLost&) {
            throw Hangup{state == State::kCase ? "disconnected mid-case" : "disconnected", false};
          }
        };
        std::optional<json> m = next();
        while (m) {
          const std::string type = control::printable((*m)["type"].get<std::string>());
          if (state == State::kHello) {
            if (type != "hello") throw Hangup{"expected hello, got '" + type + "'"};
            const std::string token = control::parse_hello(*m);
            if (!options_.token.empty() && !control::tokens_equal(token, options_.token)) {
              throw Hangup{token.empty() ? "missing token (give --token-file or IPCBENCH_TOKEN)"
                                         : "wrong token"};
            }
            conn.send({{"type", "welcome"},
                       {"version", control::kVersion},
                       {"host", host_},
                       {"cpus", options_.cpus}});
            log("%s: hello", client.c_str());
            state = State::kIdle;
            deadline = SteadyClock::now() + options_.idle_timeout;
          } else if (state == State::kIdle && type == "setup") {
            const control::SetupRequest setup = control::parse_setup(*m, limits_);
            const int cpu = setup.cpu >= 0 ? setup.cpu : (pinned_ ? options_.cpus.front() : -1);
            peer_reported = false;
            try {
              peer = std::make_unique<ServerPeer>(options_, setup, cpu, local, client);
              const std::string address = peer->address(options_.peer_timeout);
              conn.send({{"type", "ready"}, {"address", address}, {"peer_pid", peer->pid()}});
              log("%s: case %zu: %s, max %zu bytes, peer %d on %s, listening on %s", client.c_str(),
                  ++cases, setup.mechanism.c_str(), setup.max_message,
                  static_cast<int>(peer->pid()),
                  cpu >= 0 ? ("CPU " + std::to_string(cpu)).c_str() : "any CPU", address.c_str());
            } catch (const Hangup&) {
              throw;
            } catch (const std::exception& e) {
              throw Hangup{std::string("cannot start the peer: ") + e.what()};
            }
            state = State::kCase;
            deadline = SteadyClock::now() + options_.case_timeout;
          } else if (state == State::kIdle && type == "bye") {
            control::check_keys(*m, {"type"});
            log("%s: bye after %zu case(s)", client.c_str(), cases);
            return;
          } else if (state == State::kCase && type == "teardown") {
            control::check_keys(*m, {"type"});
            // The client said goodbye to the peer over the data connection.
            const std::string status = peer->stop(std::chrono::milliseconds(2000));
            if (!peer_reported) log("%s: %s", client.c_str(), status.c_str());
            peer.reset();
            conn.send({{"type", "done"}, {"status", status}});
            state = State::kIdle;
            deadline = SteadyClock::now() + options_.idle_timeout;
          } else {
            throw Hangup{"unexpected '" + type + "' " +
                         (state == State::kCase ? "during a case" : "between cases")};
          }
          m = next();
        }
      }
    } catch (const Hangup& h) {
      hang_up(conn, client, h.reason, h.tell, peer);
    } catch (const control::ControlError& e) {
      hang_up(conn, client, e.what(), true, peer);
    } catch (const PeerLost& e) {
      hang_up(conn, client, e.what(), false, peer);
    } catch (const std::exception& e) {
      hang_up(conn, client, e.what(), true, peer);
    }
  }

  void hang_up(control::Connection& conn, const std::string& client, const std::string& reason,
               bool tell, std::unique_ptr<ServerPeer>& peer) {
    if (tell) conn.send_last_word({{"type", "error"}, {"reason", reason}});
    std::string tail;
    if (peer && !peer->reaped()) tail = "; " + peer->stop(std::chrono::milliseconds(0));
    peer.reset();
    log("%s: closed: %s%s", client.c_str(), reason.c_str(), tail.c_str());
  }

  const ServeOptions& options_;
  control::ServerLimits limits_;
  bool pinned_ = false;
  nlohmann::ordered_json host_;
  posix::Fd listen_, signals_;
  bool stopping_ = false;
};

}  // namespace

int run_serve(const ServeOptions& options) {
  try {
    Server server(options);
    return server.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbench serve: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace ipcbench
