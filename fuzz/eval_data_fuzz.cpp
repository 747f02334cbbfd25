// fuzz/eval_data_fuzz.cpp — load_eval_docs (eval/dataset.h): a benchmark data file read by each of
// the task files shipped in eval/tasks (the input's first byte picks the task; the rest is the
// file).
#include <algorithm>
#include <filesystem>
#include <vector>

#include "eval/dataset.h"
#include "fuzz/fuzz_common.h"

namespace {

const std::vector<hibari::TaskSpec>& tasks() {
  static const std::vector<hibari::TaskSpec> all = [] {
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(hibari::builtin_task_dir()))
      if (e.path().extension() == ".json") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    std::vector<hibari::TaskSpec> specs;
    for (const std::string& f : files) specs.push_back(hibari::load_task_spec(f));
    if (specs.empty()) std::abort();
    return specs;
  }();
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hibari;
  if (size < 1) return 0;
  const TaskSpec& task = tasks()[data[0] % tasks().size()];
  // The name decides between JSON Lines and plain text for the "text" format.
  const std::string path = fuzz::write_input("data.jsonl", data + 1, size - 1);
  fuzz::value_or_error([&] {
    for (const EvalDoc& doc : load_eval_docs(task, path)) {
      // A gold index past the choices would be read out of bounds when scored.
      if (task_method(task.format) == TaskMethod::multiple_choice && doc.gold >= doc.choices.size())
        std::abort();
    }
  });
  return 0;
}
