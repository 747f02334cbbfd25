// train/watchdog.cpp — the monitor thread and the phase marks (see watchdog.h).
#include "train/watchdog.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <future>
#include <memory>
#include <string>

namespace hibari {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct PhaseEntry {
  uint64_t sequence;
  const char* phase;
  int64_t step;
  int64_t entered_ns;
};

// A consistent copy of the current entry (seqlock read: retry while a mark is half written).
PhaseEntry read_entry(const Watchdog& w) {
  for (;;) {
    const uint64_t before = w.sequence.load(std::memory_order_acquire);
    if (before & 1) {
      std::this_thread::yield();
      continue;
    }
    PhaseEntry e{before, w.phase.load(std::memory_order_relaxed),
                 w.step.load(std::memory_order_relaxed),
                 w.entered_ns.load(std::memory_order_relaxed)};
    std::atomic_thread_fence(std::memory_order_acquire);
    if (w.sequence.load(std::memory_order_relaxed) == before) return e;
  }
}

void write_entry(Watchdog& w, const char* phase, int64_t step, int64_t entered_ns) {
  const uint64_t s = w.sequence.load(std::memory_order_relaxed);
  w.sequence.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  w.phase.store(phase, std::memory_order_relaxed);
  w.step.store(step, std::memory_order_relaxed);
  w.entered_ns.store(entered_ns, std::memory_order_relaxed);
  w.sequence.store(s + 2, std::memory_order_release);
}

// The job report and whether this rank prints it (see rank_status_claim_report).
struct JobReport {
  std::string line;
  bool print = true;
};

// What every rank is in, from the status files, or why not.  Read on a helper thread that is left
// behind if the filesystem does not answer in time (the process ends right after anyway).  This
// rank's own record is published first, so it says where this rank is now.
//
// A first reading that finds nobody behind is not trusted at once: a rank stopped inside the
// collective the others wait in has their count, and its heartbeat is not yet stale when the
// first watchdog fires.  Its heartbeat goes stale within stale_seconds; so after one more
// stale period (plus a beat) the records are read again, and that reading is the report.  A live
// rank has beaten meanwhile and still reads as fresh: "no rank is behind" then means it.
JobReport job_report(const Watchdog& w) {
  RankStatus& status = *w.status;
  const double stale_seconds = w.stale_seconds,
               recheck_seconds = w.stale_seconds + w.heartbeat_seconds;
  const double claim_seconds = w.report_timeout_seconds;
  struct Shared {
    std::promise<std::string> first, second;
    std::promise<bool> print;
  };
  auto shared = std::make_shared<Shared>();
  std::future<std::string> first = shared->first.get_future(), second = shared->second.get_future();
  std::future<bool> print = shared->print.get_future();
  std::thread([shared, &status, stale_seconds, recheck_seconds, claim_seconds] {
    try {
      rank_status_refresh(status);
      std::string line = rank_status_report(status.dir, status.size, stale_seconds);
      const bool settled = line.rfind("no rank is behind", 0) != 0;
      shared->first.set_value(line);
      if (!settled) {
        std::this_thread::sleep_for(std::chrono::duration<double>(recheck_seconds));
        rank_status_refresh(status);
        line = rank_status_report(status.dir, status.size, stale_seconds);
      }
      shared->second.set_value(line);
      shared->print.set_value(rank_status_claim_report(status.dir, claim_seconds));
    } catch (...) {
      // Whichever promise is still open carries the error.
      try {
        shared->first.set_exception(std::current_exception());
      } catch (const std::future_error&) {
        try {
          shared->second.set_exception(std::current_exception());
        } catch (const std::future_error&) {
        }
      }
    }
  }).detach();
  auto within = [](auto& future, double seconds) {
    return future.wait_for(std::chrono::duration<double>(seconds)) == std::future_status::ready;
  };
  JobReport out;
  try {
    if (!within(first, w.report_timeout_seconds)) {
      char text[160];
      std::snprintf(text, sizeof text, "the rank status files did not answer within %g s",
                    w.report_timeout_seconds);
      out.line = text;
      return out;
    }
    out.line = first.get();
    if (!within(second, recheck_seconds + w.report_timeout_seconds)) return out;
    out.line = second.get();
    // Waiting for the rank that claimed the report to print; past that, print here too.
    if (within(print, claim_seconds + w.report_timeout_seconds)) out.print = print.get();
  } catch (const std::exception& error) {
    out.line = std::string("no rank status: ") + error.what();
  }
  return out;
}

// std::_Exit, not exit or abort: the stuck thread sits in a kernel, a collective or a blocked
// write and cannot be unwound or joined; exit() would run static destructors under its feet (and
// could hang on a lock it holds), abort() would dump a core of a healthy-looking process and end
// with SIGABRT rather than a code the supervisor reads as "stuck".
[[noreturn]] void abort_stuck(const Watchdog& w, const PhaseEntry& e, int64_t now) {
  const double stuck_s = double(now - e.entered_ns) * 1e-9;
  JobReport report;
  if (w.status != nullptr) report = job_report(w);
  if (report.print) {
    std::fprintf(w.out,
                 "hibari: error: watchdog: step %lld stuck in phase \"%s\" for %.0f s (limit %g "
                 "s); %s%saborting\n",
                 static_cast<long long>(e.step), e.phase, std::floor(stuck_s), w.limit_seconds,
                 report.line.c_str(), report.line.empty() ? "" : "; ");
    std::fflush(w.out);
    if (w.status != nullptr) {
      // Lets the ranks waiting on the claim go; on a helper thread: the disk may not answer.
      const std::string dir = w.status->dir;
      std::packaged_task<void()> mark([dir] { rank_status_report_printed(dir); });
      std::future<void> marked = mark.get_future();
      std::thread(std::move(mark)).detach();
      marked.wait_for(std::chrono::duration<double>(w.report_timeout_seconds));
    }
  }
  std::_Exit(3);
}

// Publishes this rank's record every heartbeat period until stopped.  The lock is not held while
// writing: the monitor needs it to wake up, and a write stuck on a dead filesystem must not keep
// the monitor from firing.
void heartbeat_loop(Watchdog& w) {
  const auto period = std::chrono::duration<double>(w.heartbeat_seconds);
  std::unique_lock<std::mutex> lock(w.mutex);
  while (!w.stopping) {
    lock.unlock();
    rank_status_refresh(*w.status);
    lock.lock();
    w.wake.wait_for(lock, period, [&] { return w.stopping; });
  }
}

// Sleeps until the current entry's deadline (or one limit while idle: an entry made meanwhile is
// then at most one limit old), never polls.  A mark does not wake the monitor; the monitor reads
// the entry again when it wakes and moves its deadline if the loop has moved on.
void monitor_loop(Watchdog& w) {
  const auto limit_ns = static_cast<int64_t>(std::llround(w.limit_seconds * 1e9));
  std::unique_lock<std::mutex> lock(w.mutex);
  while (!w.stopping) {
    const PhaseEntry e = read_entry(w);
    const int64_t now = now_ns();
    int64_t deadline = now + limit_ns;
    if (e.phase != nullptr) {
      deadline = e.entered_ns + limit_ns;
      // Still the same entry after `now` was read: it has been current for the whole limit.
      if (now >= deadline && w.sequence.load(std::memory_order_acquire) == e.sequence) {
        abort_stuck(w, e, now);
      }
      if (now >= deadline) continue;
    }
    const std::chrono::steady_clock::time_point wake_at{std::chrono::nanoseconds(deadline)};
    w.wake.wait_until(lock, wake_at, [&] { return w.stopping; });
  }
}

}  // namespace

