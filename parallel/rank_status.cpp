// parallel/rank_status.cpp — the per-rank status files and the job report (see rank_status.h).
#include "parallel/rank_status.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "parallel/comm.h"

namespace hibari {

namespace {

// FNV-1a, 64 bits: enough to tell a whole record from one mixed of two writes.
uint64_t fnv1a(const void* data, size_t n) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= bytes[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

bool record_whole(const RankRecord& r) {
  return r.magic == kRankRecordMagic && r.version == kRankRecordVersion &&
         r.sequence == r.sequence_end && r.checksum == rank_record_checksum(r);
}

// Copies a C string into a fixed field: truncated, NUL-terminated, the rest zero (the checksum
// covers every byte, so no stale bytes may remain).
template <size_t N>
void copy_text(char (&field)[N], const char* text) {
  size_t i = 0;
  if (text != nullptr) {
    for (; i + 1 < N && text[i] != '\0'; ++i) field[i] = text[i];
  }
  for (; i < N; ++i) field[i] = '\0';
}

// The field as a string, even if a foreign file left it unterminated.
template <size_t N>
std::string text_of(const char (&field)[N]) {
  return std::string(field, strnlen(field, N));
}

int64_t unix_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + int64_t(ts.tv_nsec);
}

// ---- the report ----

struct RankView {
  int rank = 0;
  bool readable = false;  // a whole record of this rank of this world
  bool file_exists = false;
  bool foreign = false;  // whole, but written by another world size or rank (an earlier run)
  RankRecord record;
  double age_seconds = 0;
  bool stale = false;
  bool named = false;  // already described in the line
};

bool in_collective(const RankView& v) { return v.readable && v.record.collective[0] != '\0'; }

// "rank 2", "ranks 0, 1, 3", "ranks 0-5, 7" (runs of three or more as a range).
std::string rank_list(const std::vector<int>& ranks) {
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (i > 0) text += ", ";
    if (j >= i + 2) {
      text += std::to_string(ranks[i]) + "-" + std::to_string(ranks[j]);
    } else {
      text += std::to_string(ranks[i]);
      if (j == i + 1) text += ", " + std::to_string(ranks[j]);
    }
    i = j + 1;
  }
  return text;
}

// "all_reduce on dp (1048576 floats)"
std::string collective_text(const RankRecord& r) {
  return text_of(r.collective) + " on " + text_of(r.group) + " (" + std::to_string(r.floats) +
         " floats)";
}

// "all_reduce #812 on dp (1048576 floats)"
std::string numbered_collective_text(const RankRecord& r) {
  return text_of(r.collective) + " #" + std::to_string(r.collectives) + " on " + text_of(r.group) +
         " (" + std::to_string(r.floats) + " floats)";
}

// Where the training loop is: "in step 5 \"forward\"", "between steps (last step 5)",
// "in \"start\"" (opened, no step yet).
std::string position_text(const RankRecord& r) {
  if (r.phase[0] == '\0') return "between steps (last step " + std::to_string(r.step) + ")";
  if (r.step < 0) return "in \"" + text_of(r.phase) + "\"";
  return "in step " + std::to_string(r.step) + " \"" + text_of(r.phase) + "\"";
}

// "in step 5 \"forward\" after 811 collectives" or "in step 5 \"forward\", in all_gather #811 ..."
std::string activity_text(const RankRecord& r) {
  if (r.collective[0] == '\0') {
    return position_text(r) + " after " + std::to_string(r.collectives) + " collectives";
  }
  return position_text(r) + ", in " + numbered_collective_text(r);
}

// "rank 2 (pid 4242 on node-a)"
std::string rank_with_process(const RankView& v) {
  return "rank " + std::to_string(v.rank) + " (pid " + std::to_string(v.record.pid) + " on " +
         text_of(v.record.host) + ")";
}

std::string late_text(const RankView& v, const std::string& dir) {
  const std::string who = "rank " + std::to_string(v.rank);
  if (v.foreign) {
    return who + " is late: its status file is from another run (rank " +
           std::to_string(v.record.rank) + " of " + std::to_string(v.record.size) + ")";
  }
  if (!v.readable) {
    if (!v.file_exists) return who + " is late: it has no status file in " + dir;
    return who + " is late: its status file is unreadable (torn on every read)";
  }
  char age[64];
  if (v.stale) {
    std::snprintf(age, sizeof age, "its last heartbeat was %.1f s ago (stopped or dead)",
                  v.age_seconds);
  } else {
    std::snprintf(age, sizeof age, "alive (heartbeat %.1f s ago)", v.age_seconds);
  }
  return rank_with_process(v) + " is late: " + age + ", " + activity_text(v.record);
}

}  // namespace

