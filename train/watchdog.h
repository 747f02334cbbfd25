// train/watchdog.h — aborts a training step that has been stuck in one phase longer than a limit.
//
// The training loop marks where it is: watchdog_enter(w, "backward", step) when a phase begins,
// watchdog_idle(w) between steps (not timed).  A monitor thread sleeps until the current phase's
// deadline; if the loop is still in that same phase entry then, it prints one line
//   hibari: error: watchdog: step 123 stuck in phase "backward" for 601 s (limit 600 s); aborting
// and ends the process with exit code 3, so `hibari supervise` can restart the run from its latest
// checkpoint instead of a hung collective or a dead disk holding the machines forever.
//
// Marks are cheap and never allocate or lock: a clock read and a few atomic stores (a seqlock),
// safe to call millions of times.  Only one thread (the training loop) marks phases.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <thread>

namespace hibari {

struct Watchdog {
  double limit_seconds = 0;  // 0: disabled (no thread, marks do nothing)
  FILE* out = nullptr;       // where the abort message goes (stderr in `hibari train`)

  // The phase entry the loop is in, written by the marking thread only.  `sequence` is odd while
  // the fields are being rewritten and grows by 2 per mark, so the monitor can tell that the entry
  // it timed is still the current one (a new entry of the same phase is a new sequence).
  std::atomic<uint64_t> sequence{0};
  std::atomic<const char*> phase{nullptr};  // nullptr: idle between steps
  std::atomic<int64_t> step{0};
  std::atomic<int64_t> entered_ns{0};  // steady_clock, nanoseconds

  std::mutex mutex;  // guards `stopping`; the fast path never takes it
  std::condition_variable wake;
  bool stopping = false;
  std::thread monitor;

  // Starts the monitor thread when limit_seconds > 0.
  Watchdog(double limit_seconds, FILE* out);
  // Stops and joins the monitor promptly (it is woken, not waited out).
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
};

// The loop enters `phase` (a string literal: "data", "forward", "backward", "optimizer",
// "checkpoint", "validation") of `step`; the clock for the limit starts now.
void watchdog_enter(Watchdog& w, const char* phase, int64_t step);

// The loop is between steps: nothing is timed until the next watchdog_enter.
void watchdog_idle(Watchdog& w);

}  // namespace hibari
