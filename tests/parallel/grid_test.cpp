// parallel/grid.h: coordinates and groups as pure functions of (rank, dp, tp, pp), for every layout
// of 8 ranks, and Megatron-LM's documented 16-GPU example; the grid of a 1-rank world.
#include "parallel/grid.h"

#include <gtest/gtest.h>

#include <set>
#include <tuple>
#include <vector>

#include "tests/error_matchers.h"
#include "tests/parallel/mpi_environment.h"

namespace hibari {
namespace {

TEST(Grid, EveryLayoutOfEightRanksIsABijection) {
  std::vector<GridSizes> layouts = grid_layouts(8);
  EXPECT_EQ(layouts.size(), 10u);  // ordered factorizations of 2^3 into three factors
  for (GridSizes s : layouts) {
    SCOPED_TRACE(testing::Message() << "dp=" << s.dp << " tp=" << s.tp << " pp=" << s.pp);
    std::set<std::tuple<int, int, int>> seen;
    for (int r = 0; r < 8; ++r) {
      GridCoord c = grid_coord(r, s);
      EXPECT_TRUE(c.dp >= 0 && c.dp < s.dp && c.tp >= 0 && c.tp < s.tp && c.pp >= 0 && c.pp < s.pp);
      EXPECT_EQ(grid_rank(c, s), r);
      // tp fastest, then dp, then pp (Megatron's tp-cp-ep-dp-pp).
      EXPECT_EQ(c.tp, r % s.tp);
      EXPECT_EQ(c.dp, (r / s.tp) % s.dp);
      EXPECT_EQ(c.pp, r / (s.tp * s.dp));
      seen.insert({c.dp, c.tp, c.pp});
      // A group along an axis holds r, has that axis' size, and is ordered by the coordinate.
      for (GridAxis axis : {GridAxis::dp, GridAxis::tp, GridAxis::pp}) {
        std::vector<int> g = grid_group(r, s, axis);
        int n = axis == GridAxis::dp ? s.dp : axis == GridAxis::tp ? s.tp : s.pp;
        int at = axis == GridAxis::dp ? c.dp : axis == GridAxis::tp ? c.tp : c.pp;
        ASSERT_EQ(int(g.size()), n);
        EXPECT_EQ(g[size_t(at)], r);
        for (int member : g) {
          GridCoord m = grid_coord(member, s);
          // Members differ from r only along `axis`.
          EXPECT_EQ(axis == GridAxis::dp || m.dp == c.dp, true);
          EXPECT_EQ(axis == GridAxis::tp || m.tp == c.tp, true);
          EXPECT_EQ(axis == GridAxis::pp || m.pp == c.pp, true);
        }
      }
    }
    EXPECT_EQ(seen.size(), 8u);
  }
}

// The example in the docstring of Megatron-LM's initialize_model_parallel: 16 GPUs, tp=2, pp=4,
// dp=2.
TEST(Grid, MegatronSixteenGpuExample) {
  GridSizes s{.dp = 2, .tp = 2, .pp = 4};
  EXPECT_EQ(grid_group(0, s, GridAxis::tp), (std::vector<int>{0, 1}));
  EXPECT_EQ(grid_group(14, s, GridAxis::tp), (std::vector<int>{14, 15}));
  EXPECT_EQ(grid_group(0, s, GridAxis::dp), (std::vector<int>{0, 2}));
  EXPECT_EQ(grid_group(1, s, GridAxis::dp), (std::vector<int>{1, 3}));
  EXPECT_EQ(grid_group(13, s, GridAxis::dp), (std::vector<int>{13, 15}));
  EXPECT_EQ(grid_group(0, s, GridAxis::pp), (std::vector<int>{0, 4, 8, 12}));
  EXPECT_EQ(grid_group(7, s, GridAxis::pp), (std::vector<int>{3, 7, 11, 15}));
}

TEST(Grid, SizesThatDoNotMultiplyToTheWorldAreAnError) {
  std::string msg = test::error_of([] { grid_check({.dp = 2, .tp = 2, .pp = 1}, 8); });
  EXPECT_NE(msg.find("dp=2 x tp=2 x pp=1 = 4"), std::string::npos) << msg;
  EXPECT_NE(msg.find("8 processes"), std::string::npos) << msg;
  EXPECT_NE(test::error_of([] { grid_check({.dp = 0, .tp = 1, .pp = 1}, 0); }), "");
  EXPECT_EQ(test::error_of([] { grid_check({.dp = 2, .tp = 2, .pp = 2}, 8); }), "");
}

TEST(Grid, OneRankWorld) {
  Comm world = comm_world();
  EXPECT_NE(test::error_of([&] { grid_make(world, {.dp = 2}); }), "");
  Grid grid = grid_make(world, {});
  EXPECT_EQ(grid.coord, (GridCoord{}));
  for (const Comm* c : {&grid.dp, &grid.tp, &grid.pp}) {
    EXPECT_EQ(c->size, 1);
    EXPECT_EQ(c->rank, 0);
  }
  grid_free(grid);
}

}  // namespace
}  // namespace hibari
