// cli/supervise_command.cpp — `hibari supervise [options] -- <command ...>`: re-run a command that
// fails, after a doubling backoff (train/supervisor.h has the behaviour).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "train/supervisor.h"

namespace hibari::cli {

void add_supervise_command(CLI::App& app) {
  auto options = std::make_shared<SuperviseOptions>();
  CLI::App* sub = app.add_subcommand(
      "supervise",
      "run a command (e.g. hibari train) and restart it when it fails; it resumes from its latest "
      "checkpoint by itself");
  sub->add_option("--max-restarts", options->max_restarts,
                  "restarts after the first attempt before giving up")
      ->capture_default_str();
  sub->add_option("--backoff-seconds", options->backoff_seconds,
                  "wait before the first restart; doubles per failure, back to this after a run "
                  "of 10 minutes or more")
      ->capture_default_str();
  sub->add_option("--max-backoff", options->max_backoff_seconds, "the longest wait, seconds")
      ->capture_default_str();
  sub->add_option("--log", options->log_path, "append one JSON line per failure to this file");
  // After `--`, so that the command's own flags are not taken for ours.
  sub->add_option("command", options->argv, "the command and its arguments, after --")->required();
  sub->callback([options] {
    std::fflush(stdout);  // the child inherits our buffers' fds, not their contents
    const int code = supervise(*options, stderr);
    // CLI::RuntimeError carries an exit code and prints nothing (cli/main.cpp returns app.exit).
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace hibari::cli
