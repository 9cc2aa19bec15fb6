// Owner records (see owners.hpp): the record a run keeps of the objects it
// created, and the sweep that removes the objects of dead owners.
#include "bench/run/owners.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sys/file.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "mechanisms/posix/fd.hpp"
#include "mechanisms/posix/object_log.hpp"

namespace ipcbench {
namespace {

using objects::Kind;
using objects::Object;

constexpr std::string_view kMagic = "ipcbench-owner 1 ";
constexpr std::string_view kSuffix = ".owner";

// ---- processes -------------------------------------------------------------

std::string boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  in >> id;
  return id.empty() ? "unknown" : id;
}

struct ProcessState {
  bool exists = false;
  bool zombie = false;
  unsigned long long start = 0;  // field 22 of /proc/<pid>/stat
};

ProcessState process_state(pid_t pid) {
  ProcessState state;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // "pid (comm) state ...": comm may hold spaces and parentheses, so the
  // fields start after the last ')'; field 3 is the state, 22 the start time.
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos) return state;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  for (int n = 3; n <= 22 && fields >> field; ++n) {
    if (n == 3) state.zombie = field == "Z" || field == "X";
    if (n == 22) {
      state.exists = true;
      state.start = std::strtoull(field.c_str(), nullptr, 10);
    }
  }
  return state;
}

// ---- record files ----------------------------------------------------------

std::string owner_dir() {
  if (const char* dir = std::getenv("IPCBENCH_OWNER_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  return "/tmp/ipcbench-owners." + std::to_string(::geteuid());
}

// Creates the owner directory if needed and checks it is ours: a real
// directory (not a symlink) of this user, writable by nobody else. Throws
// std::runtime_error saying what is wrong.
void check_owner_dir(const std::string& dir, bool create) {
  if (create && ::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    throw std::system_error(errno, std::generic_category(), "cannot create owner directory " + dir);
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    throw std::system_error(errno, std::generic_category(),
                            "cannot examine owner directory " + dir);
  }
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 022) != 0) {
    throw std::runtime_error("owner directory " + dir +
                             " is not a directory of this user writable only by it: not used");
  }
}

std::string describe(const Object& o) {
  std::string text(objects::to_string(o.kind));
  if (o.is_sysv()) {
    char key[16];
    std::snprintf(key, sizeof key, "0x%08x", static_cast<unsigned>(o.key));
    text.append(" key=").append(key);
    if (o.id >= 0) text.append(" id=").append(std::to_string(o.id));
    if (o.ctime != 0) text.append(" ctime=").append(std::to_string(o.ctime));
  } else {
    text.append(" ").append(o.name);
  }
  return text;
}

// An object's identity within one record: System V by key, others by name.
std::pair<int, std::string> identity(const Object& o) {
  return {static_cast<int>(o.kind), o.is_sysv() ? std::to_string(o.key) : o.name};
}

struct Record {
  std::string path;
  std::string file_name;
  bool header_ok = false;
  pid_t pid = 0;
  unsigned long long start = 0;
  std::string boot;
  uid_t uid = 0;
  std::time_t time = 0;
  std::vector<std::string> problems;                      // malformed lines
  std::map<std::pair<int, std::string>, Object> objects;  // what it still lists
};

template <typename T>
bool parse_number(std::string_view text, T& value, int base = 10) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  return ec == std::errc() && end == text.data() + text.size();
}

// "key=value" fields of a header or System V line.
std::map<std::string, std::string, std::less<>> fields_of(std::string_view text) {
  std::map<std::string, std::string, std::less<>> fields;
  std::istringstream in{std::string(text)};
  std::string word;
  while (in >> word) {
    const auto eq = word.find('=');
    if (eq != std::string::npos) fields[word.substr(0, eq)] = word.substr(eq + 1);
  }
  return fields;
}

bool parse_header(std::string_view line, Record& r) {
  if (!line.starts_with(kMagic)) return false;
  auto f = fields_of(line.substr(kMagic.size()));
  unsigned long uid = 0;
  long long time = 0;
  if (!f.contains("pid") || !f.contains("start") || !f.contains("boot") || !f.contains("uid") ||
      !parse_number(f["pid"], r.pid) || r.pid <= 0 || !parse_number(f["start"], r.start) ||
      !parse_number(f["uid"], uid) || !parse_number(f.contains("time") ? f["time"] : "0", time)) {
    return false;
  }
  r.boot = f["boot"];
  r.uid = static_cast<uid_t>(uid);
  r.time = static_cast<std::time_t>(time);
  return true;
}

