// train/supervisor.h — `hibari supervise`: run a command, and run it again when it fails.
//
// A long run dies for reasons that a restart cures (a node's hiccup, the watchdog's exit 3, an
// OOM kill).  The command resumes from its latest checkpoint by itself (`hibari train` does when
// the run directory holds checkpoints), so the supervisor only re-runs the same argv: after a
// backoff that doubles per failure (capped), reset when the failed run had been healthy for a long
// time, up to a number of restarts.  Each failure is one line on `err` and, when a log file is
// given, one JSON line appended to it:
//   {"time":"2025-01-02T03:04:05Z","attempt":1,"exit_code":3,"seconds":12.5,"restart_in":5}
//   {"time":"...","attempt":2,"signal":"SIGKILL","seconds":0.1}        (no restart_in: gave up)
// SIGTERM and SIGINT sent to the supervisor go to the command's process group and stop everything.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace hibari {

struct SuperviseOptions {
  std::vector<std::string> argv{};   // the command and its arguments (argv[0] looked up in PATH)
  int max_restarts = 10;             // restarts after the first attempt; then give up
  double backoff_seconds = 5;        // wait before the first restart
  double max_backoff_seconds = 300;  // the doubling stops here
  double healthy_seconds = 600;      // a run that lasted this long restarts after backoff_seconds
  std::string log_path{};            // JSON Lines, appended; "" = none
};

// The wait before the next restart, given the wait before the previous one (0 if none yet) and how
// long the failed run lasted.
double supervise_backoff(const SuperviseOptions& options, double previous_wait, double run_seconds);

// "SIGKILL" for 9, "SIG42" for a signal without a name.
std::string signal_name(int signal);

// Runs options.argv until it exits 0, restarting it on failure as described above.  Returns the
// exit code for the supervisor: 0; the command's last exit code (128 + signal when a signal ended
// it) after the last restart; 128 + the signal when stopped by SIGTERM/SIGINT; 127 (126) when the
// command cannot be found (run), with one line on `err` and no restarts.  Throws hibari::Error for
// bad options or a log file that cannot be opened.  It blocks SIGCHLD, SIGTERM and SIGINT in the
// calling thread while it runs (restored on return): meant for a single-threaded process (the
// `hibari supervise` command), where a stop signal always reaches it.  When each attempt ends,
// what is left of its process group gets SIGTERM.
int supervise(const SuperviseOptions& options, FILE* err);

}  // namespace hibari
