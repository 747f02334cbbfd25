// parallel/pipeline.cpp — see pipeline.h.
#include "parallel/pipeline.h"

#include <algorithm>
#include <span>
#include <string>

#include "core/error.h"

namespace hibari {
namespace {

void check_schedule(int stage, int stages, int micro_batches) {
  check(stages >= 1 && stage >= 0 && stage < stages,
        "pipeline: stage " + std::to_string(stage) + " outside 0.." + std::to_string(stages - 1));
  check(micro_batches >= 1,
        "pipeline: " + std::to_string(micro_batches) + " micro-batches (at least 1 needed)");
}

// Drops the halves that have no peer: nothing comes into the first stage from before it or goes
// back out of it, nothing goes forward out of the last stage or comes back into it.
PipelineTransfer with_peers_only(PipelineTransfer t, int stage, int stages) {
  if (stage == 0) t.recv_forward = t.send_backward = -1;
  if (stage == stages - 1) t.send_forward = t.recv_backward = -1;
  if (t.send_forward < 0 && t.recv_forward < 0) t.slot = -1;
  return t;
}

bool is_empty(const PipelineTransfer& t) {
  return t.send_forward < 0 && t.recv_backward < 0 && t.send_backward < 0 && t.recv_forward < 0;
}

// The schedule, step by step, as Megatron's forward_backward_pipelining_without_interleaving
// writes it. Both the plan (pipeline_1f1b_steps) and the executor walk this one function, so what
// the tests check is what runs, and the executor allocates nothing.
template <typename Visit>
void walk_1f1b(int stage, int stages, int micro_batches, Visit&& visit) {
  check_schedule(stage, stages, micro_batches);
  const int warmup = pipeline_warmup(stage, stages, micro_batches);
  const int remaining = micro_batches - warmup;
  const int slots = pipeline_slots(stage, stages, micro_batches);
  auto slot_of = [slots](int m) { return m % slots; };

  auto compute = [&](PipelineOpKind kind, int m) {
    PipelineStep step;
    step.op = {kind, m, slot_of(m)};
    visit(step);
  };
  auto transfer = [&](PipelineTransfer t) {
    t = with_peers_only(t, stage, stages);
    if (is_empty(t)) return;
    PipelineStep step;
    step.is_transfer = true;
    step.transfer = t;
    visit(step);
  };
  auto recv_forward = [&](int m) { transfer({.recv_forward = m, .slot = slot_of(m)}); };
  auto send_forward = [&](int m) { transfer({.send_forward = m, .slot = slot_of(m)}); };
  auto recv_backward = [&](int m) { transfer({.recv_backward = m}); };
  auto send_backward = [&](int m) { transfer({.send_backward = m}); };

  for (int m = 0; m < warmup; ++m) {
    recv_forward(m);
    compute(PipelineOpKind::forward, m);
    send_forward(m);
  }
  if (remaining > 0) recv_forward(warmup);
  for (int i = 0; i < remaining; ++i) {
    const int f = warmup + i;  // the steady phase's forward; i is its backward
    compute(PipelineOpKind::forward, f);
    transfer({.send_forward = f, .recv_backward = i, .slot = slot_of(f)});
    compute(PipelineOpKind::backward, i);
    if (i == remaining - 1) {
      send_backward(i);
    } else {
      // The next forward's input lands in the slot the backward above just freed:
      // slot_of(f + 1) == slot_of(i) because slots == warmup + 1 whenever remaining > 0.
      transfer({.send_backward = i, .recv_forward = f + 1, .slot = slot_of(f + 1)});
    }
  }
  for (int i = remaining; i < micro_batches; ++i) {
    recv_backward(i);
    compute(PipelineOpKind::backward, i);
    send_backward(i);
  }
}

}  // namespace

int pipeline_warmup(int stage, int stages, int micro_batches) {
  check_schedule(stage, stages, micro_batches);
  return std::min(stages - stage - 1, micro_batches);
}

int pipeline_slots(int stage, int stages, int micro_batches) {
  check_schedule(stage, stages, micro_batches);
  return std::min(stages - stage, micro_batches);
}

std::vector<PipelineOp> pipeline_1f1b_order(int stage, int stages, int micro_batches) {
  std::vector<PipelineOp> order;
  walk_1f1b(stage, stages, micro_batches, [&order](const PipelineStep& step) {
    if (!step.is_transfer) order.push_back(step.op);
  });
  return order;
}

std::vector<PipelineStep> pipeline_1f1b_steps(int stage, int stages, int micro_batches) {
  std::vector<PipelineStep> steps;
  walk_1f1b(stage, stages, micro_batches,
            [&steps](const PipelineStep& step) { steps.push_back(step); });
  return steps;
}

const char* pipeline_transfer_name(const PipelineTransfer& t) {
  if (t.send_forward >= 0)
    return t.recv_backward >= 0 ? "send_forward_recv_backward" : "send_forward";
  if (t.send_backward >= 0)
    return t.recv_forward >= 0 ? "send_backward_recv_forward" : "send_backward";
  if (t.recv_forward >= 0) return "recv_forward";
  if (t.recv_backward >= 0) return "recv_backward";
  return "none";
}

void pipeline_run_1f1b(Comm& pp, int micro_batches, const PipelineStage& stage) {
  const int k = pp.rank;
  const bool first = k == 0, last = k == pp.size - 1;
  check(stage.forward && stage.backward, "pipeline: forward and backward callbacks are required");
  check(first || (stage.input && stage.dinput),
        "pipeline: a non-first stage needs the input and dinput callbacks");
  check(last || (stage.output && stage.doutput),
        "pipeline: a non-last stage needs the output and doutput callbacks");
  check(stage.stage_floats > 0 || pp.size == 1, "pipeline: stage_floats is 0");
  const size_t n = stage.stage_floats;

  walk_1f1b(k, pp.size, micro_batches, [&](const PipelineStep& step) {
    if (!step.is_transfer) {
      auto run = step.op.kind == PipelineOpKind::forward ? stage.forward : stage.backward;
      run(stage.context, step.op.micro_batch, step.op.slot);
      return;
    }
    const PipelineTransfer& t = step.transfer;
    std::span<const float> send;
    int dest = -1;
    if (t.send_forward >= 0) {
      send = {stage.output(stage.context, t.slot), n};
      dest = k + 1;
    } else if (t.send_backward >= 0) {
      send = {stage.dinput(stage.context), n};
      dest = k - 1;
    }
    std::span<float> recv;
    int source = -1;
    if (t.recv_forward >= 0) {
      recv = {stage.input(stage.context, t.slot), n};
      source = k - 1;
    } else if (t.recv_backward >= 0) {
      recv = {stage.doutput(stage.context), n};
      source = k + 1;
    }
    send_recv(pp, send, dest, recv, source);
  });
}

}  // namespace hibari