// One object line ("+ kind name" / "- kind key=... id=..."); false if malformed.
bool parse_object_line(std::string_view line, char& op, Object& o) {
  if (line.size() < 3 || (line[0] != '+' && line[0] != '-') || line[1] != ' ') return false;
  op = line[0];
  line.remove_prefix(2);
  const auto space = line.find(' ');
  if (space == std::string_view::npos || !objects::from_string(line.substr(0, space), o.kind)) {
    return false;
  }
  const std::string_view rest = line.substr(space + 1);
  if (!o.is_sysv()) {
    if (rest.empty()) return false;
    o.name = std::string(rest);
    return true;
  }
  auto f = fields_of(rest);
  std::string_view key = f.contains("key") ? std::string_view(f["key"]) : "";
  if (!key.starts_with("0x")) return false;
  unsigned k = 0;
  if (!parse_number(key.substr(2), k, 16) || k == 0) return false;
  o.key = static_cast<key_t>(k);
  if (f.contains("id") && (!parse_number(f["id"], o.id) || o.id < 0)) return false;
  long long ctime = 0;
  if (f.contains("ctime") && !parse_number(f["ctime"], ctime)) return false;
  o.ctime = static_cast<std::time_t>(ctime);
  return true;
}

Record parse_record(const std::string& path, const std::string& text) {
  Record r;
  r.path = path;
  r.file_name = std::filesystem::path(path).filename().string();
  std::size_t pos = 0;
  int number = 0;
  while (pos < text.size()) {
    const auto nl = text.find('\n', pos);
    ++number;
    if (nl == std::string::npos) {
      r.problems.push_back("line " + std::to_string(number) + " is cut short");
      break;
    }
    const std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    if (number == 1) {
      r.header_ok = parse_header(line, r);
      if (!r.header_ok) break;
      continue;
    }
    char op = 0;
    Object o;
    if (!parse_object_line(line, op, o)) {
      r.problems.push_back("line " + std::to_string(number) + " is malformed");
      continue;
    }
    const auto id = identity(o);
    if (op == '-') {
      r.objects.erase(id);
    } else if (auto it = r.objects.find(id); it != r.objects.end() && o.id < 0) {
      continue;  // a "creating" line after a "created" one adds nothing
    } else {
      r.objects[id] = o;
    }
  }
  return r;
}

std::string read_all(int fd) {
  std::string text;
  char buf[4096];
  ::lseek(fd, 0, SEEK_SET);
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  return text;
}

bool owner_alive(const Record& r, const std::string& this_boot) {
  if (r.boot != this_boot) return false;  // an earlier boot: every process is gone
  const ProcessState p = process_state(r.pid);
  return p.exists && !p.zombie && p.start == r.start;
}

// The pid and start time a record's file name carries ("<pid>-<start>.owner").
bool parse_file_name(std::string_view name, pid_t& pid, unsigned long long& start) {
  if (!name.ends_with(kSuffix)) return false;
  name.remove_suffix(kSuffix.size());
  const auto dash = name.find('-');
  return dash != std::string_view::npos && parse_number(name.substr(0, dash), pid) &&
         parse_number(name.substr(dash + 1), start);
}

// ---- checking and removing one object -------------------------------------

// kNotYet: ours, but not to be removed now (a RouDi holds iceoryx's
// names); the record keeps it for a later clean.
enum class Verdict { kRemove, kGone, kNotOurs, kNotYet };

struct Check {
  Verdict verdict = Verdict::kGone;
  std::string why;  // for kNotOurs and kNotYet
  Object object;    // resolved (System V id filled in)
};

// "/ipcbench.<pid>." (POSIX) or "ipcbench.<pid>." (the run directory's
// last component): the names ipcbench gives its objects.
bool ipcbench_name(std::string_view name, pid_t pid) {
  const std::string stem = objects::name_stem(pid);
  return name.starts_with(stem) && name.size() > stem.size() &&
         name.find('/') == std::string_view::npos;
}

