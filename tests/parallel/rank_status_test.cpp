// parallel/rank_status.h: a record published is read back field by field, a torn or damaged
// record is refused, and the one-line job report names the late rank, the stale (stopped or dead)
// rank, the mismatched collective and a missing rank, from synthetic status files.
#include "parallel/rank_status.h"

#include <gtest/gtest.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "parallel/comm.h"

namespace hibari {
namespace {

// A fresh directory per test, removed afterwards.
struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/hibari-rank-status-XXXXXX";
    path = ::mkdtemp(name);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

int64_t unix_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + int64_t(ts.tv_nsec);
}

std::string raw_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// What a rank is doing, for a synthetic status file.
struct Synthetic {
  int64_t step = 5;
  const char* phase = "backward";
  uint64_t collectives = 812;
  const char* collective = "";  // "" when in none
  const char* group = "";
  uint64_t floats = 0;
  double age_seconds = 0.42;
  int64_t pid = 1000;
  const char* host = "node-a";
};

void write_synthetic(const std::string& dir, int rank, int size, const Synthetic& s) {
  RankRecord r;
  r.sequence = 7;
  r.magic = kRankRecordMagic;
  r.version = kRankRecordVersion;
  r.rank = rank;
  r.size = size;
  r.pid = s.pid;
  r.step = s.step;
  r.heartbeat_unix_ns = unix_now_ns() - int64_t(s.age_seconds * 1e9);
  r.collectives = s.collectives;
  r.floats = s.floats;
  std::snprintf(r.host, sizeof r.host, "%s", s.host);
  std::snprintf(r.phase, sizeof r.phase, "%s", s.phase);
  std::snprintf(r.collective, sizeof r.collective, "%s", s.collective);
  std::snprintf(r.group, sizeof r.group, "%s", s.group);
  r.checksum = rank_record_checksum(r);
  r.sequence_end = r.sequence;
  write_bytes(rank_status_path(dir, rank),
              std::string(reinterpret_cast<const char*>(&r), sizeof r));
}

Synthetic waiting_in_all_reduce(int64_t pid) {
  Synthetic s;
  s.collective = "all_reduce";
  s.group = "dp";
  s.floats = 1048576;
  s.pid = pid;
  return s;
}

TEST(RankStatus, FileNameHasFiveDigitRank) {
  EXPECT_EQ(rank_status_path("/run/ranks", 2), "/run/ranks/rank-00002");
  EXPECT_EQ(rank_status_path("d", 12345), "d/rank-12345");
}

TEST(RankStatus, OpenWritesAStartRecordInANewDirectory) {
  TempDir tmp;
  const std::string dir = tmp.path + "/run/ranks";  // does not exist yet
  RankStatus status;
  rank_status_open(status, dir, 1, 4);
  RankRecord r;
  ASSERT_TRUE(rank_status_read(dir, 1, r));
  EXPECT_EQ(r.rank, 1);
  EXPECT_EQ(r.size, 4);
  EXPECT_EQ(r.step, -1);
  EXPECT_STREQ(r.phase, "start");
  EXPECT_EQ(std::filesystem::file_size(rank_status_path(dir, 1)), sizeof(RankRecord));
  rank_status_close(status);
  EXPECT_EQ(status.fd, -1);
  rank_status_close(status);  // twice is harmless
}

TEST(RankStatus, PublishedRecordReadsBackWithTheCollectiveInProgress) {
  TempDir tmp;
  RankStatus status;
  rank_status_open(status, tmp.path, 3, 8);

  // Pretend a collective is in progress (the trace is what parallel/comm.cpp writes).
  CollectiveTrace& trace = collective_trace();
  const uint64_t calls_before = trace.calls.load();
  trace.calls.store(calls_before + 5);
  trace.group.store("tp");
  trace.floats.store(4096);
  trace.current.store("all_gather");
  const int64_t before = unix_now_ns();
  rank_status_publish(status, 77, "backward");
  const int64_t after = unix_now_ns();
  trace.current.store(nullptr);
  trace.calls.store(calls_before);

  RankRecord r;
  ASSERT_TRUE(rank_status_read(tmp.path, 3, r));
  EXPECT_EQ(r.rank, 3);
  EXPECT_EQ(r.size, 8);
  EXPECT_EQ(r.pid, int64_t(::getpid()));
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  EXPECT_EQ(std::string(r.host), std::string(host).substr(0, sizeof r.host - 1));
  EXPECT_EQ(r.step, 77);
  EXPECT_STREQ(r.phase, "backward");
  EXPECT_EQ(r.collectives, calls_before + 5);
  EXPECT_STREQ(r.collective, "all_gather");
  EXPECT_STREQ(r.group, "tp");
  EXPECT_EQ(r.floats, 4096u);
  EXPECT_GE(r.heartbeat_unix_ns, before);
  EXPECT_LE(r.heartbeat_unix_ns, after);
  EXPECT_EQ(r.sequence, 2u);  // the start record was 1

  // Between collectives: no collective, no group; "" phase between steps.
  rank_status_publish(status, 78, nullptr);
  ASSERT_TRUE(rank_status_read(tmp.path, 3, r));
  EXPECT_EQ(r.step, 78);
  EXPECT_STREQ(r.phase, "");
  EXPECT_STREQ(r.collective, "");
  EXPECT_STREQ(r.group, "");
  EXPECT_EQ(r.sequence, 3u);
  rank_status_close(status);
}

TEST(RankStatus, TornDamagedShortOrMissingRecordsAreRefused) {
  TempDir tmp;
  RankStatus status;
  rank_status_open(status, tmp.path, 0, 2);
  const std::string path = rank_status_path(tmp.path, 0);
  rank_status_publish(status, 1, "forward");
  const std::string first = raw_bytes(path);
  rank_status_publish(status, 2, "backward");
  const std::string second = raw_bytes(path);
  rank_status_close(status);
  ASSERT_EQ(first.size(), sizeof(RankRecord));
  RankRecord r;

  // The front of the newer write over the back of the older one: the sequence ends differ.
  write_bytes(path, second.substr(0, 128) + first.substr(128));
  EXPECT_FALSE(rank_status_read(tmp.path, 0, r));
  // The back of the newer one over the front of the older one.
  write_bytes(path, first.substr(0, 128) + second.substr(128));
  EXPECT_FALSE(rank_status_read(tmp.path, 0, r));
  // Same sequence at both ends but one byte changed (a torn middle): the checksum differs.
  std::string damaged = second;
  damaged[offsetof(RankRecord, phase)] ^= 1;
  write_bytes(path, damaged);
  EXPECT_FALSE(rank_status_read(tmp.path, 0, r));
  // Short file (a reader racing the very first write).
  write_bytes(path, second.substr(0, 100));
  EXPECT_FALSE(rank_status_read(tmp.path, 0, r));
  // No file.
  EXPECT_FALSE(rank_status_read(tmp.path, 1, r));
  // And the whole record still reads.
  write_bytes(path, second);
  ASSERT_TRUE(rank_status_read(tmp.path, 0, r));
  EXPECT_EQ(r.step, 2);
}

TEST(RankStatus, ReaderRacingAWriterSeesOnlyWholeRecords) {
  TempDir tmp;
  RankStatus status;
  rank_status_open(status, tmp.path, 0, 1);
  std::atomic<bool> done{false};
  // The phase names the step's parity: a record mixing two writes would pair them wrongly (and
  // fail its checksum first).
  std::thread writer([&] {
    for (int64_t step = 0; !done.load(); ++step) {
      rank_status_publish(status, step, step % 2 == 0 ? "even" : "odd");
    }
  });
  int whole = 0;
  int64_t last_step = -1;
  for (int i = 0; i < 3000; ++i) {
    RankRecord r;
    if (!rank_status_read(tmp.path, 0, r)) continue;
    ++whole;
    if (r.step < 0) continue;  // the start record
    EXPECT_STREQ(r.phase, r.step % 2 == 0 ? "even" : "odd") << "step " << r.step;
    EXPECT_GE(r.step, last_step);
    last_step = r.step;
  }
  done = true;
  writer.join();
  rank_status_close(status);
  EXPECT_GE(whole, 2900);  // rereads make a refused read rare even under constant writing
  EXPECT_GT(last_step, 0);
}

TEST(RankStatusReport, NamesTheRankWithFewerCollectivesAndWhatTheOthersWaitIn) {
  TempDir tmp;
  write_synthetic(tmp.path, 0, 4, waiting_in_all_reduce(100));
  write_synthetic(tmp.path, 1, 4, waiting_in_all_reduce(101));
  write_synthetic(tmp.path, 3, 4, waiting_in_all_reduce(103));
  Synthetic late;
  late.phase = "forward";
  late.collectives = 811;
  late.pid = 4242;
  write_synthetic(tmp.path, 2, 4, late);
  EXPECT_EQ(rank_status_report(tmp.path, 4, 3.0),
            "rank 2 (pid 4242 on node-a) is late: alive (heartbeat 0.4 s ago), in step 5 "
            "\"forward\" after 811 collectives; ranks 0, 1, 3 wait in all_reduce #812 on dp "
            "(1048576 floats)");
}

TEST(RankStatusReport, NamesAStaleHeartbeatAsStoppedOrDead) {
  TempDir tmp;
  for (int rank : {0, 1, 3}) write_synthetic(tmp.path, rank, 4, waiting_in_all_reduce(100 + rank));
  Synthetic stopped;
  stopped.phase = "forward";
  stopped.collectives = 811;
  stopped.pid = 4242;
  stopped.host = "node-b";
  stopped.age_seconds = 9.32;
  write_synthetic(tmp.path, 2, 4, stopped);
  EXPECT_EQ(rank_status_report(tmp.path, 4, 3.0),
            "rank 2 (pid 4242 on node-b) is late: its last heartbeat was 9.3 s ago (stopped or "
            "dead), in step 5 \"forward\" after 811 collectives; ranks 0, 1, 3 wait in all_reduce "
            "#812 on dp (1048576 floats)");

  // Stale with the same count as the others (it entered the collective, then its process froze):
  // late for its heartbeat alone, and shown in the collective it is in.
  Synthetic frozen = waiting_in_all_reduce(4242);
  frozen.host = "node-b";
  frozen.age_seconds = 4.04;
  write_synthetic(tmp.path, 2, 4, frozen);
  EXPECT_EQ(rank_status_report(tmp.path, 4, 3.0),
            "rank 2 (pid 4242 on node-b) is late: its last heartbeat was 4.0 s ago (stopped or "
            "dead), in step 5 \"backward\", in all_reduce #812 on dp (1048576 floats); ranks 0, 1, "
            "3 wait in all_reduce #812 on dp (1048576 floats)");
  // Under a looser threshold the same files show nobody behind.
  EXPECT_EQ(rank_status_report(tmp.path, 4, 5.0),
            "no rank is behind: ranks 0-3 wait in all_reduce #812 on dp (1048576 floats)");
}

TEST(RankStatusReport, NamesDifferentCollectivesAtTheSameCountAsAMismatch) {
  TempDir tmp;
  for (int rank : {0, 1, 3}) write_synthetic(tmp.path, rank, 4, waiting_in_all_reduce(100 + rank));
  Synthetic odd = waiting_in_all_reduce(4242);
  odd.collective = "all_gather";
  odd.floats = 4096;
  write_synthetic(tmp.path, 2, 4, odd);
  EXPECT_EQ(rank_status_report(tmp.path, 4, 3.0),
            "mismatched collectives at #812: rank 2 (pid 4242 on node-a) in all_gather on dp "
            "(4096 floats) vs ranks 0, 1, 3 in all_reduce on dp (1048576 floats)");

  // Same collective on different groups is a mismatch too (a dp call against a tp call).
  odd = waiting_in_all_reduce(4242);
  odd.group = "tp";
  write_synthetic(tmp.path, 2, 4, odd);
  EXPECT_EQ(rank_status_report(tmp.path, 4, 3.0),
            "mismatched collectives at #812: rank 2 (pid 4242 on node-a) in all_reduce on tp "
            "(1048576 floats) vs ranks 0, 1, 3 in all_reduce on dp (1048576 floats)");
}

TEST(RankStatusReport, NamesMissingAndForeignFilesAndTheRanksBetweenSteps) {
  TempDir tmp;
  Synthetic idle;
  idle.phase = "";
  write_synthetic(tmp.path, 0, 6, idle);
  write_synthetic(tmp.path, 1, 6, idle);
  write_synthetic(tmp.path, 2, 6, idle);
  write_synthetic(tmp.path, 3, 8, idle);  // left by an earlier run with 8 ranks
  write_synthetic(tmp.path, 4, 6, idle);
  // rank 5 never wrote its file
  EXPECT_EQ(rank_status_report(tmp.path, 6, 3.0),
            "rank 3 is late: its status file is from another run (rank 3 of 8); rank 5 is late: it "
            "has no status file in " +
                tmp.path + "; ranks 0-2, 4 are between steps (last step 5) after 812 collectives");
}

TEST(RankStatusReport, ListsAtMostFourLateRanksOneByOne) {
  TempDir tmp;
  for (int rank = 0; rank < 3; ++rank) {
    write_synthetic(tmp.path, rank, 10, waiting_in_all_reduce(100 + rank));
  }
  // Ranks 3-9 missing (a node that never came up).
  const std::string line = rank_status_report(tmp.path, 10, 3.0);
  EXPECT_NE(line.find("rank 6 is late: it has no status file"), std::string::npos) << line;
  EXPECT_EQ(line.find("rank 7 is late"), std::string::npos) << line;
  EXPECT_NE(line.find("; 3 more late ranks: ranks 7-9; ranks 0-2 wait in all_reduce #812"),
            std::string::npos)
      << line;
}

// Issue 13: one watchdog line per job.  The first claim wins; later ones wait for "printed" and
// then stay quiet, or print themselves when the winner never says it printed.
TEST(RankStatus, TheFirstClaimOfTheReportWinsAndRankZeroClearsIt) {
  TempDir tmp;
  RankStatus zero;
  rank_status_open(zero, tmp.path, 0, 2);
  EXPECT_TRUE(rank_status_claim_report(tmp.path, 1.0));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(rank_status_claim_report(tmp.path, 0.2));  // never marked printed
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
  rank_status_report_printed(tmp.path);
  EXPECT_FALSE(rank_status_claim_report(tmp.path, 1.0));
  rank_status_close(zero);
  rank_status_open(zero, tmp.path, 0, 2);  // a new run of the directory
  EXPECT_TRUE(rank_status_claim_report(tmp.path, 1.0));
  rank_status_close(zero);
}

// Issue 13: a followed status is rewritten as each collective begins and ends.  In a world of
// one no collective is traced, so the trace hook is driven by hand here; the multi-process tests
// see a real one (tests/parallel/multiprocess/collectives_test.cpp).
TEST(RankStatus, AFollowedStatusIsRepublishedWhenTheCollectiveChanges) {
  TempDir tmp;
  RankStatus status;
  rank_status_open(status, tmp.path, 0, 1);
  rank_status_publish(status, 4, "forward");
  rank_status_follow_collectives(&status);
  CollectiveTrace& trace = collective_trace();
  ASSERT_NE(trace.changed.load(), nullptr);
  const uint64_t calls = trace.calls.load();
  trace.calls.store(calls + 1);
  trace.group.store("tp");
  trace.floats.store(64);
  trace.current.store("all_gather");
  trace.changed.load()();
  RankRecord r;
  ASSERT_TRUE(rank_status_read(tmp.path, 0, r));
  EXPECT_STREQ(r.collective, "all_gather");
  EXPECT_STREQ(r.group, "tp");
  EXPECT_EQ(r.step, 4);
  EXPECT_STREQ(r.phase, "forward");
  trace.current.store(nullptr);
  trace.changed.load()();
  ASSERT_TRUE(rank_status_read(tmp.path, 0, r));
  EXPECT_STREQ(r.collective, "");
  rank_status_close(status);  // stops following
  EXPECT_EQ(trace.changed.load(), nullptr);
}

}  // namespace
}  // namespace hibari
