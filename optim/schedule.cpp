#include "optim/schedule.h"

#include <cmath>

#include "core/error.h"

namespace hibari {

double learning_rate(const LrSchedule& s, int64_t n) {
  if (s.warmup_steps > 0 && n <= s.warmup_steps) return s.lr * double(n) / double(s.warmup_steps);
  if (s.decay == LrDecay::constant) return s.lr;
  if (n > s.decay_steps) return s.min_lr;
  double span = double(s.decay_steps - s.warmup_steps);
  double r = span > 0 ? double(n - s.warmup_steps) / span : 1.0;
  double f =
      s.decay == LrDecay::cosine ? 0.5 * (1.0 + std::cos(3.14159265358979323846 * r)) : 1.0 - r;
  return s.min_lr + (s.lr - s.min_lr) * f;
}

LrDecay parse_lr_decay(const std::string& name) {
  if (name == "cosine") return LrDecay::cosine;
  if (name == "linear") return LrDecay::linear;
  if (name == "constant") return LrDecay::constant;
  fail("unknown lr decay \"" + name + "\" (expected cosine, linear or constant)");
}

}  // namespace hibari