Check check_posix(const Object& o, pid_t pid) {
  Check c{.verdict = Verdict::kNotOurs, .why = "", .object = o};
  if (o.name.size() < 2 || o.name[0] != '/' || !ipcbench_name(o.name.substr(1), pid)) {
    c.why = "not an ipcbench name of run " + std::to_string(pid);
    return c;
  }
  struct stat st {};
  if (o.kind == Kind::kPosixShm) {
    if (::stat(("/dev/shm" + o.name).c_str(), &st) != 0) {
      c.verdict = Verdict::kGone;
      return c;
    }
  } else {
    // Opening a queue leaves it as it is; its descriptor tells the owner.
    posix::Fd q(::mq_open(o.name.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!q) {
      if (errno == ENOENT) {
        c.verdict = Verdict::kGone;
        return c;
      }
      c.why = std::string("cannot open it: ") + std::strerror(errno);
      return c;
    }
    if (::fstat(q.get(), &st) != 0) {
      c.why = "cannot examine it";
      return c;
    }
  }
  if (st.st_uid != ::geteuid()) {
    c.why = "belongs to uid " + std::to_string(st.st_uid);
    return c;
  }
  c.verdict = Verdict::kRemove;
  return c;
}

Check check_directory(const Object& o, pid_t pid) {
  Check c{.verdict = Verdict::kNotOurs, .why = "", .object = o};
  const std::filesystem::path path(o.name);
  if (!path.is_absolute() || !ipcbench_name(path.filename().string(), pid)) {
    c.why = "not an ipcbench run directory of run " + std::to_string(pid);
    return c;
  }
  struct stat st {};
  if (::lstat(o.name.c_str(), &st) != 0) {
    c.verdict = Verdict::kGone;
    return c;
  }
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
    c.why = "not a directory of this user";
    return c;
  }
  c.verdict = Verdict::kRemove;
  return c;
}

// The key, creator and creation time of a System V object, by id.
struct SysvStat {
  bool ok = false;
  key_t key = 0;
  uid_t cuid = 0;
  std::time_t ctime = 0;
};

SysvStat sysv_stat(Kind kind, int id) {
  SysvStat s;
  if (kind == Kind::kSysvMsg) {
    msqid_ds ds{};
    if (::msgctl(id, IPC_STAT, &ds) != 0) return s;
    s = {true, ds.msg_perm.__key, ds.msg_perm.cuid, ds.msg_ctime};
  } else if (kind == Kind::kSysvShm) {
    shmid_ds ds{};
    if (::shmctl(id, IPC_STAT, &ds) != 0) return s;
    s = {true, ds.shm_perm.__key, ds.shm_perm.cuid, ds.shm_ctime};
  } else {
    semid_ds ds{};
    if (::semctl(id, 0, IPC_STAT, &ds) != 0) return s;
    s = {true, ds.sem_perm.__key, ds.sem_perm.cuid, ds.sem_ctime};
  }
  return s;
}

int sysv_lookup(Kind kind, key_t key) {
  if (kind == Kind::kSysvMsg) return ::msgget(key, 0);
  if (kind == Kind::kSysvShm) return ::shmget(key, 0, 0);
  return ::semget(key, 0, 0);
}

Check check_sysv(const Object& o, const Record& r) {
  Check c{.verdict = Verdict::kNotOurs, .why = "", .object = o};
  int id = o.id;
  if (id < 0) {
    // Killed between recording the key and the id: find it by its key.
    id = sysv_lookup(o.kind, o.key);
    if (id < 0) {
      c.verdict = Verdict::kGone;
      return c;
    }
  }
  const SysvStat s = sysv_stat(o.kind, id);
  if (!s.ok) {
    c.verdict = Verdict::kGone;
    return c;
  }
  if (s.key != o.key) {
    c.why = "id " + std::to_string(id) + " now holds another object (key differs)";
    return c;
  }
  if (s.cuid != ::geteuid()) {
    c.why = "created by uid " + std::to_string(s.cuid);
    return c;
  }
  // The recorded creation time, or (id not yet recorded) not before the run.
  if ((o.ctime != 0 && s.ctime != o.ctime) || (o.ctime == 0 && s.ctime + 1 < r.time)) {
    c.why = "id " + std::to_string(id) + " was created at another time: not the recorded object";
    return c;
  }
  c.object.id = id;
  c.object.ctime = s.ctime;
  c.verdict = Verdict::kRemove;
  return c;
}

