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
//
// Under mpirun, give it this rank's RankStatus (parallel/rank_status.h).  Each mark then also
// publishes the rank's record (one pwrite under the status's lock), and so does every collective
// as it begins and ends (rank_status_follow_collectives): the record says where the rank is at any
// instant, so a rank that is stopped or dies is reported where it stopped, not as of its last
// heartbeat.  A heartbeat thread republishes the record every `heartbeat_seconds` (its age tells
// a live rank from a stopped one), and the abort line gains one sentence about the whole job, read
// from every rank's record:
//   hibari: error: watchdog: step 5 stuck in phase "backward" for 31 s (limit 30 s); rank 2 (pid
//   4242 on node-a) is late: ...; ranks 0, 1, 3 wait in all_reduce #812 on dp (1048576 floats);
//   aborting
// All ranks stuck behind one late rank fire at about the same time; one of them prints the line
// (the first to claim it, rank_status_claim_report), the others exit without a word once it has.
// A reading that finds nobody behind is taken again one stale period later (a rank stopped inside
// the collective the others wait in looks like them until its heartbeat goes stale), so no rank
// says "no rank is behind" about a job with a stopped rank.
//
// Heartbeat period and staleness (both derived from the limit, both well under it):
//   heartbeat_seconds = clamp(limit / 10, 0.1 s, 1 s)
//   stale_seconds     = max(3 heartbeat periods, min(3 s, limit / 2))
// so a 600 s limit beats every second and calls a rank stopped or dead after 3 s of silence, and
// a 2 s test limit beats every 0.2 s and calls it after 1 s.  Three periods leave room for a
// loaded machine or a slow filesystem before a live rank looks dead.
//
// The heartbeat has its own thread, not the monitor's: a write that blocks on a dead network
// filesystem must not keep the monitor from firing.  For the same reason the abort reads the
// records on a helper thread and gives up after `report_timeout_seconds`, printing the line
// without the report rather than hanging.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <thread>

#include "parallel/rank_status.h"

namespace hibari {

struct Watchdog {
  double limit_seconds = 0;      // 0: disabled (no thread, marks do nothing)
  FILE* out = nullptr;           // where the abort message goes (stderr in `hibari train`)
  RankStatus* status = nullptr;  // optional: heartbeat and job report (not owned; outlives this)
  double heartbeat_seconds = 0;  // see the header comment
  double stale_seconds = 0;
  double report_timeout_seconds = 5;

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
  std::thread heartbeat;  // only with a status

  // Starts the monitor thread when limit_seconds > 0, and the heartbeat thread too when `status`
  // is given (an open RankStatus; the first beat goes out as the thread starts).
  Watchdog(double limit_seconds, FILE* out, RankStatus* status = nullptr);
  // Stops and joins the threads promptly (they are woken, not waited out).
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
};

// The loop enters `phase` (a string literal: "data", "forward", "backward", "optimizer",
// "checkpoint", "validation") of `step`; the clock for the limit starts now.
void watchdog_enter(Watchdog& w, const char* phase, int64_t step);

// The loop is between steps: nothing is timed until the next watchdog_enter (the step stays, for
// the heartbeat's "between steps (last step N)").
void watchdog_idle(Watchdog& w);

}  // namespace hibari
