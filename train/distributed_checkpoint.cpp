// train/distributed_checkpoint.cpp — see distributed_checkpoint.h.
#include "train/distributed_checkpoint.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "core/error.h"
#include "model/config.h"
#include "train/train_checkpoint.h"

namespace hibari {

namespace {

// The full tensor's shape and the box of it this rank's part of `p` is.
std::vector<int64_t> full_shape(const ParamInfo& p) {
  if (p.ndim == 1) return {int64_t(p.full_shape[0])};
  return {int64_t(p.full_shape[0]), int64_t(p.full_shape[1])};
}

TensorSlice tp_box(const ParamInfo& p, int tp_rank) {
  TensorSlice s = whole_slice(full_shape(p));
  if (p.split == ShardSplit::rows) {
    s.r0 = int64_t(tp_rank * p.shape[0]);
    s.r1 = s.r0 + int64_t(p.shape[0]);
  } else if (p.split == ShardSplit::cols) {
    s.c0 = int64_t(tp_rank * p.shape[1]);
    s.c1 = s.c0 + int64_t(p.shape[1]);
  }
  s.begin = 0;
  s.end = s.box_numel();
  return s;
}

// Where the model's parameters live laid out as model.layout (stages 0-2), as distributed.cpp.
float* unsharded_params(Distributed& d) {
  if (d.zero.options.stage <= 1) return d.model.params;
  if (d.zero.options.stage == 2) return d.full_params.data();
  return nullptr;
}

std::string layout_json(const Distributed& d) {
  nlohmann::json j = {{"processes", d.world.size},
                      {"dp", d.grid.sizes.dp},
                      {"tp", d.grid.sizes.tp},
                      {"pp", d.grid.sizes.pp},
                      {"zero_stage", d.zero.options.stage},
                      {"shard_group", d.hybrid ? d.shard.size : d.grid.sizes.dp}};
  return j.dump();
}

}  // namespace

std::vector<ShardPiece> distributed_checkpoint_pieces(Distributed& d) {
  std::vector<ShardPiece> pieces;
  if (d.hybrid && d.replica.rank != 0) return pieces;  // the first replica writes the state
  const int stage = d.zero.options.stage;
  const float* params = stage == 3 ? d.zero.params.data() : unsharded_params(d);
  for (const ParamInfo& p : d.model.layout.params) {
    if (p.tp_replicated && d.model_shard.tp_rank != 0) continue;
    const TensorSlice box = tp_box(p, d.model_shard.tp_rank);
    const std::vector<int64_t> shape = full_shape(p);
    for (const ShardRange& r : zero_shard_ranges(d.zero, p.offset, p.numel)) {
      TensorSlice s = box;
      s.begin = int64_t(r.full_offset - p.offset);
      s.end = s.begin + int64_t(r.numel);
      const size_t state_at = stage == 0 ? r.full_offset : r.offset;
      pieces.push_back({p.name, shape, s, stage == 3 ? params + r.offset : params + r.full_offset});
      pieces.push_back({"exp_avg." + p.name, shape, s, d.optimizer.m.data() + state_at});
      pieces.push_back({"exp_avg_sq." + p.name, shape, s, d.optimizer.v.data() + state_at});
    }
  }
  return pieces;
}

std::string training_state_json(int64_t step, int64_t optimizer_step, Loader& loader) {
  nlohmann::json state = {{"step", step},
                          {"optimizer_step", optimizer_step},
                          {"loader", loader_state_to_json(loader_checkpoint_state(loader))}};
  return state.dump(2) + "\n";
}

std::string distributed_checkpoint_save(Distributed& d, const std::string& root, int keep,
                                        int64_t step,
                                        const std::map<std::string, std::string>& text_files) {
  const int n = d.world.size;
  // The leader makes the step's temporary directory; its pid names it for every rank.
  std::string problem;
  std::vector<double> begin(2, 0.0);
  if (d.leader) {
    try {
      sharded_begin(root, step, long(::getpid()));
      begin[0] = double(::getpid());
    } catch (const std::exception& e) {
      problem = e.what();
      begin[1] = 1;
    }
  }
  all_reduce_sum_f64(d.world, begin);
  if (begin[1] > 0) return d.leader ? problem : "the leader could not start the checkpoint";
  char tmp_name[64];
  std::snprintf(tmp_name, sizeof tmp_name, "step_%06lld.tmp.%ld", (long long)step, long(begin[0]));
  const std::string tmp = root + "/" + tmp_name;

  // Every rank its own file, at once; then what each wrote (bytes, XXH64 in two exact halves).
  std::vector<double> written(3 * size_t(n) + 1, 0.0);
  const size_t me = size_t(d.world.rank);
  try {
    std::vector<ShardPiece> pieces = distributed_checkpoint_pieces(d);
    if (!pieces.empty()) {
      uint64_t bytes = 0;
      const uint64_t hash =
          write_shard_file(tmp + "/" + shard_file_name(d.world.rank), pieces, step, &bytes);
      written[3 * me] = double(bytes);
      written[3 * me + 1] = double(hash >> 32);
      written[3 * me + 2] = double(hash & 0xffffffffu);
    }
  } catch (const std::exception& e) {
    problem = std::string(e.what()) + " (rank " + std::to_string(d.world.rank) + ")";
    written.back() = 1;
  }
  all_reduce_sum_f64(d.world, written);
  if (!d.leader) return problem;
  std::error_code ec;
  if (written.back() > 0) {
    std::filesystem::remove_all(tmp, ec);
    return problem.empty() ? "checkpoint of step " + std::to_string(step) +
                                 " refused: another rank could not write its shard (its own "
                                 "line says why); the previous checkpoint stays the latest"
                           : problem;
  }
  try {
    std::vector<ShardFileRecord> shards;
    for (int r = 0; r < n; ++r) {
      if (written[3 * size_t(r)] == 0) continue;  // a rank that owns nothing wrote no file
      shards.push_back(
          {shard_file_name(r), uint64_t(written[3 * size_t(r)]),
           (uint64_t(written[3 * size_t(r) + 1]) << 32) | uint64_t(written[3 * size_t(r) + 2])});
    }
    write_sharded_manifest(tmp, step, shards, text_files, layout_json(d));
    sharded_commit(root, step, tmp, keep);
  } catch (const std::exception& e) {
    std::filesystem::remove_all(tmp, ec);
    return e.what();
  }
  return "";
}

void distributed_checkpoint_restore(Distributed& d, ShardedCheckpoint& c) {
  const int stage = d.zero.options.stage;
  const int tp_rank = d.model_shard.tp_rank;
  float* local = unsharded_params(d);
  std::vector<float> temporary;
  if (local == nullptr) {  // ZeRO-3: through the (tp, pp) shard's buffer, as an initialization
    temporary.assign(d.model.layout.total, 0.0f);
    local = temporary.data();
  }
  for (const ParamInfo& p : d.model.layout.params) {
    const TensorSlice box = tp_box(p, tp_rank);
    sharded_read(c, p.name, box, local + p.offset);
    if (stage == 0) {
      sharded_read(c, "exp_avg." + p.name, box, d.optimizer.m.data() + p.offset);
      sharded_read(c, "exp_avg_sq." + p.name, box, d.optimizer.v.data() + p.offset);
      continue;
    }
    for (const ShardRange& r : zero_shard_ranges(d.zero, p.offset, p.numel)) {
      TensorSlice s = box;
      s.begin = int64_t(r.full_offset - p.offset);
      s.end = s.begin + int64_t(r.numel);
      sharded_read(c, "exp_avg." + p.name, s, d.optimizer.m.data() + r.offset);
      sharded_read(c, "exp_avg_sq." + p.name, s, d.optimizer.v.data() + r.offset);
    }
  }
  zero_load_params(d.zero, local);
}

std::optional<LoaderState> distributed_checkpoint_resume(Distributed& d, const std::string& root,
                                                         const ModelConfig& model, int64_t& step,
                                                         std::string& dir,
                                                         std::vector<std::string>& notes) {
  for (const auto& [dir_step, path] : checkpoint_step_dirs(root)) {
    if (checkpoint_manifest_version(path) != kShardedCheckpointVersion) return std::nullopt;
    // Opening reads only the manifest and the small text files: every rank sees the same.
    std::string problem;
    std::optional<ShardedCheckpoint> c;
    try {
      c.emplace(sharded_open(path));
    } catch (const Error& e) {
      problem = e.what();
    }
    if (c) {
      const std::string config_path = path + "/config.json";
      nlohmann::json saved;
      try {
        saved = nlohmann::json::parse(c->text("config.json"));
      } catch (const nlohmann::json::exception&) {
        fail_file(config_path, "malformed JSON");
      }
      const nlohmann::json now = model_config_to_json(model);
      const std::string differences = config_differences(saved, now);
      if (!differences.empty())
        fail_file(config_path, "a checkpoint of another model: " + differences);
      try {
        distributed_checkpoint_restore(d, *c);
      } catch (const Error& e) {
        problem = e.what();
      }
    }
    double failed = problem.empty() ? 0.0 : 1.0;
    failed = distributed_sum(d, failed);
    if (failed > 0) {
      notes.push_back(
          "skipping a corrupt checkpoint: " +
          (problem.empty() ? path + ": a shard another rank reads is corrupt" : problem));
      continue;
    }
    const std::string state_path = path + "/state.json";
    try {
      nlohmann::json state = nlohmann::json::parse(c->text("state.json"));
      step = state.at("step").get<int64_t>();
      d.optimizer.step = state.at("optimizer_step").get<int64_t>();
      dir = path;
      return loader_state_from_json(state.at("loader"), state_path);
    } catch (const nlohmann::json::exception& e) {
      fail_file(state_path, std::string("malformed training state: ") + e.what());
    }
  }
  return std::nullopt;
}

}  // namespace hibari
