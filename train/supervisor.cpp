// train/supervisor.cpp — `hibari supervise` (see supervisor.h).
//
// Signals: SIGCHLD, SIGTERM and SIGINT are blocked and taken synchronously with sigtimedwait, so
// waiting for the child, forwarding a stop request and sleeping out a backoff are one race-free
// loop with no handlers and no polling.  The child gets the caller's own mask back before exec.
#include "train/supervisor.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace hibari {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

sigset_t supervised_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

// Blocks the supervised signals for the lifetime of one supervise() call.  SIGCHLD is set to its
// default action: if the caller ignored it, the kernel would reap children before we could read
// their status.
struct SignalScope {
  sigset_t caller_mask;
  struct sigaction caller_chld;

  SignalScope() {
    const sigset_t set = supervised_signals();
    pthread_sigmask(SIG_BLOCK, &set, &caller_mask);
    struct sigaction dfl = {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGCHLD, &dfl, &caller_chld);
  }
  ~SignalScope() {
    sigaction(SIGCHLD, &caller_chld, nullptr);
    pthread_sigmask(SIG_SETMASK, &caller_mask, nullptr);
  }
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;
};

struct Launch {
  pid_t pid = -1;
  int exec_errno = 0;  // non-zero: execvp failed in the child (which has exited 127)
};

// fork + execvp, the child leading its own process group (so a stop request reaches everything it
// starts, e.g. mpirun's ranks).  A close-on-exec pipe tells a failed exec from a command that
// itself exits 127.
Launch launch(const std::vector<std::string>& argv, const sigset_t& child_mask) {
  std::vector<char*> args;  // built before fork: the child must not allocate
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) fail(std::string("supervise: pipe: ") + std::strerror(errno));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    fail(std::string("supervise: fork: ") + std::strerror(e));
  }
  if (pid == 0) {
    ::close(fds[0]);
    ::setpgid(0, 0);
    // If the supervisor dies (even by SIGKILL), the command is told to stop: a run nobody will
    // restart should not go on, and a relaunched supervisor must not race it for the run dir.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    pthread_sigmask(SIG_SETMASK, &child_mask, nullptr);
    ::execvp(args[0], args.data());
    const int e = errno;
    [[maybe_unused]] ssize_t n = ::write(fds[1], &e, sizeof e);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here: whichever of parent and child runs first makes the group
  ::close(fds[1]);
  Launch l{.pid = pid};
  ssize_t n;
  do {
    n = ::read(fds[0], &l.exec_errno, sizeof l.exec_errno);
  } while (n < 0 && errno == EINTR);
  if (n != ssize_t(sizeof l.exec_errno)) l.exec_errno = 0;
  ::close(fds[0]);
  return l;
}

// Waits for the child; a SIGTERM/SIGINT meanwhile goes to its process group and is returned in
// `stop_signal` (the child is still waited for, so nothing is left running).
int wait_child(pid_t pid, int& stop_signal) {
  const sigset_t set = supervised_signals();
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) fail(std::string("supervise: waitpid: ") + std::strerror(errno));
    // The child's SIGCHLD stays pending (blocked) if it ended since waitpid: no lost wake-up.  The
    // timeout covers a caller with other threads, one of which may take the SIGCHLD instead.
    const timespec second = {.tv_sec = 1, .tv_nsec = 0};
    const int sig = ::sigtimedwait(&set, nullptr, &second);
    if (sig == SIGTERM || sig == SIGINT) {
      stop_signal = sig;
      ::kill(-pid, sig);
    }
  }
}

// Sleeps `seconds`; returns early with the signal if SIGTERM/SIGINT arrives, else 0.
int sleep_unless_stopped(double seconds) {
  const sigset_t set = supervised_signals();
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    const double left = std::chrono::duration<double>(deadline - Clock::now()).count();
    if (left <= 0) return 0;
    timespec ts;
    ts.tv_sec = time_t(left);
    ts.tv_nsec = long((left - double(ts.tv_sec)) * 1e9);
    const int sig = ::sigtimedwait(&set, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT) return sig;
    if (sig < 0 && errno == EAGAIN) return 0;  // timed out
  }
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm;
  ::gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// How one attempt ended, for the log.
struct Ending {
  int attempt;
  int status;          // from waitpid
  double seconds;      // how long it ran
  double restart_in;   // < 0: no restart follows
  int stopped_by = 0;  // SIGTERM/SIGINT received by the supervisor, or 0
};