// A name of iceoryx's RouDi in the machine's namespace (a run without
// root): one of its fixed names, or its runtimes' "/tmp/ipcbench-r<pid>-*";
// never while a RouDi runs (they are then that RouDi's).
Check check_iceoryx(const Object& o) {
  Check c{.verdict = Verdict::kNotOurs, .why = "", .object = o};
  if (!objects::is_iceoryx_name(o.name)) {
    c.why = "not a name of iceoryx's RouDi or of its runtimes";
    return c;
  }
  if (std::string running = objects::running_roudi(); !running.empty()) {
    c.verdict = Verdict::kNotYet;
    c.why = running + ": kept for a clean once it has stopped";
    return c;
  }
  if (!o.name.ends_with("*")) {
    bool exists = false;
    c.why = objects::foreign_file(o.name, &exists);
    if (!exists) c.verdict = Verdict::kGone;
    if (!exists || !c.why.empty()) return c;
  }
  c.verdict = Verdict::kRemove;
  return c;
}

Check check_object(const Object& o, const Record& r) {
  if (o.kind == Kind::kDirectory) return check_directory(o, r.pid);
  if (o.kind == Kind::kIceoryx) return check_iceoryx(o);
  if (o.is_sysv()) return check_sysv(o, r);
  return check_posix(o, r.pid);
}

// Removes a checked object; an error text, empty on success (or when it
// went meanwhile).
std::string remove_object(const Object& o) {
  int rc = 0;
  switch (o.kind) {
    case Kind::kPosixShm:
      rc = ::shm_unlink(o.name.c_str());
      break;
    case Kind::kPosixMq:
      rc = ::mq_unlink(o.name.c_str());
      break;
    case Kind::kSysvMsg:
      rc = ::msgctl(o.id, IPC_RMID, nullptr);
      break;
    case Kind::kSysvShm:
      rc = ::shmctl(o.id, IPC_RMID, nullptr);
      break;
    case Kind::kSysvSem:
      rc = ::semctl(o.id, 0, IPC_RMID);
      break;
    case Kind::kDirectory: {
      std::error_code ec;
      std::filesystem::remove_all(o.name, ec);  // removes symlinks inside, never follows them
      return ec ? ec.message() : "";
    }
    case Kind::kIceoryx:
      return objects::remove_iceoryx_name(o.name);
  }
  if (rc != 0 && errno != ENOENT && errno != EINVAL && errno != EIDRM) return std::strerror(errno);
  return "";
}

// ---- the sweep -------------------------------------------------------------

struct SweepResult {
  int removed = 0;                 // objects removed (or, dry run, that would be)
  int left = 0;                    // listed objects that are not ours
  int failed = 0;                  // removals that failed
  int dead_runs = 0;               // dead owners found
  int live_runs = 0;               // live owners left alone
  int busy = 0;                    // records someone else holds
  std::vector<std::string> lines;  // one per object, per malformed record
};

struct Candidate {
  Record record;
  posix::Fd fd;  // holds the cleaner's flock while we work on it
};

