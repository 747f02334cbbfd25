// tests/mpi_test_main.cpp — main of the multi-process test executables (GoogleTest under mpirun):
// every rank runs every test. Rank 0 prints the usual report; the other ranks print only their
// failures, prefixed with their rank. The exit status is nonzero when any rank failed (mpirun
// returns the first nonzero status).
#include <gtest/gtest.h>

#include <cstdio>

#include "parallel/comm.h"

namespace {

struct RankFailurePrinter : testing::EmptyTestEventListener {
  int rank = 0;
  void OnTestPartResult(const testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank, result.file_name(), result.line_number(),
                 result.summary());
  }
};

}  // namespace

int main(int argc, char** argv) {
  hibari::Comm world = hibari::comm_init(&argc, &argv);
  testing::InitGoogleTest(&argc, argv);
  if (world.rank != 0) {
    testing::TestEventListeners& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    auto* printer = new RankFailurePrinter;
    printer->rank = world.rank;
    listeners.Append(printer);
  }
  int failed = RUN_ALL_TESTS();
  hibari::comm_finalize();
  return failed;
}
