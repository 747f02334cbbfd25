// parallel/rank_status.h — one small status file per rank, so that a rank whose watchdog fires can
// say which rank the job is waiting for and which collective each rank is in.
//
// Every rank owns `<dir>/rank-<NNNNN>` (world rank, 5 digits) in a directory all ranks see: the run
// directory, on a cluster a shared filesystem.  The file holds one fixed-size RankRecord: pid,
// host, world rank and size, the step and phase the training loop marked, collective_trace() (how
// many collectives this process began, the one it is in, its group and size) and a heartbeat time.
// The heartbeat is wall-clock time (CLOCK_REALTIME), not steady_clock, because the ranks that
// compare it may run on different machines (NTP keeps cluster clocks within milliseconds).
//
// A record is written with one pwrite of the whole record, built and written under the status's
// lock: no allocation, any thread, and the newest state is always the one left in the file.
// A reader may still see a torn record (a pwrite is not atomic against a pread, least of all on a
// network filesystem), so a record carries its sequence number at both ends and a checksum of its
// bytes; rank_status_read rereads until the record is whole.
//
// rank_status_report reads every rank's record and writes one line about the whole job: which ranks
// are behind (fewest collectives begun, or a stale heartbeat: stopped or dead), which ranks sit in
// different collectives at the same count (a mismatched collective sequence, the usual cause of a
// silent hang), and what every other rank is waiting in.
//
// Limit: the collective count is per process over all groups.  Where ranks legitimately run
// different numbers of collectives (pipeline stages, ranks of different tp groups doing extra work)
// "fewest" is a hint; the report always lists what each rank is in, so the reader can judge.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace hibari {

// The bytes of a status file.  Fixed-width fields and a fixed size, so that a record written on one
// machine reads the same on another (all hibari targets are little-endian).
struct RankRecord {
  uint64_t sequence = 0;  // grows by one per publish; equal to sequence_end in a whole record
  uint32_t magic = 0;     // kRankRecordMagic
  uint32_t version = 0;   // kRankRecordVersion
  int32_t rank = 0;       // world rank
  int32_t size = 0;       // world size
  int64_t pid = 0;
  int64_t step = 0;               // the step the training loop marked last
  int64_t heartbeat_unix_ns = 0;  // CLOCK_REALTIME when this record was written
  uint64_t collectives = 0;   // collective_trace().calls: collectives begun, the current one too
  uint64_t floats = 0;        // size of the current (or last) collective's buffer
  char host[64] = {};         // gethostname, NUL-terminated (truncated if longer)
  char phase[24] = {};        // "forward", "backward", ...; "" between steps
  char collective[32] = {};   // the collective in progress; "" when in none
  char group[16] = {};        // its group: "dp", "tp", "pp", "world", ...
  char reserved[40] = {};     // zero; room for fields without changing the size
  uint64_t checksum = 0;      // FNV-1a of every byte before this field
  uint64_t sequence_end = 0;  // written last in memory order; equal to sequence
};
static_assert(sizeof(RankRecord) == 256, "a status file is 256 bytes");

inline constexpr uint32_t kRankRecordMagic = 0x53524248;  // "HBRS" in a little-endian file
inline constexpr uint32_t kRankRecordVersion = 1;

// This rank's open status file.  Not copyable (the sequence counter is atomic).
struct RankStatus {
  int fd = -1;
  std::string dir;
  int rank = 0;
  int size = 1;
  int64_t pid = 0;
  char host[64] = {};
  std::atomic<uint64_t> sequence{0};
  // The step and phase last published; a refresh (heartbeat, collective) writes them again.
  std::atomic<int64_t> step{-1};
  std::atomic<const char*> phase{"start"};
  // Publishes are whole-record pwrites from several threads (the loop's marks and collectives,
  // the heartbeat): one at a time, each built inside the lock, so the file always ends with the
  // newest state and a rank frozen at any instant (SIGSTOP) leaves exactly where it was.
  std::mutex write_mutex;
};

// Creates `dir` (and parents) if needed, opens `<dir>/rank-<NNNNN>` for `rank` of a world of
// `size` and writes a first record (step -1, phase "start"), so a rank that never gets further is
// still visible.  A file left there by an earlier run of the same run directory is overwritten.
void rank_status_open(RankStatus& status, const std::string& dir, int rank, int size);

// Writes the whole record once: now as heartbeat, `step` and `phase` (a string literal; nullptr or
// "" between steps) and collective_trace().  No allocation: one clock read and one pwrite under
// the status's write lock; any thread.  A failed write is ignored: the heartbeat then goes stale,
// which is what the others report.
void rank_status_publish(RankStatus& status, int64_t step, const char* phase);
// The same with the step and phase last published (a heartbeat: where the rank is, said again).
void rank_status_refresh(RankStatus& status);

// Makes every collective of this process republish `status` as it begins and as it ends
// (collective_trace().changed), so the record names the collective a rank is in at any instant,
// not as of its last heartbeat.  nullptr stops it.  One status per process.
void rank_status_follow_collectives(RankStatus* status);

// Closes the file (it stays on disk for a post-mortem look).  Safe on a status never opened.
void rank_status_close(RankStatus& status);

// FNV-1a of the record's bytes before `checksum` (what a whole record carries there).
uint64_t rank_record_checksum(const RankRecord& record);

// `<dir>/rank-<NNNNN>`.
std::string rank_status_path(const std::string& dir, int rank);

// Reads `rank`'s record; rereads (up to a few times, 1 ms apart) while it is torn.  False when the
// file is missing, short, of another version, or still torn.
bool rank_status_read(const std::string& dir, int rank, RankRecord& out);

// One line about the job from the records of ranks 0..size-1 (no newline), e.g.
//   rank 2 (pid 4242 on node-a) is late: its last heartbeat was 9.3 s ago (stopped or dead), in
//   step 5 "forward" after 811 collectives; ranks 0, 1, 3 wait in all_reduce #812 on dp
//   (1048576 floats)
// A rank is late when its file is missing or unreadable, its heartbeat is older than
// `stale_seconds`, or it began fewer collectives than the others (the fewest of all).  Ranks in
// different collectives at the same count are named first, as "mismatched collectives at #N".
std::string rank_status_report(const std::string& dir, int size, double stale_seconds);

// The one rank that prints the job's watchdog report.  Every rank stuck behind a late one fires at
// about the same time; the first to create `<dir>/watchdog-report` prints, then marks it printed
// (rank_status_report_printed); the others wait up to `wait_seconds` for that mark and print
// nothing (they must not exit first: mpirun would kill the printer mid-line).  True: this rank
// prints (it claimed the report, the claimant never marked it printed, or the file cannot be
// made).  rank_status_open of rank 0 removes the file an earlier run of the directory left.
bool rank_status_claim_report(const std::string& dir, double wait_seconds);
void rank_status_report_printed(const std::string& dir);

}  // namespace hibari
