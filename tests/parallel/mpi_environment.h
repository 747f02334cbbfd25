// tests/parallel/mpi_environment.h — MPI set up once around a one-process test executable (a 1-rank
// world: the process is not started by mpirun, so Open MPI runs it as a singleton).
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
