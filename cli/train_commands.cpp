// cli/train_commands.cpp — `hibari train --config run.toml` and `hibari config`.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "parallel/comm.h"
#include "train/run_config.h"
#include "train/trainer.h"

namespace hibari::cli {

void add_train_commands(CLI::App& app) {
  auto config_path = std::make_shared<std::string>();
  CLI::App* train = app.add_subcommand("train", "train a model as described by a TOML run file");
  train->add_option("--config", *config_path, "the run file (TOML)")->required();
  train->callback([config_path] {
    RunConfig config = load_run_config(*config_path);
    // MPI: started by `mpirun -np N hibari train`, else a world of one process.
    comm_init(nullptr, nullptr);
    TrainSummary summary = run_training(config, stdout);
    comm_finalize();
    // Stopped by SIGTERM/SIGINT (after writing a checkpoint): exit as the signal would have.
    if (summary.stopped_by_signal != 0) {
      std::fflush(stdout);
      std::exit(128 + summary.stopped_by_signal);
    }
  });

  CLI::App* config =
      app.add_subcommand("config", "print every run-file key with its default and description");
  auto reference = std::make_shared<bool>(false);
  config->add_flag("--reference", *reference, "the full reference (default)");
  config->callback([] { std::fputs(run_config_reference().c_str(), stdout); });
}

}  // namespace hibari::cli
