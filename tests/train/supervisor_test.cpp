// The supervisor, run in-process on small shell commands: restart counts, the JSON log, the
// backoff arithmetic and (loosely) its timing, the exit code after the last restart, and a missing
// executable.  Stop signals are tested through the binary (tests/cli/supervise_command_test.cpp):
// a signal sent to a test process with other threads could land on a thread that does not block it.
#include "train/supervisor.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../scratch_dir.h"
#include "core/error.h"

namespace {

using hibari::SuperviseOptions;
using hibari::test::ScratchDir;
using Clock = std::chrono::steady_clock;

std::vector<nlohmann::json> read_log(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(hibari::test::read_file(path));
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// supervise() with its stderr captured.
struct Outcome {
  int code;
  std::string err;
};
Outcome run(const SuperviseOptions& options) {
  FILE* err = std::tmpfile();
  const int code = hibari::supervise(options, err);
  std::rewind(err);
  std::string text;
  char buffer[512];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, err)) > 0;) text.append(buffer, n);
  std::fclose(err);
  return {code, text};
}

size_t count_lines(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

TEST(Supervisor, SuccessRunsOnceAndLogsNothing) {
  ScratchDir dir("supervisor");
  const Outcome r = run({.argv = {"sh", "-c", "exit 0"}, .log_path = dir.file("log.jsonl")});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err, "");
  EXPECT_TRUE(read_log(dir.file("log.jsonl")).empty());
}

TEST(Supervisor, FailingCommandIsRestartedUpToTheLimitThenItsCodeIsReturned) {
  ScratchDir dir("supervisor");
  const std::string count = dir.file("count");
  const Outcome r = run({.argv = {"sh", "-c", "echo x >> '" + count + "'; exit 3"},
                         .max_restarts = 2,
                         .backoff_seconds = 0,
                         .log_path = dir.file("log.jsonl")});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(hibari::test::read_file(count), "x\nx\nx\n");  // first attempt + 2 restarts
  EXPECT_EQ(count_lines(r.err), 3u) << r.err;
  EXPECT_NE(r.err.find("attempt 3 exited with code 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("giving up after 2 restarts"), std::string::npos) << r.err;

  const auto log = read_log(dir.file("log.jsonl"));
  ASSERT_EQ(log.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(log[i]["attempt"], i + 1);
    EXPECT_EQ(log[i]["exit_code"], 3);
    EXPECT_FALSE(log[i].contains("signal"));
    EXPECT_TRUE(log[i]["seconds"].is_number());
    EXPECT_GE(log[i]["seconds"].get<double>(), 0.0);
    const std::string time = log[i]["time"];
    EXPECT_EQ(time.size(), 20u) << time;  // 2025-01-02T03:04:05Z
    EXPECT_EQ(time.back(), 'Z');
  }
  EXPECT_EQ(log[0]["restart_in"], 0);
  EXPECT_FALSE(log[2].contains("restart_in"));  // gave up
}

TEST(Supervisor, CommandThatFailsTwiceThenSucceedsEndsWithZero) {
  ScratchDir dir("supervisor");
  const std::string count = dir.file("count");
  const std::string script = "echo x >> '" + count + "'; test $(wc -l < '" + count + "') -ge 3";
  const Outcome r = run({.argv = {"sh", "-c", script},
                         .max_restarts = 5,
                         .backoff_seconds = 0,
                         .log_path = dir.file("log.jsonl")});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(hibari::test::read_file(count), "x\nx\nx\n");
  const auto log = read_log(dir.file("log.jsonl"));
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0]["attempt"], 1);
  EXPECT_EQ(log[1]["attempt"], 2);
  EXPECT_EQ(log[1]["exit_code"], 1);
}

TEST(Supervisor, DeathBySignalIsLoggedByNameAndEndsWith128PlusTheSignal) {
  ScratchDir dir("supervisor");
  const Outcome r = run({.argv = {"sh", "-c", "kill -9 $$"},
                         .max_restarts = 1,
                         .backoff_seconds = 0,
                         .log_path = dir.file("log.jsonl")});
  EXPECT_EQ(r.code, 128 + 9);
  EXPECT_NE(r.err.find("killed by SIGKILL"), std::string::npos) << r.err;
  const auto log = read_log(dir.file("log.jsonl"));
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[1]["signal"], "SIGKILL");
  EXPECT_FALSE(log[1].contains("exit_code"));
}

