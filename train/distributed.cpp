// train/distributed.cpp — see distributed.h.
#include "train/distributed.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "kernels/cpu/adamw.h"
#include "optim/clip.h"
#include "parallel/pipeline.h"

namespace hibari {

namespace {

// The embedding and output matrices, whose first rows a continual-pretraining run with an
// extended vocabulary may keep fixed.
bool is_vocab_matrix(const ParamInfo& p) {
  return p.name == "model.embed_tokens.weight" || p.name == "lm_head.weight";
}

// Of the globally frozen rows [0, frozen_rows), how many lie in this rank's part of `p`: a
// vocabulary-parallel matrix holds rows [tp_rank * rows, (tp_rank + 1) * rows).
size_t local_frozen_rows(const ParamInfo& p, const ModelShard& shard, size_t frozen_rows) {
  if (!is_vocab_matrix(p)) return 0;
  size_t first = p.split == ShardSplit::rows ? size_t(shard.tp_rank) * p.shape[0] : 0;
  return std::min(p.shape[0], frozen_rows > first ? frozen_rows - first : 0);
}

// What AdamW updates, in the coordinates of the buffers it runs on (the flat buffer at ZeRO stage
// 0, this rank's blocks otherwise): every parameter less the frozen vocabulary rows, so neither
// their moments nor weight decay touch them.
std::vector<ParamRange> adamw_ranges(const Distributed& d, size_t frozen_rows) {
  std::vector<ParamRange> ranges;
  for (const ParamInfo& p : d.model.layout.params) {
    size_t skip = local_frozen_rows(p, d.model_shard, frozen_rows) * p.shape[1];
    if (p.numel <= skip) continue;
    if (d.zero.options.stage == 0) {
      ranges.push_back({p.offset + skip, p.numel - skip, p.weight_decay});
      continue;
    }
    for (const ShardRange& r : zero_shard_ranges(d.zero, p.offset + skip, p.numel - skip)) {
      ranges.push_back({.offset = r.offset,
                        .numel = r.numel,
                        .weight_decay = p.weight_decay,
                        .param_offset = zero_params_sharded(d.zero) ? r.offset : r.full_offset,
                        .grad_offset = zero_grads_sharded(d.zero) ? r.offset : r.full_offset});
    }
  }
  return ranges;
}

// Hooks the model calls; ZeRO decides where each group's parameters and gradients are.
void use_params_hook(void* context, size_t group) {
  Distributed& d = *static_cast<Distributed*>(context);
  float* grads = nullptr;
  float* params = zero_use_params(d.zero, group, &grads);
  llama_point_group(d.model, group, params, grads);
}

void grads_done_hook(void* context, size_t group) {
  zero_grads_done(static_cast<Distributed*>(context)->zero, group);
}

// The pipeline's view of the model and the data.
void mark(Distributed& d, const char* phase) {
  if (d.watchdog) watchdog_enter(*d.watchdog, phase, d.step);
}

void pipeline_forward(void* context, int micro, int slot) {
  Distributed& d = *static_cast<Distributed*>(context);
  const ModelShard& s = d.model_shard;
  mark(d, "data");
  loader_read_micro_batch(*d.loader, micro, d.inputs.data(), d.targets.data());
  mark(d, "forward");
  d.loss_sum += llama_forward(d.model, s.first_stage ? d.inputs.data() : nullptr,
                              s.last_stage ? d.targets.data() : nullptr, d.B, d.T,
                              1.0f / float(d.accumulation), size_t(slot));
}

void pipeline_backward(void* context, int micro, int slot) {
  Distributed& d = *static_cast<Distributed*>(context);
  mark(d, "backward");
  d.zero.last_micro_batch = micro + 1 == d.accumulation;
  d.zero.backward = true;
  llama_backward(d.model, size_t(slot));
  d.zero.backward = false;
}

float* pipeline_input(void* context, int slot) {
  return llama_stage_input(static_cast<Distributed*>(context)->model, size_t(slot));
}
const float* pipeline_output(void* context, int slot) {
  return llama_stage_output(static_cast<Distributed*>(context)->model, size_t(slot));
}
float* pipeline_doutput(void* context) {
  return llama_stage_doutput(static_cast<Distributed*>(context)->model);
}
const float* pipeline_dinput(void* context) {
  return llama_stage_dinput(static_cast<Distributed*>(context)->model);
}

// Where the model reads its parameters from, laid out as model.layout (stage 3: none; a
// temporary buffer stands in).
float* local_params(Distributed& d) {
  if (d.zero.options.stage <= 1) return d.model.params;
  if (d.zero.options.stage == 2) return d.full_params.data();
  return nullptr;
}

// The shard of the rank at grid coordinates (tp, pp), as that rank built it.
ModelShard shard_at(const Distributed& d, int tp, int pp) {
  ModelShard s = pipeline_stage(d.model.config, pp, d.grid.sizes.pp);
  s.tp_size = d.grid.sizes.tp;
  s.tp_rank = tp;
  s.sequence_parallel = d.model_shard.sequence_parallel;
  return s;
}

}  // namespace

void distributed_create(Distributed& d, const RunConfig& c, const ModelConfig& mc,
                        size_t frozen_rows) {
  const ParallelSection& par = c.parallel;
  const TrainSection& t = c.train;
  d.world = comm_world();
  const int model_ranks = int(par.tp * par.pp);
  if (d.world.size % model_ranks != 0)
    fail_file(c.path, "[parallel] tp x pp = " + std::to_string(model_ranks) +
                          " does not divide the " + std::to_string(d.world.size) + " processes");
  GridSizes sizes{.dp = d.world.size / model_ranks, .tp = int(par.tp), .pp = int(par.pp)};
  d.B = size_t(t.micro_batch_size);
  d.T = size_t(t.seq_length);
  if (t.global_batch_size % (t.micro_batch_size * sizes.dp) != 0)
    fail_file(c.path, "[train].global_batch_size " + std::to_string(t.global_batch_size) +
                          " is not a multiple of micro_batch_size x dp = " +
                          std::to_string(t.micro_batch_size) + " x " + std::to_string(sizes.dp));
  d.accumulation = t.global_batch_size / (t.micro_batch_size * sizes.dp);
  try {
    check_rampup(t.rampup_batch_size, t.global_batch_size, t.micro_batch_size * sizes.dp,
                 "[train].rampup_batch_size");
  } catch (const Error& e) {
    fail_file(c.path, e.what());
  }
  if (mc.tie_word_embeddings && sizes.pp > 1)
    fail_file(c.model.config,
              "tie_word_embeddings with pipeline parallelism (pp > 1) is not supported");
  if (par.shard_group > 0 && sizes.dp % par.shard_group != 0)
    fail_file(c.path, "[parallel].shard_group " + std::to_string(par.shard_group) +
                          " does not divide the " + std::to_string(sizes.dp) +
                          " data-parallel ranks");

  d.grid = grid_make(d.world, sizes);
  d.leader = d.world.rank == 0;
  ModelShard& s = d.model_shard;
  s = pipeline_stage(mc, d.grid.coord.pp, sizes.pp);
  s.tp_size = sizes.tp;
  s.tp_rank = d.grid.coord.tp;
  s.sequence_parallel = par.sequence_parallel;
  try {
    shard_check(mc, s, d.B * d.T);
  } catch (const Error& e) {
    fail_file(c.model.config,
              std::string("cannot split this model as [parallel] asks: ") + e.what());
  }
  const int stage = int(par.zero_stage);
  size_t slots =
      sizes.pp > 1 ? size_t(pipeline_slots(d.grid.coord.pp, sizes.pp, int(d.accumulation))) : 1;
  llama_create(d.model, mc, d.B, d.T, s, sizes.tp > 1 ? &d.grid.tp : nullptr, slots,
               {.own_parameters = stage <= 1});
  d.full_layout = llama_parameter_layout(mc);

  Comm* shard = &d.grid.dp;
  Comm* replica = nullptr;
  if (par.shard_group > 0 && par.shard_group < sizes.dp) {
    const int g = int(par.shard_group), r = d.grid.coord.dp;
    d.shard = comm_split(d.grid.dp, r / g, r % g, "zero");
    d.replica = comm_split(d.grid.dp, r % g, r / g, "replica");
    d.hybrid = true;
    shard = &d.shard;
    replica = &d.replica;
  }
  std::vector<BucketRange> groups;
  for (const ParamGroup& g : d.model.groups) groups.push_back({g.begin, g.end});
  if (stage == 2) d.full_params.assign(d.model.layout.total, 0.0f);
  float* full_params = stage <= 1 ? d.model.params : stage == 2 ? d.full_params.data() : nullptr;
  zero_create(d.zero, {.stage = stage, .quantized_gather = par.quantized_gather}, *shard, replica,
              groups, d.model.layout.total, full_params, stage <= 1 ? d.model.grads : nullptr);
  d.model.hooks.context = &d;
  if (stage >= 2) d.model.hooks.use_params = use_params_hook;
  if (stage >= 2 || d.zero.dp_size > 1) d.model.hooks.grads_done = grads_done_hook;

  if (sizes.tp > 1) {
    for (const ParamInfo& p : d.model.layout.params)
      if (p.tp_replicated) d.replicated.push_back({p.offset, p.numel, 1.0 / double(sizes.tp)});
  }
  adamw_create(d.optimizer,
               {.beta1 = float(c.optimizer.beta1),
                .beta2 = float(c.optimizer.beta2),
                .eps = float(c.optimizer.eps),
                .weight_decay = float(c.optimizer.weight_decay)},
               adamw_ranges(d, frozen_rows), zero_state_floats(d.zero));
  d.inputs.assign(d.B * d.T, 0);
  d.targets.assign(d.B * d.T, 0);
}

void distributed_free(Distributed& d) {
  if (d.hybrid) {
    comm_free(d.shard);
    comm_free(d.replica);
  }
  grid_free(d.grid);
}

void distributed_load_params(Distributed& d, const float* full) {
  float* local = local_params(d);
  std::vector<float> temporary;
  if (local == nullptr) {
    temporary.assign(d.model.layout.total, 0.0f);
    local = temporary.data();
  }
  llama_shard_extract(d.full_layout, full, d.model.layout, local, d.model_shard);
  zero_load_params(d.zero, local);
}

void distributed_init_params(Distributed& d, double initializer_range, uint64_t seed) {
  float* local = local_params(d);
  std::vector<float> temporary;
  if (local == nullptr) {
    temporary.assign(d.model.layout.total, 0.0f);
    local = temporary.data();
  }
  llama_init_parameters(local, d.model.layout, initializer_range, seed, d.model_shard);
  zero_load_params(d.zero, local);
}

void distributed_load_moments(Distributed& d, const float* full_m, const float* full_v,
                              int64_t optimizer_step) {
  d.optimizer.step = optimizer_step;
  if (d.zero.options.stage == 0) {
    llama_shard_extract(d.full_layout, full_m, d.model.layout, d.optimizer.m.data(), d.model_shard);
    llama_shard_extract(d.full_layout, full_v, d.model.layout, d.optimizer.v.data(), d.model_shard);
    return;
  }
  std::vector<float> local(d.model.layout.total);
  llama_shard_extract(d.full_layout, full_m, d.model.layout, local.data(), d.model_shard);
  zero_take_block(d.zero, local.data(), d.optimizer.m.data());
  llama_shard_extract(d.full_layout, full_v, d.model.layout, local.data(), d.model_shard);
  zero_take_block(d.zero, local.data(), d.optimizer.v.data());
}

double distributed_forward_backward(Distributed& d, Loader& loader) {
  zero_begin_step(d.zero);
  llama_zero_grads(d.model);
  d.loader = &loader;
  d.loss_sum = 0;
  // A batch-size ramp-up changes the micro-batches per step; the pipeline slots were sized for
  // the largest (the final global batch).
  d.accumulation = int64_t(loader.batch.size()) / (int64_t(d.B) * d.grid.sizes.dp);
  if (d.grid.sizes.pp == 1) {
    for (int64_t micro = 0; micro < d.accumulation; ++micro) {
      pipeline_forward(&d, int(micro), 0);
      pipeline_backward(&d, int(micro), 0);
    }
  } else {
    PipelineStage stage{.context = &d,
                        .stage_floats = llama_stage_floats(d.model),
                        .forward = pipeline_forward,
                        .backward = pipeline_backward,
                        .input = pipeline_input,
                        .output = pipeline_output,
                        .doutput = pipeline_doutput,
                        .dinput = pipeline_dinput};
    pipeline_run_1f1b(d.grid.pp, int(d.accumulation), stage);
  }
  // The loss lives on the last stage, once per tp group: one rank of each counts it.
  const bool counts = d.model_shard.last_stage && d.model_shard.tp_rank == 0;
  double mean = counts ? d.loss_sum / double(d.accumulation) : 0.0;
  return distributed_sum(d, mean) / double(d.grid.sizes.dp);
}

double distributed_finish_grads(Distributed& d, size_t frozen_rows, double max_norm) {
  zero_finish_grads(d.zero);
  std::span<float> grads = zero_grads(d.zero);
  if (frozen_rows > 0) {
    for (const ParamInfo& p : d.model.layout.params) {
      size_t rows = local_frozen_rows(p, d.model_shard, frozen_rows);
      if (rows == 0) continue;
      if (!zero_grads_sharded(d.zero)) {
        std::fill_n(grads.data() + p.offset, rows * p.shape[1], 0.0f);
        continue;
      }
      for (const ShardRange& r : zero_shard_ranges(d.zero, p.offset, rows * p.shape[1]))
        std::fill_n(grads.data() + r.offset, r.numel, 0.0f);
    }
  }
  double squares = zero_grad_sum_squares(d.zero, d.replicated);
  if (d.grid.sizes.tp > 1) all_reduce_sum_f64(d.grid.tp, std::span(&squares, 1));
  if (d.grid.sizes.pp > 1) all_reduce_sum_f64(d.grid.pp, std::span(&squares, 1));
  double norm = std::sqrt(squares);
  clip_grads_to_norm(grads.data(), grads.size(), norm, max_norm);
  return norm;
}

void distributed_optimizer_step(Distributed& d, float lr) {
  adamw_step(d.optimizer, zero_params(d.zero), zero_grads(d.zero).data(), lr);
  zero_finish_step(d.zero);
}

namespace {

// One evaluation forward of the micro-batch in d.inputs / d.targets through this rank's stage
// (activations from the stage before, to the stage after): its loss on the rank that reports it
// (last stage, tp rank 0), 0 elsewhere, so a sum over ranks counts each micro-batch once.
double eval_micro_batch(Distributed& d) {
  const ModelShard& s = d.model_shard;
  const int stage = d.grid.coord.pp;
  const size_t floats = llama_stage_floats(d.model);
  if (!s.first_stage)
    send_recv(d.grid.pp, {}, -1, std::span(llama_stage_input(d.model, 0), floats), stage - 1);
  const float loss = llama_forward(d.model, s.first_stage ? d.inputs.data() : nullptr,
                                   s.last_stage ? d.targets.data() : nullptr, d.B, d.T, 0.0f);
  if (!s.last_stage)
    send_recv(d.grid.pp, std::span(llama_stage_output(d.model, 0), floats), stage + 1, {}, -1);
  return s.last_stage && s.tp_rank == 0 ? loss : 0.0;
}

}  // namespace

std::vector<double> distributed_validation(Distributed& d, Loader& loader, int64_t eval_batches) {
  std::vector<double> losses(loader.datasets.size(), std::numeric_limits<double>::quiet_NaN());
  for (size_t ds = 0; ds < loader.datasets.size(); ++ds) {
    if (eval_batches == 0 || loader_valid_samples(loader, ds) == 0) continue;
    double sum = 0;
    for (int64_t i = d.grid.coord.dp; i < eval_batches; i += d.grid.sizes.dp) {
      loader_read_valid(loader, ds, i * int64_t(d.B), d.inputs.data(), d.targets.data());
      sum += eval_micro_batch(d);
    }
    losses[ds] = distributed_sum(d, sum) / double(eval_batches);
  }
  return losses;
}

double distributed_eval_stream(Distributed& d, Loader& loader, int which, int64_t first,
                               int64_t micro_batches) {
  if (micro_batches == 0 || loader_eval_stream_size(loader, which) == 0)
    return std::numeric_limits<double>::quiet_NaN();
  double sum = 0;
  for (int64_t i = d.grid.coord.dp; i < micro_batches; i += d.grid.sizes.dp) {
    loader_read_eval_stream(loader, which, first + i * int64_t(d.B), d.inputs.data(),
                            d.targets.data());
    sum += eval_micro_batch(d);
  }
  return distributed_sum(d, sum) / double(micro_batches);
}

void distributed_gather_full(Distributed& d, float* params, float* m, float* v) {
  // This rank's unsharded state (model.layout), gathered over the ZeRO ranks where sharded.
  const size_t n = d.model.layout.total;
  std::vector<float> local_p, local_m, local_v;
  const float *p_src = local_params(d), *m_src = d.optimizer.m.data(),
              *v_src = d.optimizer.v.data();
  if (d.zero.options.stage >= 1) {
    local_m.resize(n);
    local_v.resize(n);
    zero_gather_full(d.zero, d.optimizer.m.data(), local_m.data());
    zero_gather_full(d.zero, d.optimizer.v.data(), local_v.data());
    m_src = local_m.data();
    v_src = local_v.data();
  }
  if (d.zero.options.stage == 3) {
    local_p.resize(n);
    zero_gather_full(d.zero, d.zero.params.data(), local_p.data());
    p_src = local_p.data();
  }
  // The dp-rank-0 copy of every (tp, pp) shard goes to the leader, which puts it in its place.
  if (d.grid.coord.dp != 0) return;
  if (!d.leader) {
    for (const float* src : {p_src, m_src, v_src}) send_recv(d.world, std::span(src, n), 0, {}, -1);
    return;
  }
  std::vector<float> received;
  for (int pp = 0; pp < d.grid.sizes.pp; ++pp) {
    for (int tp = 0; tp < d.grid.sizes.tp; ++tp) {
      ModelShard shard = shard_at(d, tp, pp);
      ParameterLayout layout = llama_parameter_layout(d.model.config, shard);
      int rank = grid_rank({.dp = 0, .tp = tp, .pp = pp}, d.grid.sizes);
      float* fulls[3] = {params, m, v};
      const float* mine[3] = {p_src, m_src, v_src};
      for (int k = 0; k < 3; ++k) {
        const float* src = mine[k];
        if (rank != 0) {
          received.resize(layout.total);
          send_recv(d.world, {}, -1, received, rank);
          src = received.data();
        }
        llama_shard_insert(d.full_layout, fulls[k], layout, src, shard);
      }
    }
  }
}

CommBytes distributed_bytes(const Distributed& d) {
  CommBytes sum;
  for (const Comm* c : {&d.world, &d.grid.dp, &d.grid.tp, &d.grid.pp, &d.shard, &d.replica})
    sum = comm_bytes_add(sum, c->bytes);
  return sum;
}

double distributed_sum(Distributed& d, double value) {
  if (d.world.size == 1) return value;
  all_reduce_sum_f64(d.world, std::span(&value, 1));
  return value;
}

}  // namespace hibari