Watchdog::Watchdog(double limit_seconds_, FILE* out_, RankStatus* status_)
    : limit_seconds(limit_seconds_), out(out_), status(status_) {
  heartbeat_seconds = std::clamp(limit_seconds / 10, 0.1, 1.0);
  stale_seconds = std::max(3 * heartbeat_seconds, std::min(3.0, limit_seconds / 2));
  if (limit_seconds <= 0) return;
  if (status != nullptr) {
    rank_status_follow_collectives(status);
    heartbeat = std::thread(heartbeat_loop, std::ref(*this));
  }
  monitor = std::thread(monitor_loop, std::ref(*this));
}

Watchdog::~Watchdog() {
  if (!monitor.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  monitor.join();
  if (heartbeat.joinable()) heartbeat.join();
  if (status != nullptr) rank_status_follow_collectives(nullptr);
}

void watchdog_enter(Watchdog& w, const char* phase, int64_t step) {
  if (w.limit_seconds <= 0) return;
  write_entry(w, phase, step, now_ns());
  if (w.status != nullptr) rank_status_publish(*w.status, step, phase);
}

void watchdog_idle(Watchdog& w) {
  if (w.limit_seconds <= 0) return;
  const int64_t step = w.step.load(std::memory_order_relaxed);
  write_entry(w, nullptr, step, 0);
  if (w.status != nullptr) rank_status_publish(*w.status, step, nullptr);
}

}  // namespace hibari
