// fuzz/eval_task_fuzz.cpp — parse_task_spec (eval/task.h): an eval task file (the JSON text that
// load_task_spec reads).  A task that parses renders its templates with fixed fields.
#include "eval/task.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hibari;
  const std::string text(fuzz::as_text(data, size));
  fuzz::value_or_error([&] {
    TaskSpec t = parse_task_spec(text, "fuzz.json");
    (void)method_metrics(task_method(t.format));
    const DocFields fields = {{"question", "q"},  {"context", "c"},   {"sentence", "s"},
                              {"sentence1", "a"}, {"sentence2", "b"}, {"query", "q"}};
    fuzz::value_or_error([&] { (void)render_template(t.prompt_template, fields, t.name); });
  });
  return 0;
}
