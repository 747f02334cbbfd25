// parallel/comm.h on 2, 3 and 4 processes. Rank r's contribution is f(r, i), a multiple of 1/4
// small enough that every sum is exact in float, so each rank can compute what all ranks together
// must produce and compare bit for bit.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "core/rng.h"
#include "parallel/comm.h"
#include "parallel/rank_status.h"

namespace hibari {
namespace {

float f(int rank, size_t i) { return 0.25f * float(int((rank * 7 + i * 13) % 29) - 14); }

std::vector<float> contribution(int rank, size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = f(rank, i);
  return v;
}

std::vector<float> sum_over_ranks(int size, size_t n) {
  std::vector<float> v(n, 0.0f);
  for (int r = 0; r < size; ++r)
    for (size_t i = 0; i < n; ++i) v[i] += f(r, i);
  return v;
}

uint64_t ring(int p, size_t n) { return uint64_t(p - 1) * n * 4 / uint64_t(p); }

TEST(Collectives, WorldHasTheProcessesMpirunStarted) {
  Comm world = comm_world();
  EXPECT_GE(world.size, 2);
  EXPECT_LT(world.rank, world.size);
}

TEST(Collectives, AllReduceSum) {
  Comm world = comm_world();
  for (size_t n : {1u, 37u, 4096u}) {
    std::vector<float> buf = contribution(world.rank, n);
    all_reduce_sum(world, buf);
    EXPECT_EQ(buf, sum_over_ranks(world.size, n)) << "n=" << n;
  }
  EXPECT_EQ(world.bytes.all_reduce,
            2 * (ring(world.size, 1) + ring(world.size, 37) + ring(world.size, 4096)));
}

TEST(Collectives, NonBlockingAllReduceSum) {
  Comm world = comm_world();
  std::vector<float> a = contribution(world.rank, 1000), b = contribution(world.rank + 5, 333);
  CommRequest ra = all_reduce_sum_start(world, a);
  CommRequest rb = all_reduce_sum_start(world, b);
  comm_wait(rb);
  comm_wait(ra);
  EXPECT_EQ(a, sum_over_ranks(world.size, 1000));
  std::vector<float> want_b(333, 0.0f);
  for (int r = 0; r < world.size; ++r)
    for (size_t i = 0; i < want_b.size(); ++i) want_b[i] += f(r + 5, i);
  EXPECT_EQ(b, want_b);
  EXPECT_EQ(world.bytes.all_reduce, 2 * (ring(world.size, 1000) + ring(world.size, 333)));
}

// With inexact sums (random floats) the bits depend on the order of addition, but every rank must
// end with the same bits, and near the double-precision sum.
TEST(Collectives, AllReduceGivesEveryRankTheSameBits) {
  Comm world = comm_world();
  const size_t n = 100'000;  // large enough for Open MPI's segmented/ring algorithms
  std::vector<float> buf(n);
  std::vector<double> want(n, 0.0);
  for (int r = 0; r < world.size; ++r) {
    for (size_t i = 0; i < n; ++i) {
      float x = float(random_normal(1234, uint32_t(r), i));
      want[i] += x;
      if (r == world.rank) buf[i] = x;
    }
  }
  all_reduce_sum(world, buf);
  for (size_t i = 0; i < n; ++i) ASSERT_NEAR(buf[i], want[i], 1e-5 * (1 + std::abs(want[i])));
  std::vector<float> everyone(n * size_t(world.size));
  all_gather(world, everyone, buf);
  for (int r = 0; r < world.size; ++r) {
    EXPECT_EQ(std::memcmp(everyone.data() + size_t(r) * n, buf.data(), n * sizeof(float)), 0)
        << "rank " << r << " holds other bits than rank " << world.rank;
  }
}

TEST(Collectives, ReduceScatterSum) {
  Comm world = comm_world();
  const size_t block = 50;
  const size_t n = block * size_t(world.size);
  std::vector<float> in = contribution(world.rank, n), out(block);
  reduce_scatter_sum(world, out, in);
  std::vector<float> total = sum_over_ranks(world.size, n);
  EXPECT_EQ(out, std::vector<float>(total.begin() + long(block) * world.rank,
                                    total.begin() + long(block) * (world.rank + 1)));
  EXPECT_EQ(world.bytes.reduce_scatter, ring(world.size, n));
}

TEST(Collectives, AllGather) {
  Comm world = comm_world();
  const size_t block = 21;
  std::vector<float> in = contribution(world.rank, block), out(block * size_t(world.size));
  all_gather(world, out, in);
  for (int r = 0; r < world.size; ++r) {
    std::vector<float> got(out.begin() + long(block) * r, out.begin() + long(block) * (r + 1));
    EXPECT_EQ(got, contribution(r, block)) << "block of rank " << r;
  }
  EXPECT_EQ(world.bytes.all_gather, ring(world.size, out.size()));
}

TEST(Collectives, Broadcast) {
  Comm world = comm_world();
  for (int root = 0; root < world.size; ++root) {
    std::vector<float> buf = contribution(world.rank, 77);
    broadcast(world, buf, root);
    EXPECT_EQ(buf, contribution(root, 77)) << "root " << root;
  }
  barrier(world);
  EXPECT_EQ(world.bytes.broadcast, uint64_t(world.size) * ring(world.size, 77));
}

// Even and odd ranks form two groups, ordered by descending world rank.
TEST(Collectives, SplitMakesGroupsOrderedByKey) {
  Comm world = comm_world();
  Comm half = comm_split(world, world.rank % 2, -world.rank);
  int members = (world.size - world.rank % 2 + 1) / 2;
  EXPECT_EQ(half.size, members);
  EXPECT_EQ(half.rank, members - 1 - world.rank / 2);
  std::vector<float> buf{float(world.rank)};
  all_reduce_sum(half, buf);
  float want = 0;
  for (int r = world.rank % 2; r < world.size; r += 2) want += float(r);
  EXPECT_EQ(buf[0], want);
  EXPECT_EQ(world.bytes.all_reduce, 0u);  // the split communicator counts its own bytes
  EXPECT_EQ(half.bytes.all_reduce, 2 * ring(half.size, 1));
  comm_free(half);
}

// Bytes: every rank's block in rank order.
TEST(Collectives, AllGatherBytes) {
  Comm world = comm_world();
  std::vector<uint8_t> mine(5), all(5 * size_t(world.size));
  for (size_t i = 0; i < mine.size(); ++i) mine[i] = uint8_t(world.rank * 40 + int(i));
  all_gather_bytes(world, all, mine);
  for (int r = 0; r < world.size; ++r)
    for (size_t i = 0; i < 5; ++i) EXPECT_EQ(all[size_t(r) * 5 + i], uint8_t(r * 40 + int(i)));
  EXPECT_EQ(world.bytes.all_gather, uint64_t(world.size - 1) * 5);
}

// A ring shift: each rank sends to the next and receives from the previous in one call; the ends
// of an open chain (dest or source -1) only send or only receive, as a pipeline's first and last
// stages do.
TEST(Collectives, SendRecvShiftsAlongARingAndAChain) {
  Comm world = comm_world();
  const int p = world.size, r = world.rank;
  std::vector<float> out = contribution(r, 33), in(33, -1.0f);
  send_recv(world, out, (r + 1) % p, in, (r + p - 1) % p);
  EXPECT_EQ(in, contribution((r + p - 1) % p, 33));
  std::fill(in.begin(), in.end(), -1.0f);
  send_recv(world, out, r + 1 < p ? r + 1 : -1, in, r > 0 ? r - 1 : -1);
  if (r > 0)
    EXPECT_EQ(in, contribution(r - 1, 33));
  else
    EXPECT_EQ(in, std::vector<float>(33, -1.0f));
  EXPECT_EQ(world.bytes.point_to_point, uint64_t(33 * 4) * (r + 1 < p ? 2 : 1));
}

// While a collective runs, collective_trace() names it; afterwards nothing is current.
TEST(Collectives, TraceCountsCallsAndClearsTheCurrentOne) {
  Comm world = comm_world();
  uint64_t before = collective_trace().calls.load();
  std::vector<float> buf(3, 1.0f);
  all_reduce_sum(world, buf);
  barrier(world);
  EXPECT_EQ(collective_trace().calls.load(), before + 2);
  EXPECT_EQ(collective_trace().current.load(), nullptr);
  EXPECT_STREQ(collective_trace().group.load(), "world");
}

// Each rank fills only its even block; afterwards all hold every block. n = 10 on 4 ranks gives
// blocks of 3, 3, 3, 1; n = 2 on 3 or 4 ranks leaves the last ranks' blocks empty.
TEST(Collectives, AllGatherEvenFillsEveryBlockFromItsOwner) {
  Comm world = comm_world();
  for (size_t n : {size_t(10), size_t(2), size_t(1000)}) {
    std::vector<float> buf(n, -1.0f);
    BucketRange mine = even_block(n, world.size, world.rank);
    for (size_t i = mine.begin; i < mine.end; ++i) buf[i] = float(world.rank * 10000 + int(i));
    all_gather_even(world, buf);
    for (int r = 0; r < world.size; ++r) {
      BucketRange b = even_block(n, world.size, r);
      for (size_t i = b.begin; i < b.end; ++i) ASSERT_EQ(buf[i], float(r * 10000 + int(i)));
    }
  }
}

TEST(Collectives, NonBlockingAllGatherEqualsBlocking) {
  Comm world = comm_world();
  std::vector<float> mine = contribution(world.rank, 17), out(17 * size_t(world.size)),
                     want(17 * size_t(world.size));
  std::vector<uint8_t> bytes_in(3, uint8_t(world.rank)), bytes_out(3 * size_t(world.size));
  CommRequest floats = all_gather_start(world, out, mine);
  CommRequest bytes = all_gather_bytes_start(world, bytes_out, bytes_in);
  comm_wait(floats);
  comm_wait(bytes);
  all_gather(world, want, mine);
  EXPECT_EQ(out, want);
  for (int r = 0; r < world.size; ++r) EXPECT_EQ(bytes_out[size_t(r) * 3 + 2], uint8_t(r));
}

// Issue 13: a rank's status file names the collective it is blocked in while it is blocked (the
// heartbeat that would otherwise say it is one second away: 600 s watchdogs beat once a second).
// The last rank arrives 300 ms late; meanwhile rank 0 reads its own file from another thread.
TEST(Collectives, AFollowedStatusNamesTheCollectiveWhileBlockedInIt) {
  Comm world = comm_world();
  const std::string dir = "/tmp/hibari-follow-" + std::to_string(::getpid());
  RankStatus status;
  rank_status_open(status, dir, 0, 1);  // each rank its own directory: rank 0 of 1 in it
  rank_status_publish(status, 2, "forward");
  rank_status_follow_collectives(&status);
  barrier(world);
  RankRecord seen;
  bool read = false;
  std::thread reader;
  if (world.rank == 0) {
    reader = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      read = rank_status_read(dir, 0, seen);
    });
  }
  if (world.rank == world.size - 1) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::vector<float> buf = contribution(world.rank, 8);
  all_reduce_sum(world, buf);
  if (reader.joinable()) reader.join();
  RankRecord after;
  ASSERT_TRUE(rank_status_read(dir, 0, after));
  rank_status_close(status);
  std::filesystem::remove_all(dir);
  EXPECT_STREQ(after.collective, "");  // the end of the collective was published too
  if (world.rank == 0) {
    ASSERT_TRUE(read);
    EXPECT_STREQ(seen.collective, "all_reduce");
    EXPECT_STREQ(seen.group, "world");
    EXPECT_EQ(seen.step, 2);
  }
}

}  // namespace
}  // namespace hibari
