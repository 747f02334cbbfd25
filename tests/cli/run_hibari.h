// tests/cli/run_hibari.h — runs the hibari binary as a user runs it and captures its exit code,
// stdout and stderr; and the check of a one-line `hibari: error: ` failure: shared by the CLI
// tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "tests/scratch_dir.h"

namespace hibari::test {

struct CommandResult {
  int exit_code;
  std::string out, err;
};

// Runs `hibari ARGS` through the shell, stdin from `stdin_file` when given; stdout and stderr go to
// dir/stdout.txt and dir/stderr.txt and are read back.  exit_code is -1 when it did not exit.
inline CommandResult run_hibari(const std::filesystem::path& dir, const std::string& args,
                                const std::filesystem::path& stdin_file = {}) {
  std::string command = std::string(HIBARI_EXE) + " " + args;
  if (!stdin_file.empty()) command += " <" + stdin_file.string();
  command += " >" + (dir / "stdout.txt").string() + " 2>" + (dir / "stderr.txt").string();
  const int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(dir / "stdout.txt"),
          read_file(dir / "stderr.txt")};
}

// Exit code 1 and exactly one line on stderr, `hibari: error: ...` holding `piece`.
inline void expect_one_line_error(const CommandResult& r, const std::string& piece) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not one line: " << r.err;
  EXPECT_EQ(r.err.rfind("hibari: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(piece), std::string::npos) << "expected \"" << piece << "\" in " << r.err;
}

}  // namespace hibari::test
