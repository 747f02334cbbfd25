// core/checked_math.h — size arithmetic that cannot wrap: every product or sum that sizes a buffer
// (parameter layouts, arenas, caches) goes through these, so a huge size from a file is an error
// instead of a too-small allocation written past its end.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/error.h"

namespace hibari {

// a * b, or an Error naming `what` when it does not fit in size_t.
inline size_t checked_mul(size_t a, size_t b, std::string_view what) {
  size_t r;
  if (__builtin_mul_overflow(a, b, &r))
    fail(std::string(what) + ": size overflows (" + std::to_string(a) + " x " + std::to_string(b) +
         ")");
  return r;
}

// a + b, or an Error naming `what` when it does not fit in size_t.
inline size_t checked_add(size_t a, size_t b, std::string_view what) {
  size_t r;
  if (__builtin_add_overflow(a, b, &r))
    fail(std::string(what) + ": size overflows (" + std::to_string(a) + " + " + std::to_string(b) +
         ")");
  return r;
}

// The product of all factors, checked at each step.
template <typename... Sizes>
size_t checked_product(std::string_view what, size_t first, Sizes... rest) {
  size_t r = first;
  ((r = checked_mul(r, size_t(rest), what)), ...);
  return r;
}

}  // namespace hibari
