// train/watchdog.cpp — the monitor thread and the phase marks (see watchdog.h).
#include "train/watchdog.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <future>
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

// What every rank is in, from the status files, or why not.  Read on a helper thread that is left
// behind if the filesystem does not answer in time (the process ends right after anyway).  This
// rank's own record is published first, so it says where this rank is now.
std::string job_report(const Watchdog& w, const PhaseEntry& e) {
  RankStatus& status = *w.status;
  const double stale_seconds = w.stale_seconds;
  std::packaged_task<std::string()> task([&status, e, stale_seconds] {
    rank_status_publish(status, e.step, e.phase);
    return rank_status_report(status.dir, status.size, stale_seconds);
  });
  std::future<std::string> report = task.get_future();
  std::thread(std::move(task)).detach();
  const auto timeout = std::chrono::duration<double>(w.report_timeout_seconds);
  if (report.wait_for(timeout) != std::future_status::ready) {
    char text[160];
    std::snprintf(text, sizeof text, "the rank status files did not answer within %g s",
                  w.report_timeout_seconds);
    return text;
  }
  try {
    return report.get();
  } catch (const std::exception& error) {
    return std::string("no rank status: ") + error.what();
  }
}

// std::_Exit, not exit or abort: the stuck thread sits in a kernel, a collective or a blocked
// write and cannot be unwound or joined; exit() would run static destructors under its feet (and
// could hang on a lock it holds), abort() would dump a core of a healthy-looking process and end
// with SIGABRT rather than a code the supervisor reads as "stuck".
[[noreturn]] void abort_stuck(const Watchdog& w, const PhaseEntry& e, int64_t now) {
  const double stuck_s = double(now - e.entered_ns) * 1e-9;
  const std::string report = w.status != nullptr ? job_report(w, e) + "; " : "";
  std::fprintf(w.out,
               "hibari: error: watchdog: step %lld stuck in phase \"%s\" for %.0f s (limit %g s); "
               "%saborting\n",
               static_cast<long long>(e.step), e.phase, std::floor(stuck_s), w.limit_seconds,
               report.c_str());
  std::fflush(w.out);
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
    const PhaseEntry e = read_entry(w);
    rank_status_publish(*w.status, e.step, e.phase);
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
  if (status != nullptr) heartbeat = std::thread(heartbeat_loop, std::ref(*this));
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
}

void watchdog_enter(Watchdog& w, const char* phase, int64_t step) {
  if (w.limit_seconds <= 0) return;
  write_entry(w, phase, step, now_ns());
}

void watchdog_idle(Watchdog& w) {
  if (w.limit_seconds <= 0) return;
  write_entry(w, nullptr, w.step.load(std::memory_order_relaxed), 0);
}

}  // namespace hibari