SweepResult sweep(const std::string& dir, bool dry_run) {
  SweepResult result;
  const std::string this_boot = boot_id();
  std::vector<std::string> paths;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string_view name(e->d_name);
      if (name.ends_with(kSuffix)) paths.push_back(dir + "/" + std::string(name));
    }
    ::closedir(d);
  }
  std::sort(paths.begin(), paths.end());

  std::set<std::pair<int, std::string>> live_objects;  // never touched
  std::vector<Candidate> dead;
  for (const std::string& path : paths) {
    posix::Fd fd(::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) continue;  // removed meanwhile, or not ours to open
    const std::string text = read_all(fd.get());
    Record r = parse_record(path, text);
    if (!r.header_ok) {
      pid_t pid = 0;
      unsigned long long start = 0;
      const bool empty = text.empty();
      // An empty record lists nothing: its run died before its first
      // line. Removed once that run is gone; anything else is left.
      if (empty && parse_file_name(r.file_name, pid, start)) {
        const ProcessState p = process_state(pid);
        if (!(p.exists && !p.zombie && p.start == start)) {
          if (!dry_run) ::unlink(path.c_str());
          result.lines.push_back(std::string(dry_run ? "would remove" : "removed") +
                                 " empty owner record " + path);
        }
        continue;
      }
      result.lines.push_back("left malformed owner record " + path + " (no valid header)");
      continue;
    }
    const bool alive = owner_alive(r, this_boot);
    if (alive) {
      ++result.live_runs;
      for (const auto& [id, o] : r.objects) live_objects.insert(id);
      continue;
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      ++result.busy;  // held: its owner lives on elsewhere, or another cleaner is at it
      for (const auto& [id, o] : r.objects) live_objects.insert(id);
      continue;
    }
    // Locked: read again, the owner may have appended before it died.
    Record again = parse_record(path, read_all(fd.get()));
    dead.push_back({std::move(again), std::move(fd)});
  }

  for (Candidate& c : dead) {
    const Record& r = c.record;
    ++result.dead_runs;
    bool keep = !r.problems.empty();
    for (const std::string& p : r.problems) {
      result.lines.push_back("left malformed owner record " + r.path + " (" + p + ")");
    }
    const std::string whose = " (run " + std::to_string(r.pid) + ", dead)";
    // The run directory last: its sockets go with it, and a record that
    // lists only it is the common case.
    std::vector<const Object*> order;
    for (const auto& [id, o] : r.objects) {
      if (o.kind != Kind::kDirectory) order.push_back(&o);
    }
    for (const auto& [id, o] : r.objects) {
      if (o.kind == Kind::kDirectory) order.push_back(&o);
    }
    for (const Object* o : order) {
      if (live_objects.contains(identity(*o))) {
        result.lines.push_back("left " + describe(*o) + whose + ": a live run lists it too");
        ++result.left;
        continue;
      }
      const Check check = check_object(*o, r);
      if (check.verdict == Verdict::kGone) continue;
      if (check.verdict == Verdict::kNotOurs || check.verdict == Verdict::kNotYet) {
        result.lines.push_back("left " + describe(*o) + whose + ": " + check.why);
        ++result.left;
        keep = keep || check.verdict == Verdict::kNotYet;
        continue;
      }
      if (dry_run) {
        result.lines.push_back("would remove " + describe(check.object) + whose);
        ++result.removed;
        continue;
      }
      const std::string error = remove_object(check.object);
      if (error.empty()) {
        result.lines.push_back("removed " + describe(check.object) + whose);
        ++result.removed;
      } else {
        result.lines.push_back(std::string("failed to remove ")
                                   .append(describe(check.object))
                                   .append(whose)
                                   .append(": ")
                                   .append(error));
        ++result.failed;
        keep = true;
      }
    }
    if (!dry_run && !keep) ::unlink(r.path.c_str());
  }
  return result;
}

// ---- the live record -------------------------------------------------------

class FileOwnerRecord final : public OwnerRecord, public objects::Observer {
 public:
  FileOwnerRecord(std::string path, posix::Fd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  ~FileOwnerRecord() override {
    objects::set_observer(nullptr);
    std::vector<std::string> left;
    std::vector<std::string> dirs;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [id, o] : live_) {
        (o.kind == Kind::kDirectory ? dirs : left)
            .push_back(o.kind == Kind::kDirectory ? o.name : describe(o));
      }
    }
    if (!left.empty()) {
      // A mechanism did not remove (or report removing) these: leave the
      // record, so the next sweep removes them once this process is gone.
      std::string list;
      for (const std::string& l : left) list += (list.empty() ? "" : ", ") + l;
      std::fprintf(stderr,
                   "ipcbench: warning: objects still listed at the end of the run: %s "
                   "(left for `ipcbench clean`)\n",
                   list.c_str());
      return;
    }
    // A run directory still listed (its owner did not get to remove it).
    for (const std::string& d : dirs) {
      std::error_code ec;
      std::filesystem::remove_all(d, ec);
    }
    ::unlink(path_.c_str());
  }

  // Writes "+ <object>" before the object exists; throws if it cannot.
  void creating(const Object& o) override {
    const std::string text = describe(o);
    if (text.find('\n') != std::string::npos) {
      throw std::invalid_argument("object name with a newline: " + text);
    }
    std::lock_guard lock(mutex_);
    if (!append("+ " + text + "\n")) {
      throw std::system_error(
          errno, std::generic_category(),
          "cannot record " + text + " in owner record " + path_ + " (the object is not created)");
    }
    live_[identity(o)] = o;
  }

  void created(const Object& o) noexcept override {
    std::lock_guard lock(mutex_);
    live_[identity(o)] = o;
    if (!append("+ " + describe(o) + "\n")) warn();
  }

  void removed(const Object& o) noexcept override {
    std::lock_guard lock(mutex_);
    live_.erase(identity(o));
    if (!append("- " + describe(o) + "\n")) warn();
  }

 private:
  // One write(2) per line: O_APPEND puts it whole at the end, so a SIGKILL
  // leaves whole lines. No fsync: a killed process loses nothing the kernel
  // has, and a machine that crashes takes /dev/shm and System V with it.
  bool append(const std::string& line) noexcept {
    ssize_t n = -1;
    do {
      n = ::write(fd_.get(), line.data(), line.size());
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(line.size())) return true;
    if (n >= 0) errno = ENOSPC;
    return false;
  }

  void warn() noexcept {
    if (!warned_) {
      std::fprintf(stderr, "ipcbench: warning: cannot write owner record %s: %s\n", path_.c_str(),
                   std::strerror(errno));
      warned_ = true;
    }
  }

  std::string path_;
  posix::Fd fd_;  // O_APPEND, holds our flock until we exit
  std::mutex mutex_;
  std::map<std::pair<int, std::string>, Object> live_;
  bool warned_ = false;
};

}  // namespace

