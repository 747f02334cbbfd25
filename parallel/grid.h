// parallel/grid.h — the process grid dp x tp x pp and its sub-communicators.
//
// Rank order is Megatron-LM's default (parallel_state.initialize_model_parallel,
// order="tp-cp-ep-dp-pp" with cp = ep = 1): tp varies fastest, then dp, then pp:
//     rank = tp_rank + tp * (dp_rank + dp * pp_rank)
// so a tensor-parallel group is tp adjacent ranks (on one node when tp <= ranks per node, where
// its per-layer all-reduces belong), and a pipeline stage is a contiguous block of dp * tp ranks.
// Inside every sub-communicator, a rank's rank is its coordinate along that axis.
#pragma once

#include <vector>

#include "parallel/comm.h"

namespace hibari {

struct GridSizes {
  int dp = 1;
  int tp = 1;
  int pp = 1;
};

struct GridCoord {
  int dp = 0;
  int tp = 0;
  int pp = 0;
  bool operator==(const GridCoord&) const = default;
};

enum class GridAxis { dp, tp, pp };

// An Error naming the three sizes unless each is >= 1 and their product is world_size.
void grid_check(GridSizes sizes, int world_size);
// Pure functions of the layout (no MPI): the coordinates of a rank, the rank at coordinates, and
// the world ranks of the group along `axis` that holds `rank`, in the group's own rank order.
GridCoord grid_coord(int rank, GridSizes sizes);
int grid_rank(GridCoord coord, GridSizes sizes);
std::vector<int> grid_group(int rank, GridSizes sizes, GridAxis axis);
// Every dp x tp x pp whose product is `world`, dp slowest (for tests and for naming the choices).
std::vector<GridSizes> grid_layouts(int world);

// This rank's place in the grid and its three sub-communicators (each from comm_split over the
// world; released by grid_free).
struct Grid {
  GridSizes sizes;
  GridCoord coord;
  Comm dp;  // the dp ranks holding the same model shard: gradients are averaged here
  Comm tp;  // the tp ranks splitting one layer's tensors
  Comm pp;  // the pp stages of one model replica
};

// Collective over `world`.
Grid grid_make(const Comm& world, GridSizes sizes);
void grid_free(Grid& grid);

}  // namespace hibari