int exit_code_of(int status) {
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

void report(const SuperviseOptions& options, const Ending& e, FILE* err) {
  const std::string time = utc_now();
  const double seconds = std::round(e.seconds * 1000) / 1000;
  nlohmann::ordered_json line;
  line["time"] = time;
  line["attempt"] = e.attempt;
  std::string how;
  if (WIFSIGNALED(e.status)) {
    line["signal"] = signal_name(WTERMSIG(e.status));
    how = "killed by " + signal_name(WTERMSIG(e.status));
  } else {
    line["exit_code"] = WEXITSTATUS(e.status);
    how = "exited with code " + std::to_string(WEXITSTATUS(e.status));
  }
  line["seconds"] = seconds;
  std::string next;
  if (e.stopped_by != 0) {
    line["stopped_by"] = signal_name(e.stopped_by);
    next = "stopped by " + signal_name(e.stopped_by) + ", not restarting";
  } else if (e.restart_in >= 0) {
    line["restart_in"] = e.restart_in;
    char text[96];
    std::snprintf(text, sizeof text, "restarting in %g s (restart %d of %d)", e.restart_in,
                  e.attempt, options.max_restarts);
    next = text;
  } else {
    next = "giving up after " + std::to_string(options.max_restarts) + " restarts";
  }
  std::fprintf(err, "hibari: supervise: %s attempt %d %s after %.1f s; %s\n", time.c_str(),
               e.attempt, how.c_str(), e.seconds, next.c_str());
  std::fflush(err);
  if (options.log_path.empty()) return;
  // Opened per line: a line is on disk before the restart, and the log may be rotated meanwhile.
  FILE* log = std::fopen(options.log_path.c_str(), "a");
  if (log == nullptr) {
    std::fprintf(err, "hibari: supervise: warning: cannot append to %s: %s\n",
                 options.log_path.c_str(), std::strerror(errno));
    return;
  }
  std::fprintf(log, "%s\n", line.dump().c_str());
  std::fclose(log);
}

}  // namespace

double supervise_backoff(const SuperviseOptions& options, double previous_wait,
                         double run_seconds) {
  const double initial = std::min(options.backoff_seconds, options.max_backoff_seconds);
  if (previous_wait <= 0 || run_seconds >= options.healthy_seconds) return initial;
  return std::min(previous_wait * 2, options.max_backoff_seconds);
}

std::string signal_name(int signal) {
  if (const char* abbrev = ::sigabbrev_np(signal)) return std::string("SIG") + abbrev;
  return "SIG" + std::to_string(signal);
}

int supervise(const SuperviseOptions& options, FILE* err) {
  check(!options.argv.empty(),
        "supervise: no command given (hibari supervise [options] -- cmd ...)");
  check(options.max_restarts >= 0, "supervise: --max-restarts must be 0 or more");
  check(options.backoff_seconds >= 0 && options.max_backoff_seconds >= 0,
        "supervise: --backoff-seconds and --max-backoff must be 0 or more");
  if (!options.log_path.empty()) {
    FILE* log = std::fopen(options.log_path.c_str(), "a");
    if (log == nullptr) fail_file(options.log_path, std::strerror(errno));
    std::fclose(log);
  }

  SignalScope signals;
  double wait = 0;
  for (int attempt = 1;; ++attempt) {
    const auto start = Clock::now();
    const Launch l = launch(options.argv, signals.caller_mask);
    if (l.exec_errno != 0) {
      int status;
      while (::waitpid(l.pid, &status, 0) < 0 && errno == EINTR) {
      }
      std::fprintf(err, "hibari: error: supervise: cannot run \"%s\": %s\n",
                   options.argv[0].c_str(), std::strerror(l.exec_errno));
      std::fflush(err);
      return l.exec_errno == ENOENT ? 127 : 126;  // as a shell does
    }
    int stop_signal = 0;
    const int status = wait_child(l.pid, stop_signal);
    const double ran = seconds_since(start);
    // The attempt is over, and so is its process group: what it left behind (a background job that
    // ignores SIGINT, as sh makes them; a rank still holding a GPU) must not outlive a stop request
    // or meet the restart.  The group id cannot be reused while any member is alive.
    ::kill(-l.pid, SIGTERM);
    if (stop_signal == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;

    Ending ending{.attempt = attempt,
                  .status = status,
                  .seconds = ran,
                  .restart_in = -1,
                  .stopped_by = stop_signal};
    if (stop_signal != 0) {
      report(options, ending, err);
      return 128 + stop_signal;
    }
    if (attempt > options.max_restarts) {
      report(options, ending, err);
      return exit_code_of(status);
    }
    wait = supervise_backoff(options, wait, ran);
    ending.restart_in = wait;
    report(options, ending, err);
    if (const int sig = sleep_unless_stopped(wait)) {
      std::fprintf(err, "hibari: supervise: stopped by %s, not restarting\n",
                   signal_name(sig).c_str());
      std::fflush(err);
      return 128 + sig;
    }
  }
}

}  // namespace hibari