std::unique_ptr<OwnerRecord> OwnerRecord::start() {
  const std::string dir = owner_dir();
  try {
    check_owner_dir(dir, true);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbench: warning: %s; this run keeps no owner record\n", e.what());
    return nullptr;
  }
  const SweepResult swept = sweep(dir, false);
  if (swept.removed > 0 || swept.failed > 0) {
    std::fprintf(stderr,
                 "ipcbench: removed %d object%s left by %d dead run%s%s (see `ipcbench clean`)\n",
                 swept.removed, swept.removed == 1 ? "" : "s", swept.dead_runs,
                 swept.dead_runs == 1 ? "" : "s",
                 swept.failed > 0 ? ("; " + std::to_string(swept.failed) + " failed").c_str() : "");
  }

  const pid_t pid = ::getpid();
  const ProcessState self = process_state(pid);
  const std::string path =
      dir + "/" + std::to_string(pid) + "-" + std::to_string(self.start) + std::string(kSuffix);
  // A record of this very name is a dead run's (same pid and start: an
  // earlier boot): the sweep has dealt with it; start afresh.
  ::unlink(path.c_str());
  posix::Fd fd(
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    std::fprintf(stderr,
                 "ipcbench: warning: cannot create owner record %s: %s; this run keeps "
                 "no owner record\n",
                 path.c_str(), std::strerror(errno));
    return nullptr;
  }
  const std::string header = std::string(kMagic) + "pid=" + std::to_string(pid) +
                             " start=" + std::to_string(self.start) + " boot=" + boot_id() +
                             " uid=" + std::to_string(::geteuid()) +
                             " time=" + std::to_string(std::time(nullptr)) + "\n";
  if (::write(fd.get(), header.data(), header.size()) != static_cast<ssize_t>(header.size())) {
    std::fprintf(stderr,
                 "ipcbench: warning: cannot write owner record %s: %s; this run keeps no "
                 "owner record\n",
                 path.c_str(), std::strerror(errno));
    ::unlink(path.c_str());
    return nullptr;
  }
  auto record = std::make_unique<FileOwnerRecord>(path, std::move(fd));
  objects::set_observer(record.get());
  return record;
}

int run_clean(bool dry_run) {
  const std::string dir = owner_dir();
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 && errno == ENOENT) {
    std::printf("no owner records (%s does not exist): nothing to %s\n", dir.c_str(),
                dry_run ? "list" : "remove");
    return 0;
  }
  try {
    check_owner_dir(dir, false);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbench: error: %s\n", e.what());
    return 1;
  }
  const SweepResult r = sweep(dir, dry_run);
  for (const std::string& line : r.lines) std::printf("%s\n", line.c_str());
  std::printf(
      "total: %s %d object%s of %d dead run%s; %d left (not ours, or not yet)%s; %d live run%s "
      "untouched%s\n",
      dry_run ? "would remove" : "removed", r.removed, r.removed == 1 ? "" : "s", r.dead_runs,
      r.dead_runs == 1 ? "" : "s", r.left,
      r.failed > 0 ? ("; " + std::to_string(r.failed) + " failed").c_str() : "",
      r.live_runs + r.busy, r.live_runs + r.busy == 1 ? "" : "s",
      dry_run ? " (dry run: nothing removed)" : "");
  return 0;
}

}  // namespace ipcbench
