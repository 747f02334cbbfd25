// tests/parallel/mpi_environment.h — comm_init and comm_finalize once around a one-process test
// executable (a 1-rank world: the process is not started by mpirun, so MPI is not started at all).
#pragma once

#include <gtest/gtest.h>

#include "parallel/comm.h"

namespace hibari::test {

struct MpiEnvironment : testing::Environment {
  void SetUp() override { comm_init(nullptr, nullptr); }
  void TearDown() override { comm_finalize(); }
};

// Registered before main runs; gtest owns (and deletes) the environment.
inline testing::Environment* const kMpiEnvironment =
    testing::AddGlobalTestEnvironment(new MpiEnvironment);

}  // namespace hibari::test
