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

}  // namespace hibari
