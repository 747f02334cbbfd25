// tests/reference/torch_fixture.h — running tests/reference/llama_torch.py from a test and reading
// the safetensors fixture it writes: shared by the tests that compare hibari with PyTorch.
// Needs HIBARI_PYTHON and HIBARI_SOURCE_DIR, which tests/CMakeLists.txt defines for every test
// executable.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "model/llama.h"
#include "model/params.h"
#include "tests/kernels/test_util.h"
#include "tests/scratch_dir.h"

#if !defined(HIBARI_PYTHON) || !defined(HIBARI_SOURCE_DIR)
#error "tests/reference/torch_fixture.h needs HIBARI_PYTHON and HIBARI_SOURCE_DIR"
#endif

namespace hibari::test {

inline bool torch_available() {
  return std::system(HIBARI_PYTHON " -c 'import torch' >/dev/null 2>&1") == 0;
}

// Runs `llama_torch.py <mode> --config <config> --out <out>` followed by `args` (which starts with
// a space).  True when the reference ran; otherwise the test is marked skipped where there is no
// torch to run it (asked after a failure, as importing torch costs a second or two), failed for
// any other cause, and the caller returns.
inline bool run_llama_torch(const std::string& mode, const std::filesystem::path& config,
                            const std::filesystem::path& out, const std::string& args) {
  const std::string cmd = std::string(HIBARI_PYTHON) +
                          " " HIBARI_SOURCE_DIR "/tests/reference/llama_torch.py " + mode +
                          " --config " + config.string() + " --out " + out.string() + args;
  if (std::system(cmd.c_str()) == 0) return true;
  if (torch_available()) {
    ADD_FAILURE() << "the reference failed: " << cmd;
  } else {
    [] { GTEST_SKIP() << HIBARI_PYTHON " cannot import torch"; }();
  }
  return false;
}

// A parameter's shape as Hugging Face stores it (and the fixture names it).
inline std::vector<int64_t> shape_of(const ParamInfo& p) {
  if (p.ndim == 2) return {int64_t(p.shape[0]), int64_t(p.shape[1])};
  return {int64_t(p.shape[0])};
}

// An F64 tensor, unrounded.
inline std::vector<double> read_f64(const SafeTensorsFile& f, const std::string& name) {
  const SafeTensorInfo* t = f.find(name);
  if (t == nullptr || t->dtype != StDtype::F64) {
    ADD_FAILURE() << f.path << ": no F64 tensor " << name;
    return {};
  }
  std::vector<double> v(t->numel());
  std::memcpy(v.data(), f.data.data() + t->begin, v.size() * sizeof(double));
  return v;
}

// The single F64 value of a tensor (read_f32 would round it to float).
inline double read_f64_scalar(const SafeTensorsFile& f, const std::string& name) {
  const SafeTensorInfo* t = f.find(name);
  if (t == nullptr || t->dtype != StDtype::F64 || t->numel() != 1) {
    ADD_FAILURE() << f.path << ": no F64 scalar " << name;
    return NAN;
  }
  return read_f64(f, name)[0];
}

// An I32 or I64 tensor as int32 (token ids).
inline std::vector<int32_t> read_i32(const SafeTensorsFile& f, const std::string& name) {
  std::vector<int64_t> wide = f.read_i64(name);
  return std::vector<int32_t>(wide.begin(), wide.end());
}

// Copies the fixture's tensors `prefix + name` into the model's parameters.
inline void load_params(Llama& model, const SafeTensorsFile& fixture, const std::string& prefix) {
  for (const ParamInfo& p : model.layout.params) {
    std::vector<float> w = fixture.read_f32(prefix + p.name, shape_of(p));
    std::memcpy(model.params + p.offset, w.data(), p.numel * sizeof(float));
  }
}

struct WorstParam {
  double error = 0;
  std::string name;
};

// Compares `values` (the model's parameters or gradients, in its flat layout) with the fixture's
// tensors `prefix + name`, parameter by parameter: each norm-relative error must stay below
// `tolerance`.  Returns the worst (NaN counts as worst).
inline WorstParam expect_params_near(const Llama& model, const float* values,
                                     const SafeTensorsFile& fixture, const std::string& prefix,
                                     double tolerance) {
  WorstParam worst;
  for (const ParamInfo& p : model.layout.params) {
    std::vector<float> ref = fixture.read_f32(prefix + p.name, shape_of(p));
    double error = norm_relative_error(values + p.offset, ref.data(), ref.size());
    EXPECT_LT(error, tolerance) << prefix << p.name;
    if (!(error <= worst.error)) {
      worst.error = error;
      worst.name = p.name;
    }
  }
  return worst;
}

}  // namespace hibari::test
