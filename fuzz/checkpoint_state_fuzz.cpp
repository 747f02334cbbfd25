// fuzz/checkpoint_state_fuzz.cpp — checkpoint_restore (train/train_checkpoint.h) and
// loader_state_from_json (data/loader.h) on any state.json, or (input starting with "C") any
// config.json, in an otherwise valid checkpoint of a tiny model.
#include "fuzz/fuzz_checkpoint.h"
#include "fuzz/fuzz_common.h"
#include "train/train_checkpoint.h"

namespace {

hibari::LoadedCheckpoint& checkpoint() {
  static hibari::LoadedCheckpoint c = hibari::load_checkpoint(
      hibari::fuzz::write_tiny_checkpoint(hibari::fuzz::scratch_dir() + "/ckpt"));
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hibari;
  static const ModelConfig config = fuzz::tiny_model_config();
  static const ParameterLayout layout = llama_parameter_layout(config);
  static std::vector<float> params(layout.total), m(layout.total), v(layout.total);
  static const std::string state = fuzz::tiny_state_json();
  static const std::string config_json = checkpoint().text("config.json");

  LoadedCheckpoint& c = checkpoint();
  const bool is_config = size > 0 && data[0] == 'C';
  std::string text(fuzz::as_text(data, size));
  c.text_files["state.json"] = is_config ? state : text;
  c.text_files["config.json"] = is_config ? text.substr(1) : config_json;
  TrainingState st{.layout = &layout, .params = params.data(), .m = m.data(), .v = v.data()};
  fuzz::value_or_error([&] {
    int64_t step = 0;
    LoaderState ls = checkpoint_restore(c, config, st, step);
    (void)loader_state_to_json(ls);
  });
  return 0;
}
