// tests/parallel/hang_probe.cpp — a rank that stops communicating must end the whole job within
// the watchdog time, with a line naming that rank and the collective the others wait in
// (issue 6, item 9).  One program in two roles:
//
//   hang_probe expect <mode> <dir> <mpirun and its flags...>
//       what ctest runs: starts `<mpirun...> -np 3 hang_probe rank <mode> <dir>` (the -np comes
//       with the flags), captures its output, and checks that the job exited non-zero within
//       10 s and printed the expected line.  Exit 0 when all checks pass.
//   hang_probe rank <mode> <dir>
//       one rank under mpirun: a 2 s watchdog with a rank status in <dir>, three all-reduces, then
//       at step 3 rank 2 misbehaves while ranks 0 and 1 enter all-reduce #4:
//         sleep     rank 2 sleeps (alive, heartbeat fresh, one collective behind);
//         stop      rank 2 stops itself with SIGSTOP right after marking step 3 (heartbeat goes
//                   stale: "stopped or dead"; its record must still say step 3, from the mark);
//         mismatch  rank 2 calls all_gather where the others call all_reduce.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "parallel/comm.h"
#include "parallel/rank_status.h"
#include "train/watchdog.h"

namespace {

using namespace hibari;

constexpr double kWatchdogSeconds = 2;
constexpr double kJobDeadlineSeconds = 10;
constexpr size_t kFloats = 1024;

int run_rank(const std::string& mode, const std::string& dir) {
  Comm world = comm_init(nullptr, nullptr);
  RankStatus status;
  rank_status_open(status, dir, world.rank, world.size);
  Watchdog watchdog(kWatchdogSeconds, stderr, &status);
  std::vector<float> buf(kFloats, 1.0f), gathered(kFloats * size_t(world.size));
  for (int64_t step = 0; step < 6; ++step) {
    watchdog_enter(watchdog, "forward", step);
    if (step == 3 && world.rank == 2) {
      if (mode == "sleep") {
        std::this_thread::sleep_for(std::chrono::seconds(60));
      } else if (mode == "stop") {
        // No publish of its own: the mark above has said where it is (issue 13).
        ::raise(SIGSTOP);
      } else {
        all_gather(world, gathered, buf);
      }
    } else {
      all_reduce_sum(world, buf);
    }
    watchdog_idle(watchdog);
  }
  // Reached only if the watchdog failed to end the job.
  std::fprintf(stderr, "hang_probe: rank %d finished all steps\n", world.rank);
  rank_status_close(status);
  comm_finalize();
  return 0;
}

// The line a correct hibari prints for each mode (one of the ranks prints it; mpirun ends the
// others).  Rank 2's record: step 3 "forward" after 3 collectives; ranks 0 and 1: in #4.
std::string expected_pattern(const std::string& mode) {
  const std::string head =
      R"(hibari: error: watchdog: step 3 stuck in phase "forward" for 2 s \(limit 2 s\); )";
  const std::string rank2 = R"(rank 2 \(pid [0-9]+ on [^)]+\))";
  const std::string others = R"(ranks 0, 1 wait in all_reduce #4 on world \(1024 floats\))";
  if (mode == "sleep") {
    return head + rank2 +
           R"( is late: alive \(heartbeat [0-9.]+ s ago\), in step 3 "forward" after 3 )"
           R"(collectives; )" +
           others + "; aborting";
  }
  if (mode == "stop") {
    return head + rank2 +
           R"( is late: its last heartbeat was [0-9.]+ s ago \(stopped or dead\), in step 3 )"
           R"("forward" after 3 collectives; )" +
           others + "; aborting";
  }
  return head + "mismatched collectives at #4: " + rank2 +
         R"( in all_gather on world \(3072 floats\) vs ranks 0, 1 in all_reduce on world )"
         R"(\(1024 floats\); aborting)";
}

int run_expect(const std::string& mode, const std::string& dir, char** mpirun) {
  std::filesystem::remove_all(dir);
  std::vector<char*> args;
  for (char** a = mpirun; *a != nullptr; ++a) args.push_back(*a);
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::string role = "rank", mode_arg = mode, dir_arg = dir;
  for (std::string* s : {&self, &role, &mode_arg, &dir_arg}) args.push_back(s->data());
  args.push_back(nullptr);

  std::string command;
  for (size_t i = 0; i + 1 < args.size(); ++i) command += std::string(i ? " " : "") + args[i];
  std::printf("hang_probe: %s\n", command.c_str());
  std::fflush(stdout);

  int fds[2];
  if (::pipe(fds) != 0) return 2;
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execvp(args[0], args.data());
    std::perror("hang_probe: exec");
    std::_Exit(127);
  }
  ::close(fds[1]);
  std::string output;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;)
    output.append(buffer, size_t(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::printf("---- job output ----\n%s---- end of job output ----\n", output.c_str());
  int failures = 0;
  auto expect = [&failures](bool ok, const std::string& what) {
    std::printf("%s: %s\n", ok ? "ok" : "FAILED", what.c_str());
    failures += ok ? 0 : 1;
  };
  const bool nonzero = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  expect(nonzero, "the job exits non-zero (status " + std::to_string(status) + ")");
  char timing[96];
  std::snprintf(timing, sizeof timing, "the job ends within %.0f s (took %.1f s)",
                kJobDeadlineSeconds, took);
  expect(took < kJobDeadlineSeconds, timing);
  const std::string pattern = expected_pattern(mode);
  expect(std::regex_search(output, std::regex(pattern)),
         "the output has a line matching " + pattern);
  expect(output.find("finished all steps") == std::string::npos, "no rank got past step 3");
  // Ranks 0 and 1 both fire; one prints the report, the other exits quietly (issue 13).
  size_t lines = 0;
  for (size_t at = 0; (at = output.find("hibari: error: watchdog:", at)) != std::string::npos; ++at)
    ++lines;
  expect(lines == 1, "one watchdog line, not one per rank (" + std::to_string(lines) + ")");
  expect(output.find("no rank is behind") == std::string::npos, "no \"no rank is behind\"");
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string usage =
      "usage: hang_probe expect sleep|stop|mismatch DIR MPIRUN...\n"
      "       hang_probe rank sleep|stop|mismatch DIR\n";
  if (argc < 4) {
    std::fputs(usage.c_str(), stderr);
    return 2;
  }
  const std::string role = argv[1], mode = argv[2], dir = argv[3];
  if (mode != "sleep" && mode != "stop" && mode != "mismatch") {
    std::fputs(usage.c_str(), stderr);
    return 2;
  }
  if (role == "rank") return run_rank(mode, dir);
  if (role == "expect" && argc > 4) return run_expect(mode, dir, argv + 4);
  std::fputs(usage.c_str(), stderr);
  return 2;
}
