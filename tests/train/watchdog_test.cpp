// The watchdog: a phase that overruns its limit ends the process with code 3 and one line naming
// the step and phase; short phases never fire; a disabled watchdog has no thread; marks are cheap.
// With a RankStatus: the heartbeat publishes the marked step and phase, the abort line carries the
// job report, and a status directory that does not answer cannot hold the abort back.
#include "train/watchdog.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include "parallel/rank_status.h"

namespace {

using hibari::RankRecord;
using hibari::RankStatus;
using hibari::Watchdog;
using Clock = std::chrono::steady_clock;

struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/hibari-watchdog-XXXXXX";
    path = ::mkdtemp(name);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

double unix_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

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

TEST(Watchdog, HeartbeatPeriodAndStalenessFollowTheLimit) {
  const struct {
    double limit, heartbeat, stale;
  } cases[] = {{600, 1.0, 3.0}, {30, 1.0, 3.0}, {5, 0.5, 2.5}, {2, 0.2, 1.0}, {0.5, 0.1, 0.3}};
  for (const auto& c : cases) {
    Watchdog w(c.limit, stderr);
    EXPECT_DOUBLE_EQ(w.heartbeat_seconds, c.heartbeat) << "limit " << c.limit;
    EXPECT_DOUBLE_EQ(w.stale_seconds, c.stale) << "limit " << c.limit;
    EXPECT_LT(w.stale_seconds, c.limit);
  }
}

TEST(Watchdog, HeartbeatPublishesTheMarkedStepAndPhase) {
  TempDir tmp;
  RankStatus status;
  hibari::rank_status_open(status, tmp.path, 0, 1);
  {
    Watchdog w(1.0, stderr, &status);  // beats every 0.1 s
    EXPECT_TRUE(w.heartbeat.joinable());
    watchdog_enter(w, "forward", 9);
    std::this_thread::sleep_for(std::chrono::milliseconds(350));
    RankRecord r;
    ASSERT_TRUE(hibari::rank_status_read(tmp.path, 0, r));
    EXPECT_EQ(r.step, 9);
    EXPECT_STREQ(r.phase, "forward");
    EXPECT_GE(r.sequence, 4u);  // the start record, then a beat every 0.1 s
    EXPECT_LT(unix_seconds() - double(r.heartbeat_unix_ns) * 1e-9, 0.25);

    watchdog_idle(w);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    ASSERT_TRUE(hibari::rank_status_read(tmp.path, 0, r));
    EXPECT_EQ(r.step, 9);  // the last step stays while idle
    EXPECT_STREQ(r.phase, "");
  }
  // Stopped with the watchdog: no beat after it is gone.
  RankRecord last, later;
  ASSERT_TRUE(hibari::rank_status_read(tmp.path, 0, last));
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  ASSERT_TRUE(hibari::rank_status_read(tmp.path, 0, later));
  EXPECT_EQ(later.sequence, last.sequence);
  hibari::rank_status_close(status);
}

// Issue 13: the record says where the rank is at the instant it marks, not as of its last beat
// (a rank frozen right after a mark must be reported in that phase).
TEST(Watchdog, MarksPublishAtOnce) {
  TempDir tmp;
  RankStatus status;
  hibari::rank_status_open(status, tmp.path, 0, 1);
  {
    Watchdog w(600, stderr, &status);                            // beats every second
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // past the first beat
    watchdog_enter(w, "backward", 7);
    RankRecord r;
    ASSERT_TRUE(hibari::rank_status_read(tmp.path, 0, r));
    EXPECT_EQ(r.step, 7);
    EXPECT_STREQ(r.phase, "backward");
    watchdog_idle(w);
    ASSERT_TRUE(hibari::rank_status_read(tmp.path, 0, r));
    EXPECT_EQ(r.step, 7);
    EXPECT_STREQ(r.phase, "");
    // A heartbeat repeats the last mark.
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    RankRecord later;
    ASSERT_TRUE(hibari::rank_status_read(tmp.path, 0, later));
    EXPECT_GT(later.sequence, r.sequence);
    EXPECT_EQ(later.step, 7);
    EXPECT_STREQ(later.phase, "");
  }
  hibari::rank_status_close(status);
}

// Issue 13: rank 1 stops inside the same step as rank 0 (equal collective counts) moments before
// rank 0's watchdog fires, so a first reading finds its heartbeat fresh and nobody behind.  The
// report must read again once a stopped heartbeat is stale, and name rank 1.
TEST(Watchdog, ARankStoppedJustBeforeTheAbortIsNamedNotNobody) {
  TempDir tmp;
  auto [status, text] = run_in_child([&](FILE* out) {
    RankStatus mine, other;
    hibari::rank_status_open(mine, tmp.path, 0, 2);
    hibari::rank_status_open(other, tmp.path, 1, 2);
    Watchdog w(1.0, out, &mine);  // stale after 0.5 s
    watchdog_enter(w, "backward", 123);
    std::this_thread::sleep_for(std::chrono::milliseconds(900));
    hibari::rank_status_publish(other, 123, "backward");  // its last word
    std::this_thread::sleep_for(std::chrono::seconds(10));
  });
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 3);
  EXPECT_EQ(text.find("no rank is behind"), std::string::npos) << text;
  EXPECT_NE(text.find("rank 1 (pid "), std::string::npos) << text;
  EXPECT_NE(text.find("(stopped or dead), in step 123 \"backward\""), std::string::npos) << text;
}

