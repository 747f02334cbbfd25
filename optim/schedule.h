// optim/schedule.h — learning rate: linear warmup, then cosine or linear decay to a minimum.
// Megatron-LM's convention: for the n-th optimizer step (n = 1, 2, ...)
//   n <= warmup:          lr * n / warmup
//   warmup < n <= decay:  min_lr + (lr - min_lr) * f(r),  r = (n - warmup) / (decay - warmup),
//                         f = 0.5 (1 + cos(pi r)) for cosine, 1 - r for linear, 1 for constant
//   n > decay:            min_lr
#pragma once

#include <cstdint>
#include <string>

namespace hibari {

enum class LrDecay { cosine, linear, constant };

struct LrSchedule {
  double lr = 3e-4;
  double min_lr = 3e-5;
  int64_t warmup_steps = 0;
  int64_t decay_steps = 0;  // the step at which min_lr is reached
  LrDecay decay = LrDecay::cosine;
};

// Learning rate of optimizer step n (1-based).
double learning_rate(const LrSchedule& schedule, int64_t n);
// "cosine" | "linear" | "constant"; anything else throws.
LrDecay parse_lr_decay(const std::string& name);

}  // namespace hibari
