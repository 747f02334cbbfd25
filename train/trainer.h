// train/trainer.h — the training loop of `hibari train`: data, model, AdamW, schedule, clipping,
// gradient accumulation, validation, metrics and the live progress line.
#pragma once

#include <cstdio>

#include "train/run_config.h"

namespace hibari {

struct TrainSummary {
  int64_t steps = 0;
  double first_loss = 0;
  double last_loss = 0;
  double valid_loss = 0;  // NaN without a validation split
  double tokens_per_second = 0;
  int64_t resumed_from = 0;   // the step of the checkpoint the run continued from (0: none)
  int stopped_by_signal = 0;  // SIGTERM/SIGINT ended the run early (after a checkpoint)
};

// Runs the whole job, continuing from the newest intact checkpoint when there is one.
// Human-readable output (header, progress, samples) goes to `out`; with `live` the progress line
// is redrawn in place ("\r\033[K"), else written as plain lines (progress_live in
// train/metrics.h decides: a terminal, and under mpirun mpirun's own).
TrainSummary run_training(const RunConfig& config, FILE* out, bool live);

}  // namespace hibari
