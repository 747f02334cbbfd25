// parallel/comm.h in a 1-rank world: every collective is the identity and sends no bytes.
#include "parallel/comm.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/error_matchers.h"
#include "tests/parallel/mpi_environment.h"

namespace hibari {
namespace {

std::vector<float> ramp(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 0.5f * float(i) - 3.0f;
  return v;
}

TEST(Comm, ProcessWithoutMpirunIsOneRankWorld) {
  Comm world = comm_world();
  EXPECT_EQ(world.rank, 0);
  EXPECT_EQ(world.size, 1);
  EXPECT_FALSE(world.owned);
}

// Issue 13: Open MPI's singleton start takes 0.3-1 s (it forks a daemon); a process no launcher
// started needs none of it.
TEST(Comm, ProcessWithoutALauncherNeverStartsMpi) {
  ASSERT_FALSE(comm_launched_by_mpirun()) << "run this test without mpirun";
  EXPECT_EQ(comm_launch_rank(), -1);
  int initialized = 1;
  MPI_Initialized(&initialized);
  EXPECT_EQ(initialized, 0);
  EXPECT_FALSE(comm_uses_mpi());
  EXPECT_EQ(comm_world().mpi, MPI_COMM_NULL);
}

TEST(Comm, SendToItselfIsACopy) {
  Comm world = comm_world();
  const std::vector<float> want = ramp(9);
  std::vector<float> got(9);
  send_recv(world, want, 0, got, 0);
  EXPECT_EQ(got, want);
  send_recv(world, want, -1, got, -1);  // neither half: nothing
  EXPECT_NE(test::error_of([&] { send_recv(world, want, 0, got, -1); }).find("itself"),
            std::string::npos);
}

TEST(Comm, ErrorReportOfOneProcessIsTheMessage) {
  char* text = nullptr;
  size_t size = 0;
  FILE* err = open_memstream(&text, &size);
  comm_report_error(comm_world(), "config.json: bad", err);
  std::fclose(err);
  EXPECT_EQ(std::string(text, size), "hibari: error: config.json: bad\n");
  std::free(text);
}

TEST(Comm, CollectivesAreIdentityOnOneRank) {
  Comm world = comm_world();
  const std::vector<float> want = ramp(37);
  std::vector<float> buf = want;
  all_reduce_sum(world, buf);
  EXPECT_EQ(buf, want);
  CommRequest request = all_reduce_sum_start(world, buf);
  comm_wait(request);
  EXPECT_EQ(request.mpi, MPI_REQUEST_NULL);
  comm_wait(request);  // waiting twice is harmless
  EXPECT_EQ(buf, want);
  std::vector<float> out(want.size());
  reduce_scatter_sum(world, out, want);
  EXPECT_EQ(out, want);
  std::fill(out.begin(), out.end(), 0.0f);
  all_gather(world, out, want);
  EXPECT_EQ(out, want);
  std::fill(out.begin(), out.end(), 0.0f);
  request = all_gather_start(world, out, want);
  EXPECT_TRUE(comm_test(request));
  comm_wait(request);
  EXPECT_EQ(out, want);
  buf = want;
  all_gather_even(world, buf);
  EXPECT_EQ(buf, want);
  broadcast(world, buf, 0);
  EXPECT_EQ(buf, want);
  barrier(world);
  // (p-1)/p = 0: one rank sends nothing.
  EXPECT_EQ(comm_bytes_total(world.bytes), 0u);
}

TEST(Comm, SplitOfOneRankIsOneRank) {
  Comm world = comm_world();
  Comm sub = comm_split(world, 7, 0);
  EXPECT_EQ(sub.rank, 0);
  EXPECT_EQ(sub.size, 1);
  EXPECT_TRUE(sub.owned);
  std::vector<float> buf = ramp(5);
  all_reduce_sum(sub, buf);
  EXPECT_EQ(buf, ramp(5));
  comm_free(sub);
  EXPECT_EQ(sub.mpi, MPI_COMM_NULL);
}

TEST(Comm, MismatchedBlockSizesAreErrors) {
  Comm world = comm_world();
  std::vector<float> in(6), out(4);
  EXPECT_NE(test::error_of([&] { reduce_scatter_sum(world, out, in); }).find("not 1 blocks of 4"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { all_gather(world, out, in); }).find("all_gather"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { broadcast(world, out, 1); }).find("root 1"), std::string::npos);
}

TEST(EvenBlock, SplitsLikeCeilDivisionAndClipsTheTail) {
  EXPECT_EQ(even_block(10, 4, 0), (BucketRange{0, 3}));
  EXPECT_EQ(even_block(10, 4, 3), (BucketRange{9, 10}));
  EXPECT_EQ(even_block(2, 4, 2), (BucketRange{2, 2}));
  EXPECT_EQ(even_block(2, 4, 3), (BucketRange{2, 2}));
  EXPECT_EQ(even_block(8, 1, 0), (BucketRange{0, 8}));
  size_t covered = 0;
  for (int r = 0; r < 7; ++r) covered += even_block(100, 7, r).size();
  EXPECT_EQ(covered, 100u);
}

}  // namespace
}  // namespace hibari
