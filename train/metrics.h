// train/metrics.h — where a run's numbers go: metrics.jsonl (one JSON object per line, flushed each
// step, readable while the run goes on) and TensorBoard event files in the same run directory.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "train/tensorboard.h"

namespace hibari {

struct Metric {
  std::string name;  // "loss", "valid_loss/ja"
  double value;
};

class MetricsLog {
 public:
  explicit MetricsLog(const std::string& run_dir);  // appends to run_dir/metrics.jsonl
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  // {"step": step, name: value, ...}; NaN and Inf are written as null (JSON has no NaN).
  void write(int64_t step, const std::vector<Metric>& metrics);

 private:
  std::string path_;
  FILE* jsonl_ = nullptr;
  TensorBoardWriter tensorboard_;
};

// Drops the lines of run_dir/metrics.jsonl after `step` (a resumed run writes those steps again),
// rewriting the file atomically.  No file: nothing to do.
void metrics_drop_after(const std::string& run_dir, int64_t step);

// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

// Whether the training progress line is redrawn in place ("\r\033[K") on `out` rather than
// written as plain lines.  `mode` "live" or "plain" decides; "auto": `out` must be a terminal,
// and under mpirun the terminal must be mpirun's own stdout.  Open MPI gives each rank a
// pseudo-terminal of its own whatever mpirun writes to, so `mpirun ... > train.log` would
// otherwise fill the log with redraws: the rank looks up its launcher among its ancestors
// (mpirun, mpiexec, orterun, prterun) and asks whether the launcher's stdout is a terminal.  A
// rank whose parent is a remote daemon (orted, prted), or none found, writes plain lines.
bool progress_live(const std::string& mode, FILE* out);
// The same question about a process: is its stdout (fd 1) a terminal?
bool process_stdout_is_terminal(long pid);

}  // namespace hibari
