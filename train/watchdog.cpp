// train/watchdog.cpp — the monitor thread and the phase marks (see watchdog.h).
#include "train/watchdog.h"

#include <chrono>
#include <cmath>
#include <cstdlib>

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

// std::_Exit, not exit or abort: the stuck thread sits in a kernel, a collective or a blocked
// write and cannot be unwound or joined; exit() would run static destructors under its feet (and
// could hang on a lock it holds), abort() would dump a core of a healthy-looking process and end
// with SIGABRT rather than a code the supervisor reads as "stuck".
[[noreturn]] void abort_stuck(const Watchdog& w, const PhaseEntry& e, int64_t now) {
  const double stuck_s = double(now - e.entered_ns) * 1e-9;
  std::fprintf(w.out,
               "hibari: error: watchdog: step %lld stuck in phase \"%s\" for %.0f s (limit %g s); "
               "aborting\n",
               static_cast<long long>(e.step), e.phase, std::floor(stuck_s), w.limit_seconds);
  std::fflush(w.out);
  std::_Exit(3);
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

Watchdog::Watchdog(double limit_seconds_, FILE* out_) : limit_seconds(limit_seconds_), out(out_) {
  if (limit_seconds > 0) monitor = std::thread(monitor_loop, std::ref(*this));
}

Watchdog::~Watchdog() {
  if (!monitor.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  monitor.join();
}

void watchdog_enter(Watchdog& w, const char* phase, int64_t step) {
  if (w.limit_seconds <= 0) return;
  write_entry(w, phase, step, now_ns());
}

void watchdog_idle(Watchdog& w) {
  if (w.limit_seconds <= 0) return;
  write_entry(w, nullptr, 0, 0);
}

}  // namespace hibari
