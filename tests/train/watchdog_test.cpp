// The watchdog: a phase that overruns its limit ends the process with code 3 and one line naming
// the step and phase; short phases never fire; a disabled watchdog has no thread; marks are cheap.
#include "train/watchdog.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

namespace {

using hibari::Watchdog;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs `body` in a forked child whose watchdog writes to a pipe; returns the child's wait status
// and what it wrote.  The watchdog is made after fork(), so its thread lives in the child only.
template <typename Body>
std::pair<int, std::string> run_in_child(Body body) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    FILE* out = ::fdopen(fds[1], "w");
    body(out);
    std::_Exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buffer[256];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) text.append(buffer, size_t(n));
  ::close(fds[0]);
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  return {status, text};
}

TEST(Watchdog, PhaseOverrunningTheLimitEndsTheProcessWithCode3) {
  const auto start = Clock::now();
  auto [status, text] = run_in_child([](FILE* out) {
    Watchdog w(1.0, out);
    watchdog_enter(w, "forward", 122);
    watchdog_idle(w);
    watchdog_enter(w, "backward", 123);
    std::this_thread::sleep_for(std::chrono::seconds(10));  // stuck
  });
  const double took = seconds_since(start);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 3);
  EXPECT_EQ(text,
            "hibari: error: watchdog: step 123 stuck in phase \"backward\" for 1 s (limit 1 s); "
            "aborting\n");
  EXPECT_GE(took, 1.0);
  EXPECT_LT(took, 3.0);  // fires at the deadline, not after a polling period
}

TEST(Watchdog, StuckAfterAnIdleStretchIsStillCaught) {
  // The monitor last looked while idle; a phase entered later must fire within about one limit.
  auto [status, text] = run_in_child([](FILE* out) {
    Watchdog w(1.0, out);
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    watchdog_enter(w, "checkpoint", 7);
    std::this_thread::sleep_for(std::chrono::seconds(10));
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
  EXPECT_NE(text.find("step 7 stuck in phase \"checkpoint\""), std::string::npos) << text;
}

TEST(Watchdog, ManyShortPhasesUnderTheLimitNeverFire) {
  auto [status, text] = run_in_child([](FILE* out) {
    Watchdog w(1.0, out);
    const char* phases[] = {"data", "forward", "backward", "optimizer"};
    // 2.5 s in all, far more than the limit, but no phase lasts longer than ~10 ms.
    const auto start = Clock::now();
    for (int64_t step = 0; seconds_since(start) < 2.5; ++step) {
      for (const char* p : phases) {
        watchdog_enter(w, p, step);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      watchdog_idle(w);
    }
    // Idle for longer than the limit: idle is not timed.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(text, "");
}

TEST(Watchdog, DisabledWatchdogStartsNoThread) {
  Watchdog w(0, stderr);
  EXPECT_FALSE(w.monitor.joinable());
  watchdog_enter(w, "forward", 1);
  watchdog_idle(w);
}

TEST(Watchdog, DestructionStopsTheMonitorPromptly) {
  const auto start = Clock::now();
  {
    Watchdog w(600, stderr);
    EXPECT_TRUE(w.monitor.joinable());
    watchdog_enter(w, "forward", 1);
  }
  EXPECT_LT(seconds_since(start), 0.5);
}

TEST(Watchdog, MarksAreCheap) {
  Watchdog w(600, stderr);
  const auto start = Clock::now();
  for (int64_t i = 0; i < 1000000; ++i) {
    watchdog_enter(w, "forward", i);
    watchdog_idle(w);
  }
  EXPECT_LT(seconds_since(start), 1.0);
}

}  // namespace
