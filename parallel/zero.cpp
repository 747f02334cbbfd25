// parallel/zero.cpp — see zero.h.
#include "parallel/zero.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/adamw.h"

namespace hibari {

namespace {

int shard_size(const Zero& z) { return z.shard->size; }

BucketRange my_block(const Zero& z, const ZeroGroup& g) {
  return even_block(g.range.size(), z.shard->size, z.shard->rank);
}

bool is_pinned(const Zero& z, size_t group) { return group == 0 || group + 1 == z.groups.size(); }

// The slot that holds (or will hold) `group`: pinned groups have their own (slots 0 and 1; a
// single group uses slot 0 only); layer groups take the least recently used of the rotating ones,
// never the one used last (it may still be in use), preferring a free one.
ZeroSlot& slot_for(Zero& z, std::vector<ZeroSlot>& slots, size_t group) {
  if (group == 0) return slots[0];
  if (group + 1 == z.groups.size()) return slots[1];
  for (size_t i = 2; i < slots.size(); ++i)
    if (slots[i].group == int(group)) return slots[i];
  ZeroSlot* best = nullptr;
  for (size_t i = 2; i < slots.size(); ++i) {
    ZeroSlot& s = slots[i];
    if (s.group < 0) return s;
    if (best == nullptr || s.last_use < best->last_use) best = &s;
  }
  check(best != nullptr, "ZeRO: no working buffer for a layer group");
  return *best;
}

// Starts gathering `group`'s parameters into `slot` (stage 3).
void start_gather(Zero& z, ZeroSlot& slot, size_t group) {
  const ZeroGroup& g = z.groups[group];
  const size_t p = size_t(shard_size(z));
  std::span<const float> mine(z.params.data() + g.shard_offset, g.shard_floats);
  slot.group = int(group);
  slot.gathering = true;
  if (!z.options.quantized_gather) {
    slot.request =
        all_gather_start(*z.shard, std::span(slot.data.data(), p * g.shard_floats), mine);
    return;
  }
  const size_t bytes = quantized_bytes(g.shard_floats);
  quantize_blockwise(std::span(slot.quant_send.data(), bytes), mine);
  slot.request = all_gather_bytes_start(*z.shard, std::span(slot.quant_recv.data(), p * bytes),
                                        std::span(slot.quant_send.data(), bytes));
}

void finish_gather(Zero& z, ZeroSlot& slot) {
  if (!slot.gathering) return;
  comm_wait(slot.request);
  slot.gathering = false;
  if (!z.options.quantized_gather) return;
  const ZeroGroup& g = z.groups[size_t(slot.group)];
  const size_t bytes = quantized_bytes(g.shard_floats);
  for (int r = 0; r < shard_size(z); ++r) {
    dequantize_blockwise(std::span(slot.data.data() + size_t(r) * g.shard_floats, g.shard_floats),
                         std::span(slot.quant_recv.data() + size_t(r) * bytes, bytes));
  }
}

// Reduce-scatters a gradient slot into this rank's block and clears the slot (stages 2-3).
void reduce_slot(Zero& z, ZeroSlot& slot, bool release) {
  const ZeroGroup& g = z.groups[size_t(slot.group)];
  const size_t p = size_t(shard_size(z));
  reduce_scatter_sum(*z.shard, std::span(z.reduced.data(), g.shard_floats),
                     std::span<const float>(slot.data.data(), p * g.shard_floats));
  float* block = z.grads.data() + g.shard_offset;
  for (size_t i = 0; i < g.shard_floats; ++i) block[i] += z.reduced[i];
  std::fill(slot.data.begin(), slot.data.end(), 0.0f);
  slot.unreduced = false;
  if (release) slot.group = -1;
}

std::vector<ZeroSlot> make_slots(const Zero& z, size_t rotating) {
  const size_t p = size_t(shard_size(z));
  size_t layer_floats = 0;
  for (size_t i = 1; i + 1 < z.groups.size(); ++i)
    layer_floats = std::max(layer_floats, p * z.groups[i].shard_floats);
  std::vector<ZeroSlot> slots(z.groups.size() > 1 ? 2 + rotating : 1);
  slots[0].data.assign(p * z.groups.front().shard_floats, 0.0f);
  if (z.groups.size() > 1) slots[1].data.assign(p * z.groups.back().shard_floats, 0.0f);
  for (size_t i = 2; i < slots.size(); ++i) slots[i].data.assign(layer_floats, 0.0f);
  return slots;
}

}  // namespace

void zero_create(Zero& z, const ZeroOptions& options, Comm& shard, Comm* replica,
                 const std::vector<BucketRange>& groups, size_t total, float* full_params,
                 float* full_grads) {
  check(options.stage >= 0 && options.stage <= 3,
        "ZeRO stage " + std::to_string(options.stage) + " does not exist (0, 1, 2 or 3)");
  check(!options.quantized_gather || options.stage == 3,
        "quantized all-gather applies to ZeRO stage 3 (parameters gathered every step)");
  check(replica == nullptr || options.stage >= 2,
        "hybrid sharding needs ZeRO stage 2 or 3 (stages 0 and 1 reduce over every dp rank at "
        "once)");
  check(!groups.empty(), "ZeRO: no parameter groups");
  z = Zero{};
  z.options = options;
  z.shard = &shard;
  z.replica = replica;
  z.dp_size = shard.size * (replica ? replica->size : 1);
  z.total = total;
  size_t expected_begin = 0;
  for (const BucketRange& r : groups) {
    check(r.begin == expected_begin && r.end >= r.begin,
          "ZeRO: parameter groups must cover the buffer in order");
    expected_begin = r.end;
    size_t sf = (r.size() + size_t(shard.size) - 1) / size_t(shard.size);
    z.groups.push_back({r, sf, z.shard_total});
    z.shard_total += sf;
  }
  check(expected_begin == total, "ZeRO: parameter groups must cover the whole buffer");
  z.full_params = options.stage <= 2 ? full_params : nullptr;
  z.full_grads = options.stage <= 1 ? full_grads : nullptr;
  check(options.stage == 3 || full_params != nullptr, "ZeRO stages 0-2 need the full parameters");
  check(options.stage >= 2 || full_grads != nullptr, "ZeRO stages 0-1 need the full gradients");
  if (options.stage == 3) z.params.assign(z.shard_total, 0.0f);
  if (options.stage >= 1) z.grads.assign(z.shard_total, 0.0f);
  if (options.stage == 1) {
    for (const ZeroGroup& g : z.groups) {
      std::vector<int> counts;
      for (int r = 0; r < shard.size; ++r)
        counts.push_back(int(even_block(g.range.size(), shard.size, r).size()));
      z.block_counts.push_back(std::move(counts));
    }
  }
  size_t largest = 0;
  for (const ZeroGroup& g : z.groups) largest = std::max(largest, g.shard_floats);
  if (options.stage >= 2) {
    z.grad_slots = make_slots(z, 2);
    z.reduced.assign(largest, 0.0f);
  }
  if (options.stage == 3) {
    z.param_slots = make_slots(z, 2);
    if (options.quantized_gather) {
      for (ZeroSlot& s : z.param_slots) {
        size_t floats = s.data.size() / size_t(shard.size);
        s.quant_send.assign(quantized_bytes(floats), 0);
        s.quant_recv.assign(size_t(shard.size) * quantized_bytes(floats), 0);
      }
    }
  }
  if (options.stage <= 1) z.reductions.resize(z.groups.size());
}

void zero_take_block(const Zero& z, const float* full, float* shard) {
  for (const ZeroGroup& g : z.groups) {
    BucketRange b = my_block(z, g);
    std::copy(full + g.range.begin + b.begin, full + g.range.begin + b.end, shard + g.shard_offset);
    std::fill(shard + g.shard_offset + b.size(), shard + g.shard_offset + g.shard_floats, 0.0f);
  }
}

void zero_load_params(Zero& z, const float* full) {
  if (z.options.stage == 3) zero_take_block(z, full, z.params.data());
  zero_release_params(z);
}

void zero_gather_full(Zero& z, const float* shard, float* full) {
  const size_t p = size_t(shard_size(z));
  std::vector<float> gathered;  // a checkpoint's path, not the step's: allocating is fine
  for (const ZeroGroup& g : z.groups) {
    gathered.resize(p * g.shard_floats);
    all_gather(*z.shard, gathered, std::span(shard + g.shard_offset, g.shard_floats));
    std::copy(gathered.begin(), gathered.begin() + ptrdiff_t(g.range.size()), full + g.range.begin);
  }
}

std::vector<ShardRange> zero_shard_ranges(const Zero& z, size_t offset, size_t numel) {
  std::vector<ShardRange> out;
  for (const ZeroGroup& g : z.groups) {
    BucketRange b = my_block(z, g);
    size_t lo = std::max(offset, g.range.begin + b.begin);
    size_t hi = std::min(offset + numel, g.range.begin + b.end);
    if (lo >= hi) continue;
    out.push_back({g.shard_offset + (lo - g.range.begin - b.begin), hi - lo, lo});
  }
  return out;
}

void zero_begin_step(Zero& z) {
  std::fill(z.grads.begin(), z.grads.end(), 0.0f);
  for (ZeroSlot& s : z.grad_slots) {
    std::fill(s.data.begin(), s.data.end(), 0.0f);
    s.group = -1;
    s.unreduced = false;
  }
  z.next_reduction = 0;
  z.backward = false;
}

float* zero_use_params(Zero& z, size_t group, float** grads) {
  check(group < z.groups.size(), "ZeRO: parameter group " + std::to_string(group) + " of " +
                                     std::to_string(z.groups.size()));
  const ZeroGroup& g = z.groups[group];
  ++z.clock;
  *grads = nullptr;
  if (z.options.stage <= 1) *grads = z.full_grads + g.range.begin;
  // Gradient buffers: a pinned group always has its own (the head writes them in the forward
  // pass); a layer gets one when its backward begins.
  if (z.options.stage >= 2 && (z.backward || is_pinned(z, group))) {
    ZeroSlot& s = slot_for(z, z.grad_slots, group);
    if (s.group != int(group)) {
      check(s.group < 0, "ZeRO: a layer's gradients were not reduced before its buffer was reused");
      s.group = int(group);  // slots are zero when free
    }
    s.last_use = z.clock;
    s.unreduced = true;
    *grads = s.data.data();
  }
  float* params = nullptr;
  if (z.options.stage <= 2) {
    params = z.full_params + g.range.begin;
  } else {
    ZeroSlot& s = slot_for(z, z.param_slots, group);
    if (s.group != int(group)) {
      finish_gather(z, s);  // a prefetch of another group that was not needed after all
      start_gather(z, s, group);
    }
    finish_gather(z, s);
    s.last_use = z.clock;
    params = s.data.data();
    // Prefetch the layer that comes next in the direction of travel (forward: up, backward:
    // down) into the other rotating slot while this one computes.
    int next = z.last_group >= 0 && int(group) < z.last_group ? int(group) - 1 : int(group) + 1;
    if (next > 0 && size_t(next) + 1 < z.groups.size()) {
      ZeroSlot& n = slot_for(z, z.param_slots, size_t(next));
      if (n.group != next && &n != &s) {
        finish_gather(z, n);
        start_gather(z, n, size_t(next));
        n.last_use = z.clock - 1;
      }
    }
  }
  z.last_group = int(group);
  return params;
}

// Stages 0-1: starts the reduction of `group`'s gradients over the dp ranks (all-reduce in place,
// or reduce-scatter into this rank's block).
void start_reduction(Zero& z, size_t group) {
  const ZeroGroup& g = z.groups[group];
  std::span<float> full(z.full_grads + g.range.begin, g.range.size());
  CommRequest& request = z.reductions[z.next_reduction++];
  if (z.options.stage == 0) {
    request = all_reduce_sum_start(*z.shard, full);
    return;
  }
  const std::vector<int>& counts = z.block_counts[group];
  request = reduce_scatter_sum_start(
      *z.shard, std::span(z.grads.data() + g.shard_offset, size_t(counts[size_t(z.shard->rank)])),
      full, counts.data());
}

void zero_grads_done(Zero& z, size_t group) {
  if (z.options.stage <= 1) {
    if (!z.last_micro_batch || z.dp_size == 1) return;
    check(group + 1 + z.next_reduction == z.groups.size(),
          "ZeRO: gradients of group " + std::to_string(group) +
              " finished out of order (groups finish from the last to the first)");
    for (size_t i = 0; i < z.next_reduction; ++i) comm_test(z.reductions[i]);
    start_reduction(z, group);
    return;
  }
  ZeroSlot& s = slot_for(z, z.grad_slots, group);
  check(s.group == int(group), "ZeRO: gradients of group " + std::to_string(group) +
                                   " finished without a buffer (use_params was not called)");
  reduce_slot(z, s, !is_pinned(z, group));
}

void zero_finish_grads(Zero& z) {
  const float dp = float(z.dp_size);
  if (z.options.stage <= 1 && z.dp_size == 1) {  // one replica: nothing to average
    if (z.options.stage == 1) zero_take_block(z, z.full_grads, z.grads.data());
    return;
  }
  if (z.options.stage <= 1) {
    // Groups backward did not report (none in a correct model) are reduced now, in order.
    while (z.next_reduction < z.groups.size())
      start_reduction(z, z.groups.size() - 1 - z.next_reduction);
    for (CommRequest& request : z.reductions) comm_wait(request);
    z.next_reduction = 0;
    if (z.options.stage == 0) {
      for (size_t i = 0; i < z.total; ++i) z.full_grads[i] /= dp;
      return;
    }
  } else {
    // Slots whose gradients backward did not report (a pinned group used only in a forward:
    // nothing was added, but every rank reduces it alike).
    for (ZeroSlot& s : z.grad_slots)
      if (s.group >= 0 && s.unreduced) reduce_slot(z, s, true);
    if (z.replica != nullptr) all_reduce_sum(*z.replica, z.grads);
  }
  for (float& g : z.grads) g /= dp;
}

double zero_grad_sum_squares(Zero& z, std::span<const WeightedRange> scaled) {
  auto squares = [](const float* x, size_t n) { return cpu::sum_of_squares(x, n); };
  double sum = 0;
  if (z.options.stage == 0) {
    sum = squares(z.full_grads, z.total);
    for (const WeightedRange& w : scaled)
      sum += (w.weight - 1.0) * squares(z.full_grads + w.offset, w.numel);
    return sum;
  }
  // Each rank counts its blocks (their padding is zero).
  sum = squares(z.grads.data(), z.grads.size());
  for (const WeightedRange& w : scaled)
    for (const ShardRange& r : zero_shard_ranges(z, w.offset, w.numel))
      sum += (w.weight - 1.0) * squares(z.grads.data() + r.offset, r.numel);
  all_reduce_sum_f64(*z.shard, std::span(&sum, 1));
  return sum;
}

std::span<float> zero_grads(Zero& z) {
  if (z.options.stage == 0) return {z.full_grads, z.total};
  return z.grads;
}

float* zero_params(Zero& z) { return z.options.stage <= 2 ? z.full_params : z.params.data(); }
bool zero_grads_sharded(const Zero& z) { return z.options.stage >= 1; }
bool zero_params_sharded(const Zero& z) { return z.options.stage == 3; }
size_t zero_state_floats(const Zero& z) { return z.options.stage == 0 ? z.total : z.shard_total; }

void zero_finish_step(Zero& z) {
  if (z.options.stage == 1 || z.options.stage == 2) {
    for (const ZeroGroup& g : z.groups)
      all_gather_even(*z.shard, std::span(z.full_params + g.range.begin, g.range.size()));
  }
  zero_release_params(z);
}

void zero_release_params(Zero& z) {
  for (ZeroSlot& s : z.param_slots) {
    finish_gather(z, s);
    s.group = -1;
  }
  z.last_group = -1;
}

ZeroMemory zero_memory(const Zero& z) {
  ZeroMemory m;
  const size_t full = z.total, shard = z.shard_total;
  m.params = z.options.stage <= 2 ? full : shard;
  m.grads = (z.options.stage <= 1 ? full : 0) + (z.options.stage >= 1 ? shard : 0);
  m.optimizer = 2 * zero_state_floats(z);
  for (const ZeroSlot& s : z.param_slots)
    m.working += s.data.size() + (s.quant_send.size() + s.quant_recv.size() + 3) / 4;
  for (const ZeroSlot& s : z.grad_slots) m.working += s.data.size();
  m.working += z.reduced.size();
  return m;
}

std::string zero_memory_line(const Zero& z) {
  ZeroMemory m = zero_memory(z);
  auto mib = [](size_t floats) { return double(floats) * 4.0 / double(1 << 20); };
  char line[320];
  std::snprintf(line, sizeof line,
                "ZeRO-%d over %d rank%s%s: params %.1f + grads %.1f + AdamW %.1f + working %.1f = "
                "%.1f MiB per rank, %.3f of plain DP's %.1f MiB",
                z.options.stage, z.shard->size, z.shard->size == 1 ? "" : "s",
                z.replica ? (" x " + std::to_string(z.replica->size) + " replicas").c_str() : "",
                mib(m.params), mib(m.grads), mib(m.optimizer), mib(m.working), mib(m.total()),
                double(m.total()) / double(4 * z.total), mib(4 * z.total));
  return line;
}

}  // namespace hibari
