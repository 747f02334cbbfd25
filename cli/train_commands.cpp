// cli/train_commands.cpp — `hibari train --config run.toml` and `hibari config`.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "cli/commands.h"
#include "parallel/comm.h"
#include "train/metrics.h"
#include "train/run_config.h"
#include "train/trainer.h"

namespace hibari::cli {

void add_train_commands(CLI::App& app) {
  auto config_path = std::make_shared<std::string>();
  auto progress = std::make_shared<std::string>("auto");
  CLI::App* train = app.add_subcommand("train", "train a model as described by a TOML run file");
  train->add_option("--config", *config_path, "the run file (TOML)")->required();
  train
      ->add_option("--progress", *progress,
                   "the progress line: live (redrawn in place), plain (one line per log_every "
                   "steps), or auto: live on a terminal (under mpirun: when mpirun's output is "
                   "one)")
      ->check(CLI::IsMember({"auto", "plain", "live"}));
  train->callback([config_path, progress] {
    // MPI first: started by `mpirun -np N hibari train`, else a world of one process (no MPI).
    // A config error is then reported once for the whole job, not once per rank.
    const Comm world = comm_init(nullptr, nullptr);
    TrainSummary summary;
    try {
      RunConfig config = load_run_config(*config_path);
      summary = run_training(config, stdout, progress_live(*progress, stdout));
    } catch (const std::exception& e) {
      if (world.size == 1) throw;  // main prints it
      const std::bad_alloc* oom = dynamic_cast<const std::bad_alloc*>(&e);
      comm_report_error(world, oom != nullptr ? std::string("out of memory") : e.what(), stderr);
      // No MPI_Finalize: it waits for ranks that may be stuck in a collective.
      std::exit(1);
    }
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