uint64_t rank_record_checksum(const RankRecord& record) {
  return fnv1a(&record, offsetof(RankRecord, checksum));
}

std::string rank_status_path(const std::string& dir, int rank) {
  char name[32];
  std::snprintf(name, sizeof name, "/rank-%05d", rank);
  return dir + name;
}

void rank_status_open(RankStatus& status, const std::string& dir, int rank, int size) {
  check(rank >= 0 && rank < size, "rank status: rank " + std::to_string(rank) +
                                      " outside a world of " + std::to_string(size));
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) fail_file(dir, "cannot create the rank status directory: " + error.message());
  const std::string path = rank_status_path(dir, rank);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fail_file(path, std::string("cannot open: ") + std::strerror(errno));
  // A longer file from some other version would keep its tail; a record is the whole file.
  if (::ftruncate(fd, sizeof(RankRecord)) != 0) {
    const int e = errno;
    ::close(fd);
    fail_file(path, std::string("cannot resize: ") + std::strerror(e));
  }
  status.fd = fd;
  status.dir = dir;
  status.rank = rank;
  status.size = size;
  status.pid = int64_t(::getpid());
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "?");
  copy_text(status.host, host);
  if (rank == 0) ::unlink((dir + "/watchdog-report").c_str());
  rank_status_publish(status, -1, "start");
}

void rank_status_publish(RankStatus& status, int64_t step, const char* phase) {
  status.step.store(step, std::memory_order_relaxed);
  status.phase.store(phase, std::memory_order_relaxed);
  rank_status_refresh(status);
}

void rank_status_refresh(RankStatus& status) {
  if (status.fd < 0) return;
  std::lock_guard<std::mutex> lock(status.write_mutex);
  const int64_t step = status.step.load(std::memory_order_relaxed);
  const char* phase = status.phase.load(std::memory_order_relaxed);
  const CollectiveTrace& trace = collective_trace();
  RankRecord r;
  r.sequence = status.sequence.fetch_add(1, std::memory_order_relaxed) + 1;
  r.magic = kRankRecordMagic;
  r.version = kRankRecordVersion;
  r.rank = status.rank;
  r.size = status.size;
  r.pid = status.pid;
  r.step = step;
  r.heartbeat_unix_ns = unix_now_ns();
  // `current` first (acquire): the count, group and size stored before it belong to that call or
  // a later one, never an earlier one.
  const char* current = trace.current.load(std::memory_order_acquire);
  r.collectives = trace.calls.load(std::memory_order_relaxed);
  if (current != nullptr) {
    r.floats = trace.floats.load(std::memory_order_relaxed);
    copy_text(r.collective, current);
    copy_text(r.group, trace.group.load(std::memory_order_relaxed));
  }
  copy_text(r.host, status.host);
  copy_text(r.phase, phase);
  r.checksum = rank_record_checksum(r);
  r.sequence_end = r.sequence;
  while (::pwrite(status.fd, &r, sizeof r, 0) < 0 && errno == EINTR) {
  }
}

namespace {

std::atomic<RankStatus*> followed{nullptr};

void refresh_followed() {
  if (RankStatus* status = followed.load(std::memory_order_acquire)) rank_status_refresh(*status);
}

}  // namespace

void rank_status_follow_collectives(RankStatus* status) {
  followed.store(status, std::memory_order_release);
  collective_trace().changed.store(status != nullptr ? refresh_followed : nullptr,
                                   std::memory_order_release);
}

void rank_status_close(RankStatus& status) {
  if (followed.load() == &status) rank_status_follow_collectives(nullptr);
  std::lock_guard<std::mutex> lock(status.write_mutex);
  if (status.fd >= 0) ::close(status.fd);
  status.fd = -1;
}

bool rank_status_claim_report(const std::string& dir, double wait_seconds) {
  const std::string path = dir + "/watchdog-report";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ::close(fd);
    return true;
  }
  if (errno != EEXIST) return true;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_seconds);
  for (;;) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && st.st_size > 0) return false;  // printed
    if (std::chrono::steady_clock::now() >= deadline) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void rank_status_report_printed(const std::string& dir) {
  const std::string path = dir + "/watchdog-report";
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return;
  while (::write(fd, "printed\n", 8) < 0 && errno == EINTR) {
  }
  ::close(fd);
}

bool rank_status_read(const std::string& dir, int rank, RankRecord& out) {
  const std::string path = rank_status_path(dir, rank);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  // A writer publishes about once a second, so a reread a millisecond later almost always meets
  // a whole record; five tries rule out bad luck, not a file that is broken for good.
  bool whole = false;
  for (int attempt = 0; attempt < 5 && !whole; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const ssize_t n = ::pread(fd, &out, sizeof out, 0);
    whole = n == ssize_t(sizeof out) && record_whole(out);
  }
  ::close(fd);
  return whole;
}

