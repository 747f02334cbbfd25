// optim/adamw.h — AdamW over flat buffers (torch.optim.AdamW's update; see kernels/cpu/adamw.h).
// State m and v mirror the parameter buffer.  Parameters are updated range by range; a range says
// whether weight decay applies (norm weights get none), so the optimizer never sees names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hibari {

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
};

// A run of elements AdamW updates: m and v at `offset`, parameters and gradients there too unless
// they live in buffers of their own layout (ZeRO keeps the moments of only this rank's block, while
// the parameters and gradients it reads may be the full buffers).
inline constexpr size_t kSameOffset = ~size_t(0);
struct ParamRange {
  size_t offset, numel;
  bool weight_decay;
  size_t param_offset = kSameOffset;  // into `params` (kSameOffset: offset)
  size_t grad_offset = kSameOffset;   // into `grads` (kSameOffset: offset)
};

struct AdamW {
  AdamWConfig config;
  std::vector<ParamRange> ranges;
  std::vector<float> m, v;  // (total)
  int64_t step = 0;         // optimizer steps taken
};

// `total`: floats of m and v.
void adamw_create(AdamW& opt, const AdamWConfig& config, std::vector<ParamRange> ranges,
                  size_t total);
// One step at learning rate `lr`: params updated in place from grads.
void adamw_step(AdamW& opt, float* params, const float* grads, float lr);

}  // namespace hibari
