// parallel/pipeline.h — the 1F1B pipeline schedule over a pp communicator: Megatron-LM's
// non-interleaved schedule (forward_backward_pipelining_without_interleaving) with its
// point-to-point calls (p2p_communication), driving the model through callbacks so that parallel/
// need not know the model.
//
// S = stages (pp.size), M = micro-batches, k = this stage (pp.rank). Stage k runs
//     warmup    W = min(S - k - 1, M) forwards,
//     steady    M - W times: one forward, then one backward,
//     cooldown  W backwards.
// Backwards come in forward order, so at most pipeline_slots() = min(S - k, M) micro-batches have
// saved activations at once: the earlier the stage, the more it holds (stage 0 holds S). A
// micro-batch keeps its slot from its forward input to the end of its backward; slot = m % slots.
//
// Communication (Megatron's calls; each is ONE send_recv, both halves posted at once):
//     recv_forward                 before a warmup forward, and before the first steady forward
//     send_forward                 after a warmup forward
//     send_forward_recv_backward   after a steady forward (its output out, the next backward's
//                                  output gradient in)
//     send_backward_recv_forward   after a steady backward but the last (its input gradient out,
//                                  the next forward's input in, into the slot just freed)
//     send_backward                after the last steady backward and after a cooldown backward
//     recv_backward                before a cooldown backward
// Halves without a peer (forward out of the last stage, backward out of the first) are dropped.
// Where stage k sends with a combined call, stage k + 1 receives in the matching combined call
// (steady phases line up: W_{k+1} = W_k - 1), and where one side is plain the other is too, so the
// calls pair one to one and no (S, M) can deadlock; tests/parallel/pipeline_test.cpp checks this
// with a rendezvous simulation (no send completes before its receive is posted) for many (S, M).
#pragma once

#include <cstddef>
#include <vector>

#include "parallel/comm.h"

namespace hibari {

enum class PipelineOpKind { forward, backward };

// One compute step of a stage: the forward or backward of a micro-batch, whose saved activations
// live in activation slot `slot`.
struct PipelineOp {
  PipelineOpKind kind = PipelineOpKind::forward;
  int micro_batch = 0;
  int slot = 0;
  bool operator==(const PipelineOp&) const = default;
};

// Pure functions of (stage, stages, micro_batches), 0 <= stage < stages, micro_batches >= 1.
int pipeline_warmup(int stage, int stages, int micro_batches);  // W = min(S - k - 1, M)
int pipeline_slots(int stage, int stages, int micro_batches);   // min(S - k, M)
// The compute order of one stage (2M ops).
std::vector<PipelineOp> pipeline_1f1b_order(int stage, int stages, int micro_batches);

// One send_recv of a stage with its neighbours. Each field is the micro-batch carried, or -1; at
// most one send and one receive are set.
struct PipelineTransfer {
  int send_forward = -1;   // output(slot) to stage + 1
  int recv_backward = -1;  // into doutput, from stage + 1
  int send_backward = -1;  // dinput to stage - 1
  int recv_forward = -1;   // into input(slot), from stage - 1
  int slot = -1;           // the slot of send_forward or recv_forward
  bool operator==(const PipelineTransfer&) const = default;
};
// Megatron's name of the call: "recv_forward", "send_forward_recv_backward", ...
const char* pipeline_transfer_name(const PipelineTransfer& transfer);

// A stage's whole schedule, compute and communication in the order they run.
struct PipelineStep {
  bool is_transfer = false;
  PipelineOp op;              // when !is_transfer
  PipelineTransfer transfer;  // when is_transfer
};
std::vector<PipelineStep> pipeline_1f1b_steps(int stage, int stages, int micro_batches);

// What the schedule drives on one stage. The buffers belong to the caller; each holds
// stage_floats floats, and no two of them overlap (a combined send_recv reads one while writing
// another).
struct PipelineStage {
  void* context = nullptr;
  size_t stage_floats = 0;  // floats of one activation (and of its gradient)
  // Runs the forward of micro-batch m in slot s. On a non-first stage the received input is
  // already in input(context, s); the first stage loads micro-batch m itself. On a non-last stage
  // the output to send is output(context, s) after the call.
  void (*forward)(void* context, int micro_batch, int slot) = nullptr;
  // Runs the backward of micro-batch m in slot s. On a non-last stage the output gradient is
  // already in doutput(context); the last stage starts from its loss. On a non-first stage the
  // input gradient to send is dinput(context) after the call. Slot s is free once this returns.
  void (*backward)(void* context, int micro_batch, int slot) = nullptr;
  float* (*input)(void* context, int slot) = nullptr;         // non-first stages
  const float* (*output)(void* context, int slot) = nullptr;  // non-last stages
  float* (*doutput)(void* context) = nullptr;                 // non-last stages
  const float* (*dinput)(void* context) = nullptr;            // non-first stages
};

// Runs the forwards and backwards of micro-batches 0 .. micro_batches-1 on stage pp.rank of
// pp.size, exchanging activations and gradients with stages pp.rank -/+ 1. Collective over pp:
// every stage calls it with the same micro_batches. Allocates nothing.
void pipeline_run_1f1b(Comm& pp, int micro_batches, const PipelineStage& stage);

}  // namespace hibari
