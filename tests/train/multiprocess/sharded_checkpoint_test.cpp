// train/distributed_checkpoint.h under mpirun -np 4: every rank writes its own shard, the peak
// memory of a checkpoint on every rank stays near that shard (the leader's old gather takes three
// times the model), and a checkpoint written under one layout is read back bit-identical under
// others (dp 2 x tp 2 with ZeRO-1 -> ZeRO-3 dp 4, tp 2 x pp 2, plain dp 4).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "parallel/comm.h"
#include "tests/model/tiny_config.h"
#include "train/distributed.h"
#include "train/distributed_checkpoint.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

// 4.4M parameters (17.6 MB; 53 MB with the moments): large enough that a copy shows in the peak.
ModelConfig model() { return test::tiny_llama({4096, 256, 512, 4, 8, 4, 32, 64}); }

struct Layout {
  const char* name;
  int tp, pp, zero_stage;
};

RunConfig run_config(const Layout& l, int world) {
  RunConfig c;
  c.path = "test.toml";
  c.train.seq_length = 16;
  c.train.micro_batch_size = 1;
  c.train.global_batch_size = world / (l.tp * l.pp);
  c.parallel.tp = l.tp;
  c.parallel.pp = l.pp;
  c.parallel.zero_stage = l.zero_stage;
  return c;
}

// kB of a /proc/self/status line ("VmHWM", "VmRSS").
long status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::strlen(key) + 1));
  return -1;
}

// The peak resident set grown by `f`, in bytes (the high-water mark is reset first).
template <typename F>
double peak_growth(F&& f) {
  std::ofstream("/proc/self/clear_refs") << "5";
  const long before = status_kb("VmRSS");
  f();
  return double(status_kb("VmHWM") - before) * 1024.0;
}

// A fresh state for layout `l`: parameters by the usual initialization, moments made from them
// (finite, and different per element so that a misplaced slice shows).
void create(Distributed& d, const Layout& l, int world) {
  distributed_create(d, run_config(l, world), model(), 0);
  distributed_init_params(d, 0.02, 7);
}

void fill_moments(Distributed& d) {
  std::vector<float> full_m, full_v;
  const size_t n = d.full_layout.total;
  full_m.resize(n);
  full_v.resize(n);
  for (size_t i = 0; i < n; ++i) {
    full_m[i] = float(i % 1009) * 1e-3f - 0.5f;
    full_v[i] = float(i % 997) * 1e-4f;
  }
  distributed_load_moments(d, full_m.data(), full_v.data(), 3);
}

std::string root_dir(const char* name) {
  return (fs::current_path() / "test_tmp" / "sharded_checkpoint_mp" / name).string();
}

class ShardedCheckpointMp : public ::testing::Test {
 protected:
  Comm world = comm_world();
  void SetUp() override {
    if (world.size != 4) GTEST_SKIP() << "written for 4 processes";
  }
};

TEST_F(ShardedCheckpointMp, PeakMemoryOfACheckpointStaysNearTheRanksOwnShard) {
  for (const Layout& l : {Layout{"dp2_tp2_z1", 2, 1, 1}, Layout{"dp4_z3", 1, 1, 3}}) {
    const std::string root = root_dir(l.name);
    if (world.rank == 0) fs::remove_all(root);
    barrier(world);
    Distributed d;
    create(d, l, world.size);
    fill_moments(d);
    double own = 0;
    for (const ShardPiece& p : distributed_checkpoint_pieces(d))
      own += double(p.slice.end - p.slice.begin) * sizeof(float);
    std::string problem;
    const double sharded = peak_growth([&] {
      problem = distributed_checkpoint_save(d, root, 0, 1, {{"state.json", "{}\n"}});
    });
    EXPECT_EQ(problem, "");
    // The old way: every tensor gathered on the leader (3 x the model), then one file set.
    const size_t n = d.full_layout.total;
    const double gathered = peak_growth([&] {
      std::vector<float> full(d.leader ? 3 * n : 0);
      distributed_gather_full(d, full.data(), full.data() + n, full.data() + 2 * n);
    });
    std::vector<double> all(3 * size_t(world.size), 0.0);
    all[3 * size_t(world.rank)] = own;
    all[3 * size_t(world.rank) + 1] = sharded;
    all[3 * size_t(world.rank) + 2] = gathered;
    all_reduce_sum_f64(world, all);
    double written = 0;
    for (int r = 0; r < world.size; ++r) {
      written += all[3 * size_t(r)];
      if (world.rank == 0)
        std::printf(
            "%s rank %d: own shard %.1f MB, checkpoint peak growth %.1f MB (leader "
            "gather: %.1f MB)\n",
            l.name, r, all[3 * size_t(r)] / 1e6, all[3 * size_t(r) + 1] / 1e6,
            all[3 * size_t(r) + 2] / 1e6);
    }
    // Every element of parameters and moments written exactly once, over all ranks.
    EXPECT_EQ(written, 3.0 * double(n) * sizeof(float));
    // Near its own shard: the pieces are written from the live buffers (no copy), so the growth is
    // a few buffers of the writer at most; the gather took 3 x the model on the leader.
    EXPECT_LE(sharded, 0.25 * own + 4e6) << l.name << " rank " << world.rank;
    if (d.leader) {
      EXPECT_GE(gathered, 3.0 * double(n) * sizeof(float) * 0.9);
    }
    if (world.rank == 0) {
      ShardedCheckpoint c = sharded_open(root + "/step_000001");
      EXPECT_EQ(c.files.size(), 5u);  // four shards and state.json
    }
    distributed_free(d);
    barrier(world);
  }
}

// The state gathered into full buffers (leader), to compare layouts.
std::vector<float> gathered_state(Distributed& d) {
  const size_t n = d.full_layout.total;
  std::vector<float> full(3 * n);
  distributed_gather_full(d, full.data(), full.data() + n, full.data() + 2 * n);
  return full;
}

TEST_F(ShardedCheckpointMp, ACheckpointResumesBitIdenticalUnderOtherLayouts) {
  const std::string root = root_dir("reshard");
  if (world.rank == 0) fs::remove_all(root);
  barrier(world);
  const Layout written{"dp2_tp2_z1", 2, 1, 1};
  std::vector<float> want;
  {
    Distributed d;
    create(d, written, world.size);
    fill_moments(d);
    want = gathered_state(d);
    EXPECT_EQ(distributed_checkpoint_save(d, root, 0, 5, {{"state.json", "{}\n"}}), "");
    distributed_free(d);
  }
  for (const Layout& l : {Layout{"dp4_z3", 1, 1, 3}, Layout{"tp2_pp2", 2, 2, 0},
                          Layout{"dp4_z0", 1, 1, 0}, Layout{"dp2_tp2_z2", 2, 1, 2}}) {
    Distributed d;
    distributed_create(d, run_config(l, world.size), model(), 0);
    ShardedCheckpoint c = sharded_open(root + "/step_000005");
    distributed_checkpoint_restore(d, c);
    sharded_release(c);
    std::vector<float> got = gathered_state(d);
    if (d.leader) {
      ASSERT_EQ(got.size(), want.size());
      EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0) << l.name;
    }
    distributed_free(d);
  }
}

}  // namespace
}  // namespace hibari
