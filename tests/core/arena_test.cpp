// core/arena.h: one aligned, zero-filled allocation for every planned buffer.
#include "core/arena.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/error.h"
#include "tests/error_matchers.h"

namespace hibari {
namespace {

TEST(Arena, SlotsAreAlignedZeroedAndDisjoint) {
  Arena arena;
  const std::vector<size_t> counts = {1, 37, 16, 70, 0, 1000, 3};
  std::vector<size_t> slots;
  for (size_t c : counts) slots.push_back(arena.plan_floats(c));
  EXPECT_EQ(slots, (std::vector<size_t>{0, 1, 2, 3, 4, 5, 6}));
  arena.commit();
  EXPECT_EQ(arena.bytes() % Arena::alignment, 0u);
  size_t needed = 0;
  for (size_t c : counts) needed += (c * 4 + 63) / 64 * 64;
  EXPECT_EQ(arena.bytes(), needed);
  for (size_t i = 0; i < counts.size(); ++i) {
    float* p = arena.floats(slots[i]);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << "slot " << i;
    for (size_t k = 0; k < counts[i]; ++k)
      ASSERT_EQ(p[k], 0.0f) << "slot " << i << " [" << k << "]";
  }
  // Write every slot in full, then check that no write landed in another slot.
  for (size_t i = 0; i < counts.size(); ++i)
    for (size_t k = 0; k < counts[i]; ++k) arena.floats(slots[i])[k] = float(i + 1);
  for (size_t i = 0; i < counts.size(); ++i)
    for (size_t k = 0; k < counts[i]; ++k) ASSERT_EQ(arena.floats(slots[i])[k], float(i + 1));
  // Slots follow one another in plan order inside the one allocation.
  for (size_t i = 1; i < counts.size(); ++i) {
    auto prev = reinterpret_cast<uintptr_t>(arena.floats(slots[i - 1]));
    auto cur = reinterpret_cast<uintptr_t>(arena.floats(slots[i]));
    EXPECT_GE(cur - prev, counts[i - 1] * sizeof(float));
  }
}

TEST(Arena, PlanningAfterCommitThrows) {
  Arena arena;
  arena.plan_floats(10);
  arena.commit();
  EXPECT_THROW(arena.plan_floats(1), Error);
  EXPECT_THROW(arena.commit(), Error);
}

TEST(Arena, UnknownOrUncommittedSlotThrows) {
  Arena arena;
  size_t slot = arena.plan_floats(4);
  EXPECT_THROW(arena.floats(slot), Error);  // not committed yet
  arena.commit();
  EXPECT_NO_THROW(arena.floats(slot));
  EXPECT_THROW(arena.floats(slot + 1), Error);
}

TEST(Arena, EmptyArenaCommits) {
  Arena arena;
  EXPECT_NO_THROW(arena.commit());
  EXPECT_EQ(arena.bytes(), 0u);
}

// A plan whose size wraps size_t is an Error, never a small allocation (issue 13); one larger
// than the machine is "out of memory" naming the file whose sizes asked for it and how much.
TEST(Arena, OverflowingPlanIsAnError) {
  Arena arena;
  arena.plan_floats(16);
  EXPECT_NE(test::error_of([&] { arena.plan_floats(SIZE_MAX / 2); }).find("size overflows"),
            std::string::npos);
  Arena sum;
  sum.plan_floats(SIZE_MAX / 8);
  EXPECT_NE(test::error_of([&] { sum.plan_floats(SIZE_MAX / 8); }).find("size overflows"),
            std::string::npos);
}

TEST(Arena, OutOfMemoryNamesTheFileAndTheBytes) {
  Arena arena;
  arena.plan_floats(size_t{1} << 58);  // 2^60 bytes: more than any machine holds
  const std::string msg =
      test::error_of([&] { arena.commit("cfg/config.json", "the model's buffers"); });
  EXPECT_TRUE(test::one_line_error(msg, "cfg/config.json",
                                   "out of memory: the model's buffers need 1152921504606846976 "
                                   "bytes (1073741824.0 GiB)"));
  EXPECT_NE(msg.find("of RAM and swap"), std::string::npos) << msg;
}

}  // namespace
}  // namespace hibari
