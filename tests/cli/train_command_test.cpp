// Bad run files and model configs: each must end `hibari train` with exit code 1 and exactly one
// line on stderr that names the offending file and the problem — never a crash or a stack of text.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"

namespace {

namespace fs = std::filesystem;

const char* good_model = R"({"model_type": "llama", "vocab_size": 264, "hidden_size": 32,
  "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
  "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-5})";

const char* good_run = R"([model]
config = "config.json"
[data]
prefixes = ["text"]
split = "80,20"
[train]
seq_length = 16
micro_batch_size = 2
global_batch_size = 2
steps = 1
[run]
dir = "RUNDIR"
)";

struct BadCase {
  const char* name;
  std::string run_toml;     // the run file
  std::string config_json;  // the model config.json
  const char* blamed;       // "run.toml", "config.json", "text.bin": the file the error names
  const char* phrase;       // a piece of the message
};

// text.bin/.idx: a few documents of UTF-8 bytes as token ids (0..255), enough for 16-token samples.
void write_text_dataset(const fs::path& dir) {
  const std::string text = "日本語と English のテキスト。 some text to train on, long enough.\n";
  hibari::IndexedDatasetWriter writer((dir / "text").string(), hibari::TokenDtype::u16);
  for (int d = 0; d < 12; ++d) {
    std::vector<int32_t> ids;
    for (size_t i = size_t(d); i < text.size(); ++i) ids.push_back(int32_t(uint8_t(text[i])));
    writer.add_document(ids.data(), ids.size());
  }
  writer.finish();
}

// ctest names show the case name, not the struct's bytes.
void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

