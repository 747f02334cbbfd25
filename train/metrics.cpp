#include "train/metrics.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/file_io.h"

namespace hibari {

MetricsLog::MetricsLog(const std::string& run_dir)
    : path_((std::filesystem::path(run_dir) / "metrics.jsonl").string()), tensorboard_(run_dir) {
  jsonl_ = std::fopen(path_.c_str(), "a");
  if (!jsonl_) fail_file(path_, "cannot open for writing");
}

MetricsLog::~MetricsLog() {
  if (jsonl_) std::fclose(jsonl_);
}

void MetricsLog::write(int64_t step, const std::vector<Metric>& metrics) {
  std::string line = "{\"step\": " + std::to_string(step);
  char number[64];
  for (const Metric& m : metrics) {
    if (std::isfinite(m.value)) {
      std::snprintf(number, sizeof number, "%.9g", m.value);
    } else {
      std::snprintf(number, sizeof number, "null");
    }
    line += std::string(", \"") + m.name + "\": " + number;
    tensorboard_.add_scalar(m.name, m.value, step);
  }
  line += "}\n";
  if (std::fputs(line.c_str(), jsonl_) < 0 || std::fflush(jsonl_) != 0)
    fail_file(path_, "write failed (disk full?)");
  tensorboard_.flush();
}

void metrics_drop_after(const std::string& run_dir, int64_t step) {
  const std::string path = run_dir + "/metrics.jsonl";
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    // Every line starts {"step": N (MetricsLog::write); a torn last line of a killed run is
    // dropped.
    long long s = -1;
    if (std::sscanf(line.c_str(), "{\"step\": %lld", &s) == 1 && s <= step && line.back() == '}')
      kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  long s = long(seconds + 0.5);
  char out[32];
  if (s >= 3600) {
    std::snprintf(out, sizeof out, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  } else if (s >= 60) {
    std::snprintf(out, sizeof out, "%ldm%02lds", s / 60, s % 60);
  } else {
    std::snprintf(out, sizeof out, "%lds", s);
  }
  return out;
}

}  // namespace hibari
