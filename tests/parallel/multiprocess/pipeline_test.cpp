// parallel/pipeline.h on 2, 3 and 4 processes: a toy pipeline whose stage k computes
//     y = w_k * x + b_k   (elementwise over N floats)
// and whose last stage adds the loss L = sum_i (y_i - t_i)^2 over its micro-batch. After
// pipeline_run_1f1b the parameter gradients of every stage equal one process running the whole
// chain micro-batch by micro-batch, bit for bit: inputs, weights, biases and targets are small
// integers, so every gradient element stays an integer far below 2^24 and float arithmetic is exact
// in any order. (The loss of the large case exceeds 2^24 and rounds, but both sides add it in the
// same order.)
#include "parallel/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "parallel/grid.h"

namespace hibari {
namespace {

// Floats per activation. kSmall goes eagerly (copied into a buffer, the send returns at once);
// kLarge (200 KB) is far past the 4 KB eager limit of Open MPI's shared-memory transport, so each
// send waits for its receive: the protocol under which a mispaired schedule deadlocks.
constexpr size_t kSmall = 6;
constexpr size_t kLarge = 50000;

// Integer data, |x| <= 3, w in {-2, -1, 1, 2}, |b| <= 2, |t| <= 2. `replica` shifts the data so
// that concurrent pipelines (dp replicas) compute different things.
float input_of(int replica, int m, size_t i) {
  return float(int((m * 5 + i * 3 + replica * 2) % 7) - 3);
}
float target_of(int replica, int m, size_t i) { return float(int((m + 2 * i + replica) % 5) - 2); }
float weight_of(int k, size_t i) {
  const float w[4] = {-2, -1, 1, 2};
  return w[(k + i) % 4];
}
float bias_of(int k, size_t i) { return float(int((k * 3 + i) % 5) - 2); }

struct ToyStage {
  int stage = 0, stages = 1, replica = 0, slots = 1;
  size_t n = 0;                 // N, floats per activation
  std::vector<float> w, b;      // (N) parameters
  std::vector<float> dw, db;    // (N) gradients, accumulated (+=) over micro-batches
  std::vector<float> input;     // (slots, N) x of the micro-batch in each slot
  std::vector<float> output;    // (slots, N) y of the micro-batch in each slot
  std::vector<float> doutput;   // (N) dL/dy of the micro-batch being backpropagated
  std::vector<float> dinput;    // (N) dL/dx, sent to the stage before
  float loss = 0;               // last stage: sum over micro-batches
  std::vector<PipelineOp> ops;  // what the schedule ran, in order
  std::vector<float> saved;     // (M, 2N) x and y of each micro-batch, copied at its forward
  bool slots_intact = true;     // x and y still in their slot at the backward
};

ToyStage toy_make(int stage, int stages, int replica, int micro_batches, size_t n) {
  ToyStage t;
  t.n = n;
  const size_t N = n;
  t.stage = stage;
  t.stages = stages;
  t.replica = replica;
  t.slots = pipeline_slots(stage, stages, micro_batches);
  for (size_t i = 0; i < N; ++i) {
    t.w.push_back(weight_of(stage, i));
    t.b.push_back(bias_of(stage, i));
  }
  t.dw.assign(N, 0.0f);
  t.db.assign(N, 0.0f);
  t.input.assign(t.slots * N, 0.0f);
  t.output.assign(t.slots * N, 0.0f);
  t.doutput.assign(N, 0.0f);
  t.dinput.assign(N, 0.0f);
  t.saved.assign(size_t(micro_batches) * 2 * N, 0.0f);
  return t;
}

void toy_forward(void* context, int m, int slot) {
  ToyStage& t = *static_cast<ToyStage*>(context);
  const size_t N = t.n;
  t.ops.push_back({PipelineOpKind::forward, m, slot});
  float* x = &t.input[slot * N];
  float* y = &t.output[slot * N];
  if (t.stage == 0) {
    for (size_t i = 0; i < N; ++i) x[i] = input_of(t.replica, m, i);
  }
  for (size_t i = 0; i < N; ++i) y[i] = t.w[i] * x[i] + t.b[i];
  std::memcpy(&t.saved[m * 2 * N], x, N * sizeof(float));
  std::memcpy(&t.saved[m * 2 * N + N], y, N * sizeof(float));
}

void toy_backward(void* context, int m, int slot) {
  ToyStage& t = *static_cast<ToyStage*>(context);
  const size_t N = t.n;
  t.ops.push_back({PipelineOpKind::backward, m, slot});
  const float* x = &t.input[slot * N];
  const float* y = &t.output[slot * N];
  // The schedule must not have written into this slot since the forward of m.
  if (std::memcmp(x, &t.saved[m * 2 * N], N * sizeof(float)) != 0 ||
      std::memcmp(y, &t.saved[m * 2 * N + N], N * sizeof(float)) != 0) {
    t.slots_intact = false;
  }
  if (t.stage == t.stages - 1) {  // the loss: L = sum (y - t)^2, dL/dy = 2 (y - t)
    for (size_t i = 0; i < N; ++i) {
      const float diff = y[i] - target_of(t.replica, m, i);
      t.loss += diff * diff;
      t.doutput[i] = 2.0f * diff;
    }
  }
  for (size_t i = 0; i < N; ++i) {
    t.dw[i] += t.doutput[i] * x[i];
    t.db[i] += t.doutput[i];
    t.dinput[i] = t.w[i] * t.doutput[i];
  }
}

float* toy_input(void* context, int slot) {
  ToyStage& t = *static_cast<ToyStage*>(context);
  return &t.input[slot * t.n];
}
const float* toy_output(void* context, int slot) {
  const ToyStage& t = *static_cast<ToyStage*>(context);
  return &t.output[slot * t.n];
}
float* toy_doutput(void* context) { return static_cast<ToyStage*>(context)->doutput.data(); }
const float* toy_dinput(void* context) { return static_cast<ToyStage*>(context)->dinput.data(); }

PipelineStage toy_pipeline_stage(ToyStage& t) {
  PipelineStage s;
  s.context = &t;
  s.stage_floats = t.n;
  s.forward = toy_forward;
  s.backward = toy_backward;
  s.input = toy_input;
  s.output = toy_output;
  s.doutput = toy_doutput;
  s.dinput = toy_dinput;
  return s;
}

// One process, no schedule: every micro-batch through all stages and back, gradients summed.
struct Reference {
  std::vector<float> dw, db;  // (N) of the stage asked for
  float loss = 0;
};

Reference reference(int stage, int stages, int replica, int micro_batches, size_t N) {
  Reference r;
  r.dw.assign(N, 0.0f);
  r.db.assign(N, 0.0f);
  for (int m = 0; m < micro_batches; ++m) {
    std::vector<std::vector<float>> x(stages + 1, std::vector<float>(N));  // x[k]: input of k
    for (size_t i = 0; i < N; ++i) x[0][i] = input_of(replica, m, i);
    for (int k = 0; k < stages; ++k)
      for (size_t i = 0; i < N; ++i) x[k + 1][i] = weight_of(k, i) * x[k][i] + bias_of(k, i);
    std::vector<float> dy(N);
    for (size_t i = 0; i < N; ++i) {
      const float diff = x[stages][i] - target_of(replica, m, i);
      r.loss += diff * diff;
      dy[i] = 2.0f * diff;
    }
    for (int k = stages - 1; k >= 0; --k) {
      for (size_t i = 0; i < N; ++i) {
        if (k == stage) {
          r.dw[i] += dy[i] * x[k][i];
          r.db[i] += dy[i];
        }
        dy[i] = weight_of(k, i) * dy[i];
      }
    }
  }
  return r;
}

int transfer_count(int stage, int stages, int micro_batches) {
  int calls = 0;
  for (const PipelineStep& s : pipeline_1f1b_steps(stage, stages, micro_batches))
    calls += s.is_transfer ? 1 : 0;
  return calls;
}

// Runs the toy over `pp` and checks gradients, loss, order, slots, bytes and the trace.
void run_and_check(Comm& pp, int replica, int micro_batches, size_t N) {
  SCOPED_TRACE("stage " + std::to_string(pp.rank) + " of " + std::to_string(pp.size) + ", " +
               std::to_string(micro_batches) + " micro-batches, replica " +
               std::to_string(replica) + ", " + std::to_string(N) + " floats");
  ToyStage toy = toy_make(pp.rank, pp.size, replica, micro_batches, N);
  const CommBytes bytes_before = pp.bytes;
  const uint64_t calls_before = collective_trace().calls.load();

  pipeline_run_1f1b(pp, micro_batches, toy_pipeline_stage(toy));

  Reference want = reference(pp.rank, pp.size, replica, micro_batches, N);
  EXPECT_EQ(toy.dw, want.dw);
  EXPECT_EQ(toy.db, want.db);
  if (pp.rank == pp.size - 1) {
    EXPECT_EQ(toy.loss, want.loss);
    EXPECT_GT(want.loss, 0.0f);
  }
  EXPECT_EQ(toy.ops, pipeline_1f1b_order(pp.rank, pp.size, micro_batches));
  EXPECT_TRUE(toy.slots_intact) << "an input or output slot was overwritten while in use";
  // Each micro-batch's activation goes forward once and its gradient back once.
  const uint64_t one_way = uint64_t(micro_batches) * N * sizeof(float);
  const uint64_t neighbours = (pp.rank > 0 ? 1 : 0) + (pp.rank < pp.size - 1 ? 1 : 0);
  EXPECT_EQ(pp.bytes.point_to_point - bytes_before.point_to_point, neighbours * one_way);
  EXPECT_EQ(comm_bytes_total(pp.bytes) - comm_bytes_total(bytes_before), neighbours * one_way);
  // One send_recv per call of the plan, and none in progress once the schedule returns.
  EXPECT_EQ(collective_trace().calls.load() - calls_before,
            uint64_t(transfer_count(pp.rank, pp.size, micro_batches)));
  EXPECT_EQ(collective_trace().current.load(), nullptr);
}

TEST(Pipeline, EveryRankAStageGradientsEqualOneProcess) {
  Comm world = comm_world();
  Comm pp = comm_split(world, 0, world.rank, "pp");
  for (int micro_batches : {1, 2, 3, 4, 7}) run_and_check(pp, 0, micro_batches, kSmall);
  comm_free(pp);
}

// 200 KB messages: every send waits for its receive, so only a schedule whose calls pair up
// finishes (ctest's timeout turns a deadlock into a failure).
TEST(Pipeline, LargeActivationsDoNotDeadlock) {
  Comm world = comm_world();
  Comm pp = comm_split(world, 0, world.rank, "pp");
  for (int micro_batches : {1, 3, 4, 7}) run_and_check(pp, 0, micro_batches, kLarge);
  comm_free(pp);
}

TEST(Pipeline, TraceShowsNothingCurrentAfterwards) {
  Comm world = comm_world();
  Comm pp = comm_split(world, 0, world.rank, "pp");
  ToyStage toy = toy_make(pp.rank, pp.size, 0, 3, kSmall);
  pipeline_run_1f1b(pp, 3, toy_pipeline_stage(toy));
  const CollectiveTrace& trace = collective_trace();
  EXPECT_EQ(trace.current.load(), nullptr);
  // The last call a stage made was a point-to-point call of the pp group.
  EXPECT_STREQ(trace.group.load(), "pp");
  // Every stage ends on a plain call of one activation: recv_backward on the first stage,
  // send_backward on the others.
  EXPECT_EQ(trace.floats.load(), kSmall);
  comm_free(pp);
}

// Pipelines of the grid's pp groups, side by side: on 4 processes dp 2 x pp 2, each dp replica
// its own data; on 2 and 3 processes, pp over the whole world through the grid.
TEST(Pipeline, GridPipelinesRunSideBySide) {
  Comm world = comm_world();
  GridSizes sizes{.dp = world.size % 2 == 0 && world.size > 2 ? 2 : 1, .tp = 1, .pp = 0};
  sizes.pp = world.size / sizes.dp;
  Grid grid = grid_make(world, sizes);
  for (int micro_batches : {1, 3, 4, 7})
    run_and_check(grid.pp, grid.coord.dp, micro_batches, kSmall);
  grid_free(grid);
}

}  // namespace
}  // namespace hibari
