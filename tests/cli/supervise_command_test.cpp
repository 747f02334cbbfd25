// `hibari supervise` end to end: flags and exit codes, and stop signals: SIGTERM/SIGINT sent to the
// supervisor reach the whole process group of the command, and nothing is restarted.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../scratch_dir.h"
#include "train/supervisor.h"

namespace {

using hibari::test::read_file;
using hibari::test::ScratchDir;
using Clock = std::chrono::steady_clock;

// Starts `hibari <args>` with stderr into `err_path`; returns its pid.
pid_t start_hibari(const std::vector<std::string>& args, const std::string& err_path) {
  std::vector<std::string> all = {HIBARI_EXE};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    ::execv(argv[0], argv.data());
    ::_exit(126);
  }
  return pid;
}

// Waits up to `seconds` for the process; its wait status, or -1 if still running (then killed).
int wait_for(pid_t pid, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    if (Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool wait_until(double seconds, auto condition) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// A process is gone when /proc has no entry for it, or only a zombie's.
bool gone(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return true;
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(SuperviseCommand, RestartsThenExitsWithTheCommandsCode) {
  ScratchDir dir("supervise_command");
  const pid_t pid = start_hibari({"supervise", "--max-restarts", "1", "--backoff-seconds", "0",
                                  "--log", dir.file("log.jsonl"), "--", "sh", "-c", "exit 3"},
                                 dir.file("err"));
  const int status = wait_for(pid, 20);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 3);
  EXPECT_EQ(lines_of(read_file(dir.file("err"))).size(), 2u) << read_file(dir.file("err"));
  const auto log = lines_of(read_file(dir.file("log.jsonl")));
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(log[1])["attempt"], 2);
  EXPECT_EQ(nlohmann::json::parse(log[1])["exit_code"], 3);
}

TEST(SuperviseCommand, SuccessExitsZero) {
  ScratchDir dir("supervise_command");
  const pid_t pid = start_hibari({"supervise", "--", "sh", "-c", "exit 0"}, dir.file("err"));
  const int status = wait_for(pid, 20);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(read_file(dir.file("err")), "");
}

TEST(SuperviseCommand, MissingExecutableIsOneLineAndExit127) {
  ScratchDir dir("supervise_command");
  const pid_t pid = start_hibari({"supervise", "--", "hibari-no-such-program"}, dir.file("err"));
  const int status = wait_for(pid, 20);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 127);
  const auto err = lines_of(read_file(dir.file("err")));
  ASSERT_EQ(err.size(), 1u);
  EXPECT_NE(err[0].find("hibari-no-such-program"), std::string::npos) << err[0];
}

// The command writes its shell's pid and a background sleep's pid (same process group), then
// waits; the stop signal goes to supervise only.
void check_stop_signal_reaches_the_group(int signal) {
  ScratchDir dir("supervise_command");
  const std::string pids = dir.file("pids");
  const std::string script = "sleep 30 & echo $$ $! >> '" + pids + "'; wait";
  const pid_t pid = start_hibari({"supervise", "--backoff-seconds", "0", "--log",
                                  dir.file("log.jsonl"), "--", "sh", "-c", script},
                                 dir.file("err"));
  ASSERT_TRUE(wait_until(10, [&] { return !read_file(pids).empty(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ::kill(pid, signal);
  const int status = wait_for(pid, 10);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 128 + signal);

  const auto started = lines_of(read_file(pids));
  ASSERT_EQ(started.size(), 1u);  // not restarted
  std::istringstream in(started[0]);
  pid_t shell = 0, sleeper = 0;
  in >> shell >> sleeper;
  EXPECT_TRUE(wait_until(5, [&] { return gone(shell) && gone(sleeper); }))
      << "the command's process group outlived supervise";

  EXPECT_NE(read_file(dir.file("err")).find("stopped by " + hibari::signal_name(signal)),
            std::string::npos)
      << read_file(dir.file("err"));
  const auto log = lines_of(read_file(dir.file("log.jsonl")));
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(log[0])["stopped_by"], hibari::signal_name(signal));
}

TEST(SuperviseCommand, SigtermStopsTheCommandsGroupWithoutRestart) {
  check_stop_signal_reaches_the_group(SIGTERM);
}

TEST(SuperviseCommand, SigintStopsTheCommandsGroupWithoutRestart) {
  check_stop_signal_reaches_the_group(SIGINT);
}

TEST(SuperviseCommand, SigtermDuringTheBackoffStopsAtOnce) {
  ScratchDir dir("supervise_command");
  const pid_t pid = start_hibari({"supervise", "--backoff-seconds", "60", "--log",
                                  dir.file("log.jsonl"), "--", "sh", "-c", "exit 1"},
                                 dir.file("err"));
  ASSERT_TRUE(wait_until(10, [&] { return !read_file(dir.file("log.jsonl")).empty(); }));
  const auto start = Clock::now();
  ::kill(pid, SIGTERM);
  const int status = wait_for(pid, 10);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 2.0);
  EXPECT_EQ(lines_of(read_file(dir.file("log.jsonl"))).size(), 1u);
}

}  // namespace
