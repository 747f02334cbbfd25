// parallel/grid.h on 2, 3 and 4 processes.
#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "parallel/grid.h"

namespace hibari {
namespace {

TEST(Grid, SubCommunicatorsHaveTheRightMembers) {
  Comm world = comm_world();
  for (GridSizes s : grid_layouts(world.size)) {
    SCOPED_TRACE(testing::Message() << "dp=" << s.dp << " tp=" << s.tp << " pp=" << s.pp);
    Grid grid = grid_make(world, s);
    EXPECT_EQ(grid.coord, grid_coord(world.rank, s));
    for (GridAxis axis : {GridAxis::dp, GridAxis::tp, GridAxis::pp}) {
      Comm& c = axis == GridAxis::dp ? grid.dp : axis == GridAxis::tp ? grid.tp : grid.pp;
      int at = axis == GridAxis::dp   ? grid.coord.dp
               : axis == GridAxis::tp ? grid.coord.tp
                                      : grid.coord.pp;
      EXPECT_EQ(c.rank, at);
      std::vector<float> mine{float(world.rank)}, members(size_t(c.size));
      all_gather(c, members, mine);
      std::vector<int> got(members.begin(), members.end());
      EXPECT_EQ(got, grid_group(world.rank, s, axis));
    }
    grid_free(grid);
  }
}

TEST(Grid, WrongSizesAreAnErrorOnEveryRank) {
  Comm world = comm_world();
  EXPECT_THROW(grid_make(world, {.dp = world.size, .tp = 2, .pp = 1}), Error);
}

}  // namespace
}  // namespace hibari
