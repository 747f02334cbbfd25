// parallel/pipeline.h in one process: the 1F1B order and its invariants, the point-to-point plan
// of every stage played against its neighbours' plans (no deadlock, calls paired one to one), and
// the executor on a 1-stage pipeline. tests/parallel/multiprocess/pipeline_test.cpp runs it for
// real on 2, 3 and 4 processes.
#include "parallel/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/parallel/mpi_environment.h"

namespace hibari {
namespace {

constexpr PipelineOpKind F = PipelineOpKind::forward;
constexpr PipelineOpKind B = PipelineOpKind::backward;

// "F0 F1 B0 ..." (slots left out), for readable expectations.
std::string order_string(const std::vector<PipelineOp>& order) {
  std::string s;
  for (const PipelineOp& op : order) {
    if (!s.empty()) s += ' ';
    s += (op.kind == F ? "F" : "B") + std::to_string(op.micro_batch);
  }
  return s;
}

TEST(Pipeline, WarmupAndSlotsOfFourStagesEightMicroBatches) {
  // Megatron: num_warmup_microbatches = pipeline_parallel_size - pipeline_parallel_rank - 1.
  EXPECT_EQ(pipeline_warmup(0, 4, 8), 3);
  EXPECT_EQ(pipeline_warmup(1, 4, 8), 2);
  EXPECT_EQ(pipeline_warmup(2, 4, 8), 1);
  EXPECT_EQ(pipeline_warmup(3, 4, 8), 0);
  EXPECT_EQ(pipeline_slots(0, 4, 8), 4);
  EXPECT_EQ(pipeline_slots(3, 4, 8), 1);
  EXPECT_EQ(order_string(pipeline_1f1b_order(0, 4, 8)),
            "F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7");
  EXPECT_EQ(order_string(pipeline_1f1b_order(1, 4, 8)),
            "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 F6 B4 F7 B5 B6 B7");
  EXPECT_EQ(order_string(pipeline_1f1b_order(3, 4, 8)),
            "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7");
  // Slots on stage 0 (4 of them): F4 reuses slot 0, which B0 freed just before it.
  std::vector<PipelineOp> order = pipeline_1f1b_order(0, 4, 8);
  EXPECT_EQ(order[4], (PipelineOp{B, 0, 0}));
  EXPECT_EQ(order[5], (PipelineOp{F, 4, 0}));
  EXPECT_EQ(order[7], (PipelineOp{F, 5, 1}));
}

TEST(Pipeline, FewerMicroBatchesThanStages) {
  // The warmup is cut to M: the early stages run all forwards, then all backwards.
  EXPECT_EQ(pipeline_warmup(0, 4, 2), 2);
  EXPECT_EQ(pipeline_warmup(1, 4, 2), 2);
  EXPECT_EQ(pipeline_warmup(2, 4, 2), 1);
  EXPECT_EQ(pipeline_slots(0, 4, 2), 2);
  EXPECT_EQ(order_string(pipeline_1f1b_order(0, 4, 2)), "F0 F1 B0 B1");
  EXPECT_EQ(order_string(pipeline_1f1b_order(2, 4, 2)), "F0 F1 B0 B1");
  EXPECT_EQ(order_string(pipeline_1f1b_order(3, 4, 2)), "F0 B0 F1 B1");
  EXPECT_EQ(order_string(pipeline_1f1b_order(0, 5, 1)), "F0 B0");
  EXPECT_EQ(order_string(pipeline_1f1b_order(0, 1, 3)), "F0 B0 F1 B1 F2 B2");
}

TEST(Pipeline, RejectsBadArguments) {
  EXPECT_THROW(pipeline_1f1b_order(0, 4, 0), Error);
  EXPECT_THROW(pipeline_1f1b_order(4, 4, 2), Error);
  EXPECT_THROW(pipeline_1f1b_order(-1, 4, 2), Error);
  EXPECT_THROW(pipeline_slots(0, 0, 2), Error);
}

// Every invariant of the order, for many shapes: each micro-batch forward exactly once, then
// backward exactly once; forwards and backwards both in micro-batch order; in flight never more
// than the slots (and exactly the slots at the peak: fewer would waste the pipeline); a slot is
// taken only when free, and the backward uses the slot of its forward; the forwards before the
// first backward are Megatron's warmup plus the first steady forward.
TEST(Pipeline, OrderInvariantsForManyShapes) {
  for (int stages = 1; stages <= 8; ++stages) {
    for (int m = 1; m <= 12; ++m) {
      for (int k = 0; k < stages; ++k) {
        SCOPED_TRACE("stages " + std::to_string(stages) + " micro-batches " + std::to_string(m) +
                     " stage " + std::to_string(k));
        const int slots = pipeline_slots(k, stages, m);
        std::vector<PipelineOp> order = pipeline_1f1b_order(k, stages, m);
        ASSERT_EQ(order.size(), size_t(2 * m));
        std::vector<int> slot_owner(slots, -1);  // micro-batch holding each slot, -1 free
        int next_forward = 0, next_backward = 0, in_flight = 0, peak = 0;
        int forwards_before_first_backward = -1;
        for (const PipelineOp& op : order) {
          ASSERT_GE(op.slot, 0);
          ASSERT_LT(op.slot, slots);
          if (op.kind == F) {
            ASSERT_EQ(op.micro_batch, next_forward++);
            ASSERT_EQ(slot_owner[op.slot], -1) << "slot " << op.slot << " reused while taken";
            slot_owner[op.slot] = op.micro_batch;
            peak = std::max(peak, ++in_flight);
          } else {
            if (forwards_before_first_backward < 0) forwards_before_first_backward = next_forward;
            ASSERT_EQ(op.micro_batch, next_backward++);
            ASSERT_LT(op.micro_batch, next_forward) << "backward before its forward";
            ASSERT_EQ(slot_owner[op.slot], op.micro_batch) << "backward in another slot";
            slot_owner[op.slot] = -1;
            --in_flight;
          }
        }
        EXPECT_EQ(next_forward, m);
        EXPECT_EQ(next_backward, m);
        EXPECT_EQ(peak, slots);
        EXPECT_EQ(forwards_before_first_backward, std::min(pipeline_warmup(k, stages, m) + 1, m));
      }
    }
  }
}

std::vector<std::string> call_names(const std::vector<PipelineStep>& steps) {
  std::vector<std::string> names;
  for (const PipelineStep& s : steps) {
    if (s.is_transfer) {
      names.push_back(pipeline_transfer_name(s.transfer));
    } else {
      names.push_back((s.op.kind == F ? "F" : "B") + std::to_string(s.op.micro_batch));
    }
  }
  return names;
}

TEST(Pipeline, PointToPointCallsAreMegatrons) {
  using Names = std::vector<std::string>;
  // A middle stage of 4 over 4 micro-batches: warmup 2, steady 2, cooldown 2.
  EXPECT_EQ(call_names(pipeline_1f1b_steps(1, 4, 4)), (Names{"recv_forward",
                                                             "F0",
                                                             "send_forward",
                                                             "recv_forward",
                                                             "F1",
                                                             "send_forward",
                                                             "recv_forward",
                                                             "F2",
                                                             "send_forward_recv_backward",
                                                             "B0",
                                                             "send_backward_recv_forward",
                                                             "F3",
                                                             "send_forward_recv_backward",
                                                             "B1",
                                                             "send_backward",
                                                             "recv_backward",
                                                             "B2",
                                                             "send_backward",
                                                             "recv_backward",
                                                             "B3",
                                                             "send_backward"}));
  // The first stage receives no input and sends no gradient; the last sends no output and
  // receives no output gradient (its backward starts from the loss).
  EXPECT_EQ(call_names(pipeline_1f1b_steps(0, 2, 2)),
            (Names{"F0", "send_forward", "F1", "send_forward_recv_backward", "B0", "recv_backward",
                   "B1"}));
  EXPECT_EQ(call_names(pipeline_1f1b_steps(1, 2, 2)),
            (Names{"recv_forward", "F0", "B0", "send_backward_recv_forward", "F1", "B1",
                   "send_backward"}));
  // One stage: no communication at all.
  EXPECT_EQ(call_names(pipeline_1f1b_steps(0, 1, 2)), (Names{"F0", "B0", "F1", "B1"}));
  // The slot a combined receive writes is the one the backward before it freed.
  std::vector<PipelineStep> steps = pipeline_1f1b_steps(1, 4, 4);
  EXPECT_EQ(steps[8].transfer,
            (PipelineTransfer{.send_forward = 2, .recv_backward = 0, .slot = 2}));
  EXPECT_EQ(steps[9].op, (PipelineOp{B, 0, 0}));
  EXPECT_EQ(steps[10].transfer,
            (PipelineTransfer{.send_backward = 0, .recv_forward = 3, .slot = 0}));
}

// A micro-batch holds its slot from the moment its input lands (the receive, or the first stage's
// own forward) to the end of its backward. A receive writes only a free slot, the forward and the
// send find their micro-batch in the slot they name.
TEST(Pipeline, ReceivesWriteOnlyFreeSlots) {
  for (int stages = 1; stages <= 8; ++stages) {
    for (int m = 1; m <= 12; ++m) {
      for (int k = 0; k < stages; ++k) {
        SCOPED_TRACE("stages " + std::to_string(stages) + " micro-batches " + std::to_string(m) +
                     " stage " + std::to_string(k));
        std::vector<int> slot_owner(pipeline_slots(k, stages, m), -1);
        for (const PipelineStep& s : pipeline_1f1b_steps(k, stages, m)) {
          if (s.is_transfer) {
            const PipelineTransfer& t = s.transfer;
            if (t.recv_forward >= 0) {
              ASSERT_EQ(slot_owner.at(t.slot), -1) << "receive into a taken slot";
              slot_owner[t.slot] = t.recv_forward;
            }
            if (t.send_forward >= 0) {
              ASSERT_EQ(slot_owner.at(t.slot), t.send_forward);
            }
          } else if (s.op.kind == F) {
            if (k == 0) {
              ASSERT_EQ(slot_owner.at(s.op.slot), -1) << "forward into a taken slot";
              slot_owner[s.op.slot] = s.op.micro_batch;
            }
            ASSERT_EQ(slot_owner.at(s.op.slot), s.op.micro_batch) << "input not in its slot";
          } else {
            ASSERT_EQ(slot_owner.at(s.op.slot), s.op.micro_batch);
            slot_owner[s.op.slot] = -1;
          }
        }
      }
    }
  }
}

// Plays the plans of all stages against each other under the strictest semantics MPI allows:
// a send_recv posts its send and its receive together and returns only when both have met their
// peer's matching half (a send never completes into a buffer before its receive is posted). A
// half matches the peer's half carrying the same micro-batch in the other direction (messages
// between two ranks arrive in order, and every channel carries micro-batches 0, 1, 2, ... as
// checked below). Returns "" when every stage reaches its end, else what is stuck. `paired`
// counts the calls whose two halves met the same call on the peer.
struct Simulation {
  std::string stuck;
  int paired = 0;
  int combined = 0;  // calls with both a send and a receive
};

Simulation simulate(const std::vector<std::vector<PipelineStep>>& plans) {
  const int stages = int(plans.size());
  std::vector<size_t> pc(stages, 0);
  struct Pending {
    bool send_done = false, recv_done = false;
    int send_met_step = -1, recv_met_step = -1;  // the peer's step each half met
  };
  std::vector<Pending> pending(stages);
  Simulation result;
  auto current = [&](int k) -> const PipelineTransfer* {
    if (k < 0 || k >= stages || pc[k] >= plans[k].size()) return nullptr;
    return &plans[k][pc[k]].transfer;
  };
  for (bool progress = true; progress;) {
    progress = false;
    for (int k = 0; k < stages; ++k) {  // compute steps run without waiting
      while (pc[k] < plans[k].size() && !plans[k][pc[k]].is_transfer) {
        ++pc[k];
        progress = true;
      }
    }
    for (int k = 0; k < stages; ++k) {
      const PipelineTransfer* t = current(k);
      if (!t) continue;
      // The send halves of k meet the receive halves of its neighbours (each pair once: from the
      // sender's side).
      if (t->send_forward >= 0 && !pending[k].send_done) {
        const PipelineTransfer* peer = current(k + 1);
        if (peer && peer->recv_forward == t->send_forward && !pending[k + 1].recv_done) {
          pending[k].send_done = pending[k + 1].recv_done = true;
          pending[k].send_met_step = int(pc[k + 1]);
          pending[k + 1].recv_met_step = int(pc[k]);
        }
      }
      if (t->send_backward >= 0 && !pending[k].send_done) {
        const PipelineTransfer* peer = current(k - 1);
        if (peer && peer->recv_backward == t->send_backward && !pending[k - 1].recv_done) {
          pending[k].send_done = pending[k - 1].recv_done = true;
          pending[k].send_met_step = int(pc[k - 1]);
          pending[k - 1].recv_met_step = int(pc[k]);
        }
      }
    }
    for (int k = 0; k < stages; ++k) {
      const PipelineTransfer* t = current(k);
      if (!t) continue;
      const bool sends = t->send_forward >= 0 || t->send_backward >= 0;
      const bool recvs = t->recv_forward >= 0 || t->recv_backward >= 0;
      if ((sends && !pending[k].send_done) || (recvs && !pending[k].recv_done)) continue;
      if (sends && recvs) {
        ++result.combined;
        if (pending[k].send_met_step == pending[k].recv_met_step) ++result.paired;
      } else {
        ++result.paired;
      }
      pending[k] = Pending{};
      ++pc[k];
      progress = true;
    }
  }
  for (int k = 0; k < stages; ++k) {
    if (pc[k] < plans[k].size()) {
      result.stuck += "stage " + std::to_string(k) + " stuck in " +
                      pipeline_transfer_name(plans[k][pc[k]].transfer) + "; ";
    }
  }
  return result;
}

TEST(Pipeline, NoStagesDeadlockAndCallsPairOneToOne) {
  for (int stages = 1; stages <= 8; ++stages) {
    for (int m = 1; m <= 12; ++m) {
      SCOPED_TRACE("stages " + std::to_string(stages) + " micro-batches " + std::to_string(m));
      std::vector<std::vector<PipelineStep>> plans;
      int calls = 0;
      for (int k = 0; k < stages; ++k) {
        plans.push_back(pipeline_1f1b_steps(k, stages, m));
        // Every channel carries micro-batches 0 .. M-1 in order, so in-order MPI matching pairs
        // the right messages.
        std::vector<int> sent_forward, received_forward, sent_backward, received_backward;
        for (const PipelineStep& s : plans.back()) {
          if (!s.is_transfer) continue;
          ++calls;
          const PipelineTransfer& t = s.transfer;
          ASSERT_FALSE(t.send_forward >= 0 && t.send_backward >= 0) << "two sends in one call";
          ASSERT_FALSE(t.recv_forward >= 0 && t.recv_backward >= 0) << "two receives in one call";
          if (t.send_forward >= 0) sent_forward.push_back(t.send_forward);
          if (t.recv_forward >= 0) received_forward.push_back(t.recv_forward);
          if (t.send_backward >= 0) sent_backward.push_back(t.send_backward);
          if (t.recv_backward >= 0) received_backward.push_back(t.recv_backward);
        }
        std::vector<int> all(m);
        for (int i = 0; i < m; ++i) all[i] = i;
        const std::vector<int> none;
        EXPECT_EQ(sent_forward, k < stages - 1 ? all : none);
        EXPECT_EQ(received_backward, k < stages - 1 ? all : none);
        EXPECT_EQ(received_forward, k > 0 ? all : none);
        EXPECT_EQ(sent_backward, k > 0 ? all : none);
      }
      Simulation sim = simulate(plans);
      EXPECT_EQ(sim.stuck, "");
      EXPECT_EQ(sim.paired, calls);  // every combined call met ONE call of its peer
      // Combined calls: each steady forward of a non-last stage (send_forward_recv_backward)
      // and each steady backward but the last of a non-first stage (send_backward_recv_forward).
      int combined = 0;
      for (int k = 0; k < stages; ++k) {
        const int steady = m - pipeline_warmup(k, stages, m);
        if (k < stages - 1) combined += steady;
        if (k > 0) combined += std::max(steady - 1, 0);
      }
      EXPECT_EQ(sim.combined, combined);
    }
  }
}

// The simulation can fail: a plan that posts a receive before a send its peer is waiting for
// deadlocks under rendezvous semantics.
TEST(Pipeline, SimulationFindsADeadlock) {
  auto transfer = [](PipelineTransfer t) {
    PipelineStep s;
    s.is_transfer = true;
    s.transfer = t;
    return s;
  };
  // Stage 0 waits for the gradient of micro-batch 0 before sending micro-batch 1; stage 1 wants
  // both inputs before it sends any gradient.
  std::vector<std::vector<PipelineStep>> plans = {
      {transfer({.send_forward = 0, .slot = 0}), transfer({.recv_backward = 0}),
       transfer({.send_forward = 1, .slot = 1}), transfer({.recv_backward = 1})},
      {transfer({.recv_forward = 0, .slot = 0}), transfer({.recv_forward = 1, .slot = 1}),
       transfer({.send_backward = 0}), transfer({.send_backward = 1})}};
  EXPECT_EQ(simulate(plans).stuck,
            "stage 0 stuck in recv_backward; stage 1 stuck in recv_forward; ");
  // A combined call that meets halves of two different peer calls is not counted as paired.
  plans = {{transfer({.send_forward = 0, .recv_backward = 0, .slot = 0})},
           {transfer({.recv_forward = 0, .slot = 0}), transfer({.send_backward = 0})}};
  Simulation sim = simulate(plans);
  EXPECT_EQ(sim.stuck, "");
  EXPECT_EQ(sim.combined, 1);
  EXPECT_EQ(sim.paired, 2);  // the two plain calls of stage 1, not the combined one of stage 0
}

// The executor on a 1-stage pipeline (this process's 1-rank world): the callbacks run in the
// schedule's order and nothing is sent.
struct Recorder {
  std::vector<PipelineOp> ops;
};
void record_forward(void* context, int m, int slot) {
  static_cast<Recorder*>(context)->ops.push_back({F, m, slot});
}
void record_backward(void* context, int m, int slot) {
  static_cast<Recorder*>(context)->ops.push_back({B, m, slot});
}

TEST(Pipeline, OneStageRunsTheOrderWithoutCommunication) {
  Comm world = comm_world();
  ASSERT_EQ(world.size, 1);
  Recorder recorder;
  PipelineStage stage;
  stage.context = &recorder;
  stage.stage_floats = 8;
  stage.forward = record_forward;
  stage.backward = record_backward;
  const uint64_t calls = collective_trace().calls.load();
  pipeline_run_1f1b(world, 5, stage);
  EXPECT_EQ(recorder.ops, pipeline_1f1b_order(0, 1, 5));
  EXPECT_EQ(order_string(recorder.ops), "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4");
  EXPECT_EQ(collective_trace().calls.load(), calls);
  EXPECT_EQ(comm_bytes_total(world.bytes), 0u);
  EXPECT_THROW(pipeline_run_1f1b(world, 0, stage), Error);
  stage.backward = nullptr;
  EXPECT_THROW(pipeline_run_1f1b(world, 5, stage), Error);
}

}  // namespace
}  // namespace hibari
