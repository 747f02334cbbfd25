// kernels/cpu/cross_entropy.h — fused softmax + cross-entropy over the vocabulary, forward and
// backward in one pass over a chunk of logit rows (the caller walks the sequence chunk by chunk, so
// the full (N, V) logits never exist).  For row n with target y and lse = log(sum(exp(logits))):
//   loss[n] = lse - logits[y],   dlogits = (softmax(logits) - onehot(y)) * grad_scale.
// Rows whose target equals `ignore_index` get loss 0 and a zero gradient.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hibari::cpu {

constexpr int32_t ignore_index = -100;  // as PyTorch's CrossEntropyLoss and Hugging Face labels

// logits (n,V) are overwritten by dlogits; losses (n) written.
void softmax_cross_entropy(float* logits, float* losses, const int32_t* targets, size_t n, size_t V,
                           float grad_scale);
// Forward only (evaluation): losses (n) written, logits untouched.
void cross_entropy_loss(float* losses, const float* logits, const int32_t* targets, size_t n,
                        size_t V);

}  // namespace hibari::cpu
