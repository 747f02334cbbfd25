#include "train/metrics.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/file_io.h"
#include "parallel/comm.h"

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

namespace {

// The first line of a small /proc file ("" when unreadable).
std::string proc_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// The parent of `pid` from /proc/<pid>/stat ("pid (comm) state ppid ..."; comm may hold spaces
// and parentheses, so the fields are counted after the last ')'); 0 when unknown.
long parent_of(long pid) {
  const std::string stat = proc_line("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 4 > stat.size()) return 0;
  return std::strtol(stat.c_str() + close + 4, nullptr, 10);
}

}  // namespace

bool process_stdout_is_terminal(long pid) {
  const std::string fd = "/proc/" + std::to_string(pid) + "/fd/1";
  struct stat st {};
  // Only a character device can be a terminal; anything else is not opened at all.
  if (::stat(fd.c_str(), &st) != 0 || !S_ISCHR(st.st_mode)) return false;
  const int f = ::open(fd.c_str(), O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (f < 0) return false;
  const bool tty = ::isatty(f) != 0;
  ::close(f);
  return tty;
}

bool progress_live(const std::string& mode, FILE* out) {
  if (mode == "live") return true;
  if (mode == "plain") return false;
  if (::isatty(fileno(out)) == 0) return false;
  if (!comm_launched_by_mpirun()) return true;
  // A few generations up at most: mpirun may start the rank through a shell or a wrapper.
  long pid = long(::getppid());
  for (int depth = 0; depth < 8 && pid > 1; ++depth, pid = parent_of(pid)) {
    const std::string name = proc_line("/proc/" + std::to_string(pid) + "/comm");
    if (name == "mpirun" || name == "mpiexec" || name == "orterun" || name == "prterun")
      return process_stdout_is_terminal(pid);
    if (name == "orted" || name == "prted") return false;
  }
  return false;
}

}  // namespace hibari
