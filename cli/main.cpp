// cli/main.cpp — the `hibari` command: subcommands, flags and exit codes; no logic of its own.
// Every hibari::Error becomes one line on stderr and exit code 1.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <new>

#include "core/error.h"
#include "train/run_config.h"
#include "train/trainer.h"

int main(int argc, char** argv) {
  CLI::App app{"hibari: build Japanese-English language models end to end"};
  app.require_subcommand(1);

  std::string train_config;
  CLI::App* train = app.add_subcommand("train", "train a model as described by a TOML run file");
  train->add_option("--config", train_config, "the run file (TOML)")->required();
  bool print_reference = false;
  CLI::App* config_cmd =
      app.add_subcommand("config", "print every run-file key with its default and description");
  config_cmd->add_flag("--reference", print_reference, "the full reference (default)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (*train) {
      hibari::RunConfig config = hibari::load_run_config(train_config);
      hibari::run_training(config, stdout);
    } else if (*config_cmd) {
      std::fputs(hibari::run_config_reference().c_str(), stdout);
    }
  } catch (const hibari::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "hibari: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "hibari: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hibari: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