TEST(Supervisor, MissingExecutableIsOneLineAndExit127WithoutRestarts) {
  ScratchDir dir("supervisor");
  const Outcome r = run({.argv = {"hibari-no-such-program-here", "x"},
                         .max_restarts = 5,
                         .backoff_seconds = 0,
                         .log_path = dir.file("log.jsonl")});
  EXPECT_EQ(r.code, 127);
  EXPECT_EQ(r.err,
            "hibari: error: supervise: cannot run \"hibari-no-such-program-here\": No such file or "
            "directory\n");
  EXPECT_TRUE(read_log(dir.file("log.jsonl")).empty());
}

TEST(Supervisor, CommandExiting127ItselfIsRestarted) {
  const Outcome r =
      run({.argv = {"sh", "-c", "exit 127"}, .max_restarts = 1, .backoff_seconds = 0});
  EXPECT_EQ(r.code, 127);
  EXPECT_EQ(count_lines(r.err), 2u) << r.err;
}

TEST(Supervisor, UnwritableLogIsAnErrorNamingTheFile) {
  ScratchDir dir("supervisor");
  const std::string log = dir.file("no/such/dir/log.jsonl");
  try {
    run({.argv = {"true"}, .log_path = log});
    FAIL() << "no error";
  } catch (const hibari::Error& e) {
    EXPECT_NE(std::string(e.what()).find(log), std::string::npos) << e.what();
  }
}

TEST(Supervisor, BackoffDoublesUpToTheCapAndResetsAfterAHealthyRun) {
  const SuperviseOptions o{
      .backoff_seconds = 5, .max_backoff_seconds = 300, .healthy_seconds = 600};
  EXPECT_EQ(hibari::supervise_backoff(o, 0, 1), 5);
  EXPECT_EQ(hibari::supervise_backoff(o, 5, 1), 10);
  EXPECT_EQ(hibari::supervise_backoff(o, 10, 1), 20);
  EXPECT_EQ(hibari::supervise_backoff(o, 160, 1), 300);
  EXPECT_EQ(hibari::supervise_backoff(o, 300, 1), 300);
  EXPECT_EQ(hibari::supervise_backoff(o, 300, 599), 300);
  EXPECT_EQ(hibari::supervise_backoff(o, 300, 600), 5);  // a long-healthy run restarts quickly
  EXPECT_EQ(hibari::supervise_backoff({.backoff_seconds = 0}, 0, 1), 0);
  EXPECT_EQ(hibari::supervise_backoff({.backoff_seconds = 9, .max_backoff_seconds = 4}, 0, 1), 4);
}

TEST(Supervisor, BackoffWaitsDoubleEachTime) {
  // Waits of 0.5 + 1 + 2 s between four failing attempts: about 3.5 s in all.
  ScratchDir dir("supervisor");
  const auto start = Clock::now();
  const Outcome r = run({.argv = {"false"},
                         .max_restarts = 3,
                         .backoff_seconds = 0.5,
                         .log_path = dir.file("log.jsonl")});
  const double took = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(r.code, 1);
  EXPECT_GE(took, 3.4);
  EXPECT_LT(took, 6.0);
  const auto log = read_log(dir.file("log.jsonl"));
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[0]["restart_in"], 0.5);
  EXPECT_EQ(log[1]["restart_in"], 1.0);
  EXPECT_EQ(log[2]["restart_in"], 2.0);
}

TEST(Supervisor, BadOptionsAreErrors) {
  EXPECT_THROW(run({}), hibari::Error);
  EXPECT_THROW(run({.argv = {"true"}, .max_restarts = -1}), hibari::Error);
  EXPECT_THROW(run({.argv = {"true"}, .backoff_seconds = -1}), hibari::Error);
}

TEST(Supervisor, SignalNames) {
  EXPECT_EQ(hibari::signal_name(9), "SIGKILL");
  EXPECT_EQ(hibari::signal_name(15), "SIGTERM");
  EXPECT_EQ(hibari::signal_name(11), "SIGSEGV");
}

}  // namespace
