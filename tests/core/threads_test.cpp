// core/threads.h: one number sets the kernel thread count.
#include "core/threads.h"

#include <gtest/gtest.h>

namespace hibari {
namespace {

TEST(Threads, SetAndRead) {
  const int saved = num_threads();
  set_num_threads(2);
  EXPECT_EQ(num_threads(), 2);
  set_num_threads(1);
  EXPECT_EQ(num_threads(), 1);
  set_num_threads(saved);
  EXPECT_EQ(num_threads(), saved);
}

}  // namespace
}  // namespace hibari