std::string rank_status_report(const std::string& dir, int size, double stale_seconds) {
  const int64_t now = unix_now_ns();
  std::vector<RankView> views(size_t(std::max(size, 0)));
  for (int rank = 0; rank < size; ++rank) {
    RankView& v = views[size_t(rank)];
    v.rank = rank;
    v.readable = rank_status_read(dir, rank, v.record);
    if (v.readable && (v.record.rank != rank || v.record.size != size)) {
      v.readable = false;
      v.foreign = true;
    }
    if (!v.readable) {
      struct stat st {};
      v.file_exists = ::stat(rank_status_path(dir, rank).c_str(), &st) == 0;
      continue;
    }
    // In double: a corrupt or foreign record's time may be anything, and int64 would overflow.
    v.age_seconds = (double(now) - double(v.record.heartbeat_unix_ns)) * 1e-9;
    v.stale = v.age_seconds > stale_seconds;
  }

  uint64_t fewest = UINT64_MAX, most = 0;
  for (const RankView& v : views) {
    if (!v.readable) continue;
    fewest = std::min(fewest, v.record.collectives);
    most = std::max(most, v.record.collectives);
  }
  std::vector<std::string> parts;

  // 1. Mismatch: at the lowest count where ranks sit in different collectives, every kind of
  //    collective with its ranks, the rarest first (the odd one out is usually the bug).
  std::map<uint64_t, std::map<std::tuple<std::string, std::string, uint64_t>, std::vector<int>>>
      by_count;
  for (const RankView& v : views) {
    if (!in_collective(v)) continue;
    by_count[v.record.collectives]
            [{text_of(v.record.collective), text_of(v.record.group), v.record.floats}]
                .push_back(v.rank);
  }
  bool mismatch = false;
  for (const auto& [count, kinds] : by_count) {
    if (kinds.size() < 2) continue;
    mismatch = true;
    std::vector<std::vector<int>> groups;
    for (const auto& entry : kinds) groups.push_back(entry.second);
    std::stable_sort(groups.begin(), groups.end(),
                     [](const auto& a, const auto& b) { return a.size() < b.size(); });
    std::string text = "mismatched collectives at #" + std::to_string(count) + ": ";
    for (size_t g = 0; g < groups.size(); ++g) {
      const RankView& first = views[size_t(groups[g].front())];
      if (g > 0) text += " vs ";
      text += groups[g].size() == 1 ? rank_with_process(first) : rank_list(groups[g]);
      text += " in " + collective_text(first.record);
      for (int rank : groups[g]) views[size_t(rank)].named = true;
    }
    parts.push_back(text);
    break;
  }

  // 2. Late ranks, one by one (a few; a whole dead node would make the line unreadable).
  std::vector<int> late;
  for (const RankView& v : views) {
    const bool behind = v.readable && fewest < most && v.record.collectives == fewest;
    if (!v.named && (!v.readable || v.stale || behind)) late.push_back(v.rank);
  }
  const size_t shown = std::min<size_t>(late.size(), 4);
  for (size_t i = 0; i < shown; ++i) {
    parts.push_back(late_text(views[size_t(late[i])], dir));
  }
  if (late.size() > shown) {
    parts.push_back(std::to_string(late.size() - shown) + " more late ranks: " +
                    rank_list(std::vector<int>(late.begin() + long(shown), late.end())));
  }
  for (int rank : late) views[size_t(rank)].named = true;

  // 3. Everyone else, grouped by what they are in.
  std::map<std::pair<bool, std::string>, std::vector<int>> rest;
  for (const RankView& v : views) {
    if (v.named) continue;
    if (in_collective(v)) {
      rest[{true, numbered_collective_text(v.record)}].push_back(v.rank);
    } else {
      rest[{false, activity_text(v.record)}].push_back(v.rank);
    }
  }
  std::vector<std::pair<int, std::string>> others;  // ordered by first rank
  for (const auto& [key, ranks] : rest) {
    const bool one = ranks.size() == 1;
    const char* verb = key.first ? (one ? " waits in " : " wait in ") : (one ? " is " : " are ");
    others.push_back({ranks.front(), rank_list(ranks) + verb + key.second});
  }
  std::sort(others.begin(), others.end());
  for (const auto& entry : others) parts.push_back(entry.second);

  if (parts.empty()) return "no rank status in " + dir;
  std::string line = !mismatch && late.empty() ? "no rank is behind: " : "";
  for (size_t i = 0; i < parts.size(); ++i) line += (i > 0 ? "; " : "") + parts[i];
  return line;
}

}  // namespace hibari
