// fuzz/rank_status_fuzz.cpp — rank_status_read and rank_status_report (parallel/rank_status.h):
// the status files of a job's ranks.  Each 256 bytes of the input are one rank's record; its
// checksum and closing sequence are set here, so mutations reach past the torn-record check (which
// rereads for milliseconds) into the fields the report prints.
#include <algorithm>
#include <cstring>

#include "fuzz/fuzz_common.h"
#include "parallel/rank_status.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hibari;
  const int ranks = int(std::min<size_t>(size / sizeof(RankRecord), 4));
  if (ranks == 0) return 0;
  const std::string dir = fuzz::scratch_dir() + "/status";
  std::filesystem::create_directories(dir);
  for (int r = 0; r < 4; ++r) std::filesystem::remove(rank_status_path(dir, r));
  for (int r = 0; r < ranks; ++r) {
    RankRecord rec;
    std::memcpy(&rec, data + size_t(r) * sizeof rec, sizeof rec);
    rec.sequence_end = rec.sequence;
    rec.checksum = rank_record_checksum(rec);
    fuzz::write_bytes(rank_status_path(dir, r), &rec, sizeof rec);
  }
  fuzz::value_or_error([&] {
    RankRecord out;
    (void)rank_status_read(dir, 0, out);
    (void)rank_status_report(dir, ranks, 5.0);
  });
  return 0;
}
