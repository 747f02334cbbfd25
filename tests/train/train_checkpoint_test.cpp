// train/train_checkpoint.h: resuming from a checkpoint of another model names every config.json key
// that differs, with both values, the key a user changed (hidden_size) before those that follow
// from it (head_dim) (issue 13, item 4).
#include "train/train_checkpoint.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"
#include "model/params.h"
#include "tests/error_matchers.h"
#include "tests/model/tiny_config.h"

namespace hibari {
namespace {

ModelConfig model_of_hidden(size_t hidden) {
  // head_dim follows hidden_size / num_attention_heads, as a config.json without it gives
  return test::tiny_llama({64, hidden, 48, 2, 4, 2, hidden / 4, 32});
}

TEST(TrainCheckpoint, ResumeFromAnotherModelNamesEveryDifferingKey) {
  const ModelConfig saved = model_of_hidden(64), now = model_of_hidden(32);
  LoadedCheckpoint c;
  c.dir = "run/ckpt/step_000003";
  c.text_files["config.json"] = model_config_to_json(saved).dump(2) + "\n";
  const ParameterLayout layout = llama_parameter_layout(now);
  TrainingState state{.layout = &layout};
  int64_t step = 0;
  const std::string error = test::error_of([&] { checkpoint_restore(c, now, state, step); });
  EXPECT_TRUE(test::one_line_error(
      error, "run/ckpt/step_000003/config.json",
      "a checkpoint of another model: hidden_size is 64 there, 32 in this run's model; head_dim "
      "is 16 there, 8 in this run's model"))
      << error;
  EXPECT_EQ(error.find("; ", error.find("head_dim")), std::string::npos) << "only two keys differ";
}

TEST(TrainCheckpoint, ConfigDifferencesInFieldOrderThenTheRest) {
  ModelConfig a = model_of_hidden(32), b = model_of_hidden(32);
  EXPECT_EQ(config_differences(model_config_to_json(a), model_config_to_json(b)), "");
  b.vocab_size = 80;
  b.rope_theta = 500000;
  nlohmann::json saved = model_config_to_json(a);
  saved.erase("rms_norm_eps");
  saved["mlp_bias"] = true;
  EXPECT_EQ(config_differences(saved, model_config_to_json(b)),
            "vocab_size is 64 there, 80 in this run's model; rms_norm_eps is absent there, 1e-06 "
            "in this run's model; rope_theta is 10000.0 there, 500000.0 in this run's model; "
            "mlp_bias is true there, false in this run's model");
}

}  // namespace
}  // namespace hibari
