// train/distributed_checkpoint.h — a multi-process run's checkpoints in the sharded format
// (checkpoint/sharded_checkpoint.h): every rank writes what it owns, and reads back only what it
// needs, whatever layout wrote the checkpoint.
//
// What a rank writes, for each parameter of its (tp, pp) shard: the elements of its ZeRO block
// (parallel/zero.h: an even block of every parameter group over the `shard` communicator; at stage
// 0 the same blocks split the writing of the replicated state) of the parameters, exp_avg and
// exp_avg_sq, as pieces "box of the tp part, flat range of the block".  A tp-replicated tensor
// (norm weights) is written by tp rank 0 only, a hybrid run's state by its first replica only, so
// every element is written exactly once and no rank holds more than its own state: no gather, no
// copy (the pieces point into the live buffers; the write is synchronous).
//
// Reading (resume): each rank reads its parameters' tp boxes (ZeRO-3: through a buffer of its
// (tp, pp) shard, as a fresh initialization does) and its ZeRO blocks of the moments straight into
// its optimizer buffers.  A shard file is checked (XXH64) by the ranks that read it; the ranks
// agree, and all of them fall back to the previous checkpoint when any found one corrupt.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/sharded_checkpoint.h"
#include "data/loader.h"
#include "train/distributed.h"

namespace hibari {

// The pieces this rank writes (pointing into its live buffers).
std::vector<ShardPiece> distributed_checkpoint_pieces(Distributed& d);

// state.json of a checkpoint: {"step", "optimizer_step", "loader": the loader's state}.
std::string training_state_json(int64_t step, int64_t optimizer_step, Loader& loader);

// Writes ROOT/step_N in the sharded format: shard files by every rank, then `text_files`
// (state.json, config.json, run.toml: the leader's count) and the manifest by the leader, renamed
// into place, `latest` moved, the newest `keep` kept.  Collective.  Returns "" or the problem (a
// NaN refused on some rank, a failed write: nothing of this step is left, the previous checkpoint
// stays the latest).
std::string distributed_checkpoint_save(Distributed& d, const std::string& root, int keep,
                                        int64_t step,
                                        const std::map<std::string, std::string>& text_files);

// This rank's parameters (its tp boxes), AdamW moments (its ZeRO blocks) from `c`, read slice by
// slice; an Error when a shard it reads is corrupt.  Not the optimizer step (state.json).
void distributed_checkpoint_restore(Distributed& d, ShardedCheckpoint& c);

// Resumes from the newest checkpoint under ROOT when it is in the sharded format (corrupt ones
// skipped, with a line in `notes`, down to the first one that is not sharded): parameters, moments
// and optimizer step restored on every rank; sets `step` and `dir` and returns the loader state.
// std::nullopt when ROOT's newest intact checkpoint is not sharded (or there is none): the caller
// reads it as before.  A checkpoint of another model is an Error naming its config.json.
// Collective.
std::optional<LoaderState> distributed_checkpoint_resume(Distributed& d, const std::string& root,
                                                         const ModelConfig& model, int64_t& step,
                                                         std::string& dir,
                                                         std::vector<std::string>& notes);

}  // namespace hibari
