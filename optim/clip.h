// optim/clip.h — global-norm gradient clipping, as torch.nn.utils.clip_grad_norm_:
//   norm = sqrt(sum of all g^2);  g *= min(1, max_norm / (norm + 1e-6)).
#pragma once

#include <cstddef>

namespace hibari {

// Returns the norm before clipping.  max_norm <= 0 only measures.
double clip_grad_norm(float* grads, size_t n, double max_norm);
// The scaling step alone, for a norm measured elsewhere (over the shards of many processes).
void clip_grads_to_norm(float* grads, size_t n, double norm, double max_norm);

}  // namespace hibari