std::string replace(std::string s, const std::string& from, const std::string& to) {
  size_t at = s.find(from);
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

struct Result {
  int exit_code;
  std::string stderr_text;
};

Result run_hibari(const fs::path& run_file, const fs::path& dir) {
  fs::path err = dir / "stderr.txt";
  std::string command = std::string(HIBARI_EXE) + " train --config " + run_file.string() +
                        " >/dev/null 2>" + err.string();
  int status = std::system(command.c_str());
  std::ifstream in(err);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

class BadInput : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadInput, OneLineErrorNamingTheFile) {
  const BadCase& c = GetParam();
  fs::path dir = fs::path(HIBARI_BINARY_DIR) / "test_tmp" / (std::string("bad_input_") + c.name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "run.toml") << replace(c.run_toml, "RUNDIR", (dir / "run").string());
  std::ofstream(dir / "config.json") << c.config_json;
  write_text_dataset(dir);

  Result r = run_hibari(dir / "run.toml", dir);
  EXPECT_EQ(r.exit_code, 1) << r.stderr_text;
  ASSERT_FALSE(r.stderr_text.empty());
  EXPECT_EQ(r.stderr_text.find('\n'), r.stderr_text.size() - 1)
      << "not one line: " << r.stderr_text;
  EXPECT_NE(r.stderr_text.find((dir / c.blamed).string()), std::string::npos)
      << "does not name " << c.blamed << ": " << r.stderr_text;
  EXPECT_NE(r.stderr_text.find(c.phrase), std::string::npos)
      << "expected \"" << c.phrase << "\" in: " << r.stderr_text;
  fs::remove_all(dir);
}

std::string model_with(const std::string& from, const std::string& to) {
  return replace(good_model, from, to);
}

const BadCase cases[] = {
    // run.toml
    {"toml_syntax", "[train\nseed = 1\n", good_model, "run.toml", "malformed TOML at line 1"},
    {"toml_unknown_key", replace(good_run, "steps = 1", "steps = 1\nstepz = 2"), good_model,
     "run.toml", "unknown key [train].stepz"},
    {"toml_unknown_section", good_run + std::string("[optimiser]\nlr = 1.0\n"), good_model,
     "run.toml", "unknown section [optimiser]"},
    {"toml_wrong_type", replace(good_run, "steps = 1", "steps = \"ten\""), good_model, "run.toml",
     "[train].steps must be an integer"},
    {"toml_not_multiple", replace(good_run, "global_batch_size = 2", "global_batch_size = 3"),
     good_model, "run.toml", "multiple of micro_batch_size"},
    {"toml_no_model", replace(good_run, "config = \"config.json\"", ""), good_model, "run.toml",
     "[model].config is required"},
    {"toml_negative", replace(good_run, "steps = 1", "steps = -4"), good_model, "run.toml",
     "must be positive"},
    {"toml_bad_decay", good_run + std::string("[schedule]\ndecay = \"cosin\"\n"), good_model,
     "run.toml", "[schedule].decay must be cosine, linear or constant"},
    {"toml_prefixes_string", replace(good_run, "prefixes = [\"text\"]", "prefixes = \"text\""),
     good_model, "run.toml", "must be an array of strings"},
    {"toml_missing_dataset", replace(good_run, "[\"text\"]", "[\"nope\"]"), good_model, "nope.idx",
     "cannot open"},
    {"toml_weights_count", replace(good_run, "[\"text\"]", "[\"text\", \"text\"]\nweights = [1.0]"),
     good_model, "run.toml", "one weight per prefix"},
    {"toml_same_names", replace(good_run, "[\"text\"]", "[\"text\", \"text\"]\nweights = [1, 2]"),
     good_model, "run.toml", "two datasets are named \"text\""},
    {"toml_prompts_without_tokenizer",
     replace(good_run, "steps = 1", "steps = 1\nsample_prompts = [\"a\"]"), good_model, "run.toml",
     "needs [data].tokenizer"},
    {"toml_missing_tokenizer", replace(good_run, "split", "tokenizer = \"tok.json\"\nsplit"),
     good_model, "tok.json", ""},
    // config.json
    {"json_syntax", good_run, "{\"model_type\": \"llama\",", "config.json", "malformed JSON"},
    {"json_not_object", good_run, "[1, 2]", "config.json", "expected a JSON object"},
    {"json_missing_field", good_run, model_with("\"hidden_size\": 32,", ""), "config.json",
     "missing field \"hidden_size\""},
    {"json_model_type", good_run, model_with("\"llama\"", "\"gpt_neox\""), "config.json",
     "model_type \"gpt_neox\" is not supported"},
    {"json_wrong_type", good_run, model_with("\"hidden_size\": 32", "\"hidden_size\": \"32\""),
     "config.json", "\"hidden_size\" must be a positive integer"},
    {"json_heads", good_run, model_with("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"),
     "config.json", "multiple of num_key_value_heads"},
    {"json_rope_scaling", good_run,
     model_with("\"rms_norm_eps\": 1e-5",
                "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}"),
     "config.json", "rope_scaling type \"yarn\" is not supported"},
    {"json_small_vocab", good_run, model_with("\"vocab_size\": 264", "\"vocab_size\": 100"),
     "text.bin", "outside the model's vocabulary of 100"},
    {"json_missing_file", replace(good_run, "config.json", "absent.json"), good_model,
     "absent.json", "cannot open model config"},
    {"json_seq_too_long", replace(good_run, "seq_length = 16", "seq_length = 128"), good_model,
     "config.json", "exceeds max_position_embeddings"},
};

INSTANTIATE_TEST_SUITE_P(Cases, BadInput, ::testing::ValuesIn(cases),
                         [](const auto& info) { return std::string(info.param.name); });

// The "loss" values of metrics.jsonl, as written (text, so equality means the same bits printed
// with 9 significant digits, enough to tell any two floats apart).
std::vector<std::string> logged_losses(const fs::path& metrics) {
  std::ifstream in(metrics);
  std::vector<std::string> losses;
  for (std::string line; std::getline(in, line);) {
    size_t at = line.find("\"loss\": ");
    if (at == std::string::npos) continue;
    size_t begin = at + 8, end = line.find(',', begin);
    losses.push_back(line.substr(begin, end - begin));
  }
  return losses;
}

TEST(GoodInput, SameSeedTwiceGivesTheSameLosses) {
  fs::path dir = fs::path(HIBARI_BINARY_DIR) / "test_tmp" / "good_input";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string run = replace(good_run, "steps = 1", "steps = 4\nlog_every = 2");
  std::ofstream(dir / "config.json") << good_model;
  write_text_dataset(dir);
  std::vector<std::string> first;
  for (const char* name : {"a", "b"}) {
    std::ofstream(dir / "run.toml") << replace(run, "RUNDIR", (dir / name).string());
    Result r = run_hibari(dir / "run.toml", dir);
    ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
    std::vector<std::string> losses = logged_losses(dir / name / "metrics.jsonl");
    ASSERT_EQ(losses.size(), 4u);
    EXPECT_TRUE(fs::exists(dir / name / "run.toml"));
    EXPECT_TRUE(fs::exists(dir / name / "config.json"));
    std::ifstream metrics(dir / name / "metrics.jsonl");
    std::string all((std::istreambuf_iterator<char>(metrics)), std::istreambuf_iterator<char>());
    EXPECT_NE(all.find("\"valid_loss/text\": "), std::string::npos) << all;
    if (first.empty()) {
      first = losses;
      EXPECT_NE(losses.front(), losses.back());  // it trained
    } else {
      EXPECT_EQ(losses, first);
    }
  }
  fs::remove_all(dir);
}

}  // namespace
