#include "optim/adamw.h"

#include <cmath>

#include "core/error.h"
#include "kernels/cpu/adamw.h"

namespace hibari {

void adamw_create(AdamW& opt, const AdamWConfig& config, std::vector<ParamRange> ranges,
                  size_t total) {
  for (const ParamRange& r : ranges) check(r.offset + r.numel <= total, "AdamW: range past end");
  opt.config = config;
  opt.ranges = std::move(ranges);
  opt.m.assign(total, 0.0f);
  opt.v.assign(total, 0.0f);
  opt.step = 0;
}

void adamw_step(AdamW& opt, float* params, const float* grads, float lr) {
  opt.step += 1;
  const AdamWConfig& c = opt.config;
  // Bias corrections in double, then rounded once, as torch computes them in Python floats.
  float bc1 = float(1.0 - std::pow(double(c.beta1), double(opt.step)));
  float bc2 = float(1.0 - std::pow(double(c.beta2), double(opt.step)));
  for (const ParamRange& r : opt.ranges) {
    cpu::AdamWStep s{.lr = lr,
                     .beta1 = c.beta1,
                     .beta2 = c.beta2,
                     .eps = c.eps,
                     .weight_decay = r.weight_decay ? c.weight_decay : 0.0f,
                     .bias_correction1 = bc1,
                     .bias_correction2 = bc2};
    size_t param_offset = r.param_offset == kSameOffset ? r.offset : r.param_offset;
    size_t grad_offset = r.grad_offset == kSameOffset ? r.offset : r.grad_offset;
    cpu::adamw_update(params + param_offset, opt.m.data() + r.offset, opt.v.data() + r.offset,
                      grads + grad_offset, r.numel, s);
  }
}

}  // namespace hibari
