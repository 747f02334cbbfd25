// parallel/grid.cpp — see grid.h.
#include "parallel/grid.h"

#include <string>

#include "core/error.h"

namespace hibari {

void grid_check(GridSizes sizes, int world_size) {
  long product = long(sizes.dp) * sizes.tp * sizes.pp;
  if (sizes.dp < 1 || sizes.tp < 1 || sizes.pp < 1 || product != world_size) {
    fail("process grid dp=" + std::to_string(sizes.dp) + " x tp=" + std::to_string(sizes.tp) +
         " x pp=" + std::to_string(sizes.pp) + " = " + std::to_string(product) +
         " does not match the " + std::to_string(world_size) + " processes started");
  }
}

GridCoord grid_coord(int rank, GridSizes sizes) {
  return {
      .dp = rank / sizes.tp % sizes.dp, .tp = rank % sizes.tp, .pp = rank / (sizes.tp * sizes.dp)};
}

int grid_rank(GridCoord coord, GridSizes sizes) {
  return coord.tp + sizes.tp * (coord.dp + sizes.dp * coord.pp);
}

std::vector<int> grid_group(int rank, GridSizes sizes, GridAxis axis) {
  GridCoord c = grid_coord(rank, sizes);
  int n = axis == GridAxis::dp ? sizes.dp : axis == GridAxis::tp ? sizes.tp : sizes.pp;
  std::vector<int> ranks;
  for (int i = 0; i < n; ++i) {
    GridCoord member = c;
    (axis == GridAxis::dp ? member.dp : axis == GridAxis::tp ? member.tp : member.pp) = i;
    ranks.push_back(grid_rank(member, sizes));
  }
  return ranks;
}

Grid grid_make(const Comm& world, GridSizes sizes) {
  grid_check(sizes, world.size);
  Grid grid;
  grid.sizes = sizes;
  grid.coord = grid_coord(world.rank, sizes);
  const GridCoord& c = grid.coord;
  // Color: the coordinates along the other two axes; key: the coordinate along this one, so the
  // sub-communicator's rank is the coordinate.
  grid.dp = comm_split(world, c.pp * sizes.tp + c.tp, c.dp, "dp");
  grid.tp = comm_split(world, c.pp * sizes.dp + c.dp, c.tp, "tp");
  grid.pp = comm_split(world, c.dp * sizes.tp + c.tp, c.pp, "pp");
  return grid;
}

void grid_free(Grid& grid) {
  comm_free(grid.dp);
  comm_free(grid.tp);
  comm_free(grid.pp);
}

std::vector<GridSizes> grid_layouts(int world) {
  std::vector<GridSizes> out;
  for (int dp = 1; dp <= world; ++dp)
    for (int tp = 1; tp <= world; ++tp)
      for (int pp = 1; pp <= world; ++pp)
        if (dp * tp * pp == world) out.push_back({dp, tp, pp});
  return out;
}

}  // namespace hibari