// Issue 13: of the ranks that fire together, one prints; the others wait until it has, then exit
// with the same code and no line.
TEST(Watchdog, OnlyTheFirstRankToFirePrints) {
  TempDir tmp;
  {
    RankStatus first;
    hibari::rank_status_open(first, tmp.path, 0, 2);
    hibari::rank_status_close(first);
  }
  ASSERT_TRUE(hibari::rank_status_claim_report(tmp.path, 1.0));
  hibari::rank_status_report_printed(tmp.path);
  auto [status, text] = run_in_child([&](FILE* out) {
    RankStatus mine;
    hibari::rank_status_open(mine, tmp.path, 1, 2);
    Watchdog w(1.0, out, &mine);
    watchdog_enter(w, "forward", 5);
    std::this_thread::sleep_for(std::chrono::seconds(10));
  });
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 3);
  EXPECT_EQ(text, "");
}

TEST(Watchdog, AbortLineCarriesTheJobReport) {
  TempDir tmp;
  auto [status, text] = run_in_child([&](FILE* out) {
    RankStatus rank_status;
    hibari::rank_status_open(rank_status, tmp.path, 0, 1);
    Watchdog w(1.0, out, &rank_status);
    watchdog_enter(w, "backward", 123);
    std::this_thread::sleep_for(std::chrono::seconds(10));  // stuck
  });
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 3);
  // One rank, in no collective (this process never communicates): nobody is behind it.
  EXPECT_EQ(text,
            "hibari: error: watchdog: step 123 stuck in phase \"backward\" for 1 s (limit 1 s); "
            "no rank is behind: rank 0 is in step 123 \"backward\" after 0 collectives; "
            "aborting\n");
}

TEST(Watchdog, StatusFilesThatDoNotAnswerCannotHoldTheAbortBack) {
  // Rank 1's "file" is a FIFO nobody writes: opening it blocks forever, like a read from a dead
  // network filesystem.  The abort must still come, with the line saying why it has no report.
  TempDir tmp;
  ASSERT_EQ(::mkfifo(hibari::rank_status_path(tmp.path, 1).c_str(), 0644), 0);
  const auto start = Clock::now();
  auto [status, text] = run_in_child([&](FILE* out) {
    RankStatus rank_status;
    hibari::rank_status_open(rank_status, tmp.path, 0, 2);
    Watchdog w(1.0, out, &rank_status);
    w.report_timeout_seconds = 0.5;
    watchdog_enter(w, "optimizer", 4);
    std::this_thread::sleep_for(std::chrono::seconds(10));
  });
  const double took = seconds_since(start);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 3);
  EXPECT_EQ(text,
            "hibari: error: watchdog: step 4 stuck in phase \"optimizer\" for 1 s (limit 1 s); "
            "the rank status files did not answer within 0.5 s; aborting\n");
  EXPECT_LT(took, 3.0);
}

}  // namespace
