// `hibari train` end to end.  Bad run files and model configs: each must end it with exit code 1
// and exactly one line on stderr that names the offending file and the problem — never a crash or
// a stack of text.  Good runs: the same seed gives the same losses, and a run killed (-9, or
// SIGTERM) at random moments and resumed from its checkpoints gives the losses of an uninterrupted
// run, bit for bit.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/native_checkpoint.h"
#include "data/indexed_dataset.h"
#include "tests/cli/run_hibari.h"

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

using hibari::test::CommandResult;

// Runs `hibari train --config RUN_FILE`, its stdout and stderr kept in dir.
CommandResult run_hibari(const fs::path& run_file, const fs::path& dir) {
  return hibari::test::run_hibari(dir, "train --config " + run_file.string());
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

  CommandResult r = run_hibari(dir / "run.toml", dir);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not one line: " << r.err;
  EXPECT_NE(r.err.find((dir / c.blamed).string()), std::string::npos)
      << "does not name " << c.blamed << ": " << r.err;
  EXPECT_NE(r.err.find(c.phrase), std::string::npos)
      << "expected \"" << c.phrase << "\" in: " << r.err;
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
    {"toml_rampup_without_train_samples",
     replace(good_run, "steps = 1", "steps = 1\nrampup_batch_size = [2, 2, 8]"), good_model,
     "run.toml", "needs [train].train_samples"},
    {"toml_steps_and_train_samples", replace(good_run, "steps = 1", "steps = 1\ntrain_samples = 8"),
     good_model, "run.toml", "not both"},
    {"toml_rampup_not_multiple",
     replace(good_run, "global_batch_size = 2\nsteps = 1",
             "global_batch_size = 8\ntrain_samples = 64\nrampup_batch_size = [2, 4, 8]"),
     good_model, "run.toml", "multiple of the increment"},
    {"toml_rampup_wrong_type",
     replace(good_run, "steps = 1", "train_samples = 8\nrampup_batch_size = [2, 2.5, 8]"),
     good_model, "run.toml", "[train].rampup_batch_size must be an array of integers"},
    {"toml_negative_surplus", replace(good_run, "split", "mid_level_dataset_surplus = -1\nsplit"),
     good_model, "run.toml", "[data].mid_level_dataset_surplus must not be negative"},
    // Issue 13: a split with no numbers named the loader, not the run file; steps x batch wrapped.
    {"toml_split_no_numbers", replace(good_run, "split = \"80,20\"", "split = \"abc\""), good_model,
     "run.toml", "[data].split \"abc\": expected 1 to 3 numbers"},
    {"toml_steps_overflow", replace(good_run, "steps = 1", "steps = 9223372036854775807"),
     good_model, "run.toml", "[train].steps 9223372036854775807 x global_batch_size 2"},
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
    // Issue 13: sizes whose products wrapped (exit 139), wrong types that escaped as raw nlohmann
    // errors or were read silently, and huge sizes that ended in "out of memory" naming nothing.
    {"json_vocab_2_62", good_run,
     model_with("\"vocab_size\": 264", "\"vocab_size\": 4611686018427387904"), "config.json",
     "\"vocab_size\" must be a positive integer up to 2147483648"},
    {"json_intermediate_2_61", good_run,
     replace(model_with("\"intermediate_size\": 64", "\"intermediate_size\": 2305843009213693952"),
             "\"hidden_size\": 32", "\"hidden_size\": 16"),
     "config.json", "\"intermediate_size\" must be a positive integer up to"},
    {"json_parameters_over_limit", good_run,
     replace(model_with("\"vocab_size\": 264", "\"vocab_size\": 2147483648"), "\"hidden_size\": 32",
             "\"hidden_size\": 2147483648"),
     "config.json", "parameters, over the limit of 2^40"},
    {"json_out_of_memory", good_run,
     replace(model_with("\"vocab_size\": 264", "\"vocab_size\": 134217728"), "\"hidden_size\": 32",
             "\"hidden_size\": 2048"),
     "config.json", "out of memory: the model's parameters, gradients and activations"},
    {"json_number_overflow", good_run, model_with("1e-5", "1e309"), "config.json",
     "malformed JSON: number overflow"},
    {"json_hidden_act_type", good_run,
     model_with("\"rms_norm_eps\"", "\"hidden_act\": 5, \"rms_norm_eps\""), "config.json",
     "field \"hidden_act\" must be a string, got 5"},
    {"json_rope_type_type", good_run,
     model_with("\"rms_norm_eps\"", "\"rope_scaling\": {\"rope_type\": 5}, \"rms_norm_eps\""),
     "config.json", "field \"rope_scaling.rope_type\" must be a string, got 5"},
    {"json_attention_bias_string", good_run,
     model_with("\"rms_norm_eps\"", "\"attention_bias\": \"yes\", \"rms_norm_eps\""), "config.json",
     "field \"attention_bias\" must be true or false, got \"yes\""},
    {"json_token_id_float", good_run,
     model_with("\"rms_norm_eps\"", "\"eos_token_id\": 1.5, \"rms_norm_eps\""), "config.json",
     "field \"eos_token_id\" (a token id) must be an integer"},
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
    CommandResult r = run_hibari(dir / "run.toml", dir);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> losses = logged_losses(dir / name / "metrics.jsonl");
    ASSERT_EQ(losses.size(), 4u);
    EXPECT_TRUE(fs::exists(dir / name / "run.toml"));
    EXPECT_TRUE(fs::exists(dir / name / "config.json"));
    std::string all = hibari::test::read_file(dir / name / "metrics.jsonl");
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

// A run long enough to be killed in the middle: 30 steps, a checkpoint after every step (so kills
// land in checkpoint writes too), the newest 2 kept.
std::string resumable_run(const fs::path& run_dir) {
  std::string run = replace(good_run, "steps = 1", "steps = 30\nlog_every = 10\npeak_flops = 1e9");
  run = replace(run, "[run]", "[checkpoint]\nevery = 1\nkeep = 2\n[run]");
  return replace(run, "RUNDIR", run_dir.string());
}

// Starts `hibari train --config run_file` with stdout/stderr to `log`; returns the pid.
pid_t start_hibari(const fs::path& run_file, const fs::path& log) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::fopen(log.c_str(), "a");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    execl(HIBARI_EXE, HIBARI_EXE, "train", "--config", run_file.c_str(), (char*)nullptr);
    _exit(127);
  }
  return pid;
}

struct ResumeFixture {
  fs::path dir;
  std::vector<std::string> expected;  // the losses of an uninterrupted run

  explicit ResumeFixture(const std::string& name)
      : dir(fs::path(HIBARI_BINARY_DIR) / "test_tmp" / (name + "." + std::to_string(getpid()))) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::ofstream(dir / "config.json") << good_model;
    write_text_dataset(dir);
    std::ofstream(dir / "whole.toml") << resumable_run(dir / "whole");
    CommandResult r = run_hibari(dir / "whole.toml", dir);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    expected = logged_losses(dir / "whole" / "metrics.jsonl");
    EXPECT_EQ(expected.size(), 30u);
    std::ofstream(dir / "run.toml") << resumable_run(dir / "run");
  }
  ~ResumeFixture() { fs::remove_all(dir); }
};

// Each attempt is killed a random 0-40 ms after it has written a new step (so with a checkpoint
// after every step, kills land in steps and in checkpoint writes alike), until the run is done.
TEST(Resume, KillNineAtRandomMomentsThenResumeGivesTheSameLosses) {
  ResumeFixture f("resume_kill9");
  std::mt19937 rng(20261123);
  const fs::path metrics = f.dir / "run" / "metrics.jsonl";
  int killed_mid_run = 0;
  for (int attempt = 0; attempt < 12 && logged_losses(metrics).size() < 30; ++attempt) {
    const size_t before = logged_losses(metrics).size();
    pid_t pid = start_hibari(f.dir / "run.toml", f.dir / "log.txt");
    int status = 0;
    bool exited = false;
    for (int i = 0; i < 20000 && logged_losses(metrics).size() <= before; ++i) {
      if (waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (exited) continue;
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 40));
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) ++killed_mid_run;
  }
  CommandResult r = run_hibari(f.dir / "run.toml", f.dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GE(killed_mid_run, 5) << "the kills should land while the run is going";
  EXPECT_EQ(logged_losses(metrics), f.expected);
}

TEST(Resume, SigtermWritesACheckpointAndExits143) {
  ResumeFixture f("resume_sigterm");
  pid_t pid = start_hibari(f.dir / "run.toml", f.dir / "log.txt");
  // Wait for the first checkpoint, then ask the run to stop.
  for (int i = 0; i < 1000 && !fs::exists(f.dir / "run" / "ckpt" / "latest"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 0) GTEST_SKIP() << "the run finished before the signal arrived";
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM);
  std::string text = hibari::test::read_file(f.dir / "log.txt");
  EXPECT_NE(text.find("stopped by"), std::string::npos) << text;
  size_t steps_before = logged_losses(f.dir / "run" / "metrics.jsonl").size();
  EXPECT_LT(steps_before, 30u);
  CommandResult r = run_hibari(f.dir / "run.toml", f.dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(logged_losses(f.dir / "run" / "metrics.jsonl"), f.expected);
}

// The newest checkpoint (of the finished run) is corrupt: the run goes back to the one before,
// says so, redoes the last step and still ends with the uninterrupted run's losses.
TEST(Resume, CorruptNewestCheckpointFallsBackToThePreviousOne) {
  ResumeFixture f("resume_corrupt");
  ASSERT_EQ(run_hibari(f.dir / "run.toml", f.dir).exit_code, 0);
  fs::path newest = f.dir / "run" / "ckpt" / "step_000030" / "model.safetensors";
  ASSERT_TRUE(fs::exists(newest));
  {
    std::fstream file(newest, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(-5, std::ios::end);
    file.put('\x7f');
  }
  fs::path log = f.dir / "log.txt";
  pid_t pid = start_hibari(f.dir / "run.toml", log);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::string text = hibari::test::read_file(log);
  EXPECT_NE(text.find("skipping a corrupt checkpoint"), std::string::npos) << text;
  EXPECT_NE(text.find("checksum mismatch"), std::string::npos) << text;
  EXPECT_NE(text.find("step_000029 (step 29)"), std::string::npos) << text;
  EXPECT_EQ(logged_losses(f.dir / "run" / "metrics.jsonl"), f.expected);
}

TEST(Resume, CheckpointOfAnotherModelIsAOneLineError) {
  ResumeFixture f("resume_other_model");
  std::string partial = replace(resumable_run(f.dir / "run"), "steps = 30", "steps = 2");
  std::ofstream(f.dir / "partial.toml") << partial;
  ASSERT_EQ(run_hibari(f.dir / "partial.toml", f.dir).exit_code, 0);
  std::ofstream(f.dir / "config.json")
      << replace(good_model, "\"intermediate_size\": 64", "\"intermediate_size\": 96");
  CommandResult r = run_hibari(f.dir / "run.toml", f.dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  EXPECT_NE(r.err.find("step_000002/config.json"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("intermediate_size"), std::string::npos) << r.err;
}

// freeze_vocab_below: the embedding and output rows of ids below it stay as they were; the rows
// above it (the Japanese bytes 0xE3.. of the data, here) train.
// The "tokens" values of metrics.jsonl, one per step.
std::vector<std::string> logged_tokens(const fs::path& metrics) {
  std::ifstream in(metrics);
  std::vector<std::string> tokens;
  for (std::string line; std::getline(in, line);) {
    size_t at = line.find("\"tokens\": ");
    if (at == std::string::npos) continue;
    size_t begin = at + 10, end = line.find_first_of(",}", begin);
    tokens.push_back(line.substr(begin, end - begin));
  }
  return tokens;
}

// [train].rampup_batch_size = [2, 2, 24] to 8 over train_samples = 60: Megatron's 12 steps of
// 2, 2, 2, 2, 4, 4, 6, 6, 8, 8, 8, 8 sequences (8 samples per increment), and a run resumed from
// the checkpoint after step 5 (inside the ramp) gives the uninterrupted run's last 7 losses bit for
// bit.
TEST(Train, RampupBatchSizeStepsAndResumeMidRamp) {
  fs::path dir = fs::path(HIBARI_BINARY_DIR) / "test_tmp" / ("rampup." + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << good_model;
  write_text_dataset(dir);
  auto run_file = [&](const std::string& name) {
    std::string run = replace(good_run, "global_batch_size = 2\nsteps = 1",
                              "global_batch_size = 8\ntrain_samples = 60\n"
                              "rampup_batch_size = [2, 2, 24]\npeak_flops = 1e9");
    run = replace(run, "[run]", "[checkpoint]\nevery = 1\nkeep = 0\n[run]");
    std::ofstream(dir / (name + ".toml")) << replace(run, "RUNDIR", (dir / name).string());
    return dir / (name + ".toml");
  };
  CommandResult whole = run_hibari(run_file("whole"), dir);
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  const std::vector<std::string> losses = logged_losses(dir / "whole" / "metrics.jsonl");
  ASSERT_EQ(losses.size(), 12u);
  // Samples consumed after each step x 16 tokens.
  EXPECT_EQ(logged_tokens(dir / "whole" / "metrics.jsonl"),
            (std::vector<std::string>{"32", "64", "96", "128", "192", "256", "352", "448", "576",
                                      "704", "832", "960"}));
  EXPECT_NE(whole.out.find("ramp-up: 2 sequences at first"), std::string::npos) << whole.out;

  // A second run whose newest checkpoint is the whole run's step 5.
  fs::create_directories(dir / "part" / "ckpt");
  fs::copy(dir / "whole" / "ckpt" / hibari::checkpoint_dir_name(5),
           dir / "part" / "ckpt" / hibari::checkpoint_dir_name(5), fs::copy_options::recursive);
  CommandResult part = run_hibari(run_file("part"), dir);
  ASSERT_EQ(part.exit_code, 0) << part.err;
  EXPECT_EQ(logged_losses(dir / "part" / "metrics.jsonl"),
            std::vector<std::string>(losses.begin() + 5, losses.end()));
  EXPECT_EQ(logged_tokens(dir / "part" / "metrics.jsonl"),
            (std::vector<std::string>{"256", "352", "448", "576", "704", "832", "960"}));
  fs::remove_all(dir);
}

// [train].eval_iters: Megatron's accounting.  Every evaluation reports valid_loss from the blended
// validation stream, and after training one more valid_loss and a test_loss.
TEST(Train, MegatronEvalAccountingReportsValidationAndTest) {
  fs::path dir =
      fs::path(HIBARI_BINARY_DIR) / "test_tmp" / ("eval_iters." + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << good_model;
  write_text_dataset(dir);
  std::string run = replace(good_run, "steps = 1", "steps = 4\neval_every = 2\neval_iters = 1");
  run = replace(run, "split = \"80,20\"", "split = \"60,20,20\"");
  std::ofstream(dir / "run.toml") << replace(run, "RUNDIR", (dir / "run").string());
  CommandResult r = run_hibari(dir / "run.toml", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string metrics = hibari::test::read_file(dir / "run" / "metrics.jsonl");
  size_t valid = 0;
  for (size_t at = metrics.find("\"valid_loss\": "); at != std::string::npos;
       at = metrics.find("\"valid_loss\": ", at + 1))
    ++valid;
  // Steps 2 and 4 in the loop, and step 4 again after training, as Megatron's pretrain does.
  EXPECT_EQ(valid, 3u) << metrics;
  EXPECT_EQ(metrics.find("valid_loss/"), std::string::npos) << metrics;
  const size_t test = metrics.find("\"test_loss\": ");
  ASSERT_NE(test, std::string::npos) << metrics;
  EXPECT_GT(test, metrics.rfind("\"step\": 4")) << metrics;
  EXPECT_EQ(metrics.find("null"), std::string::npos) << metrics;
  fs::remove_all(dir);
}

TEST(Train, FrozenVocabularyRowsStayFixed) {
  ResumeFixture f("freeze_vocab");
  std::string run = replace(resumable_run(f.dir / "frozen"), "steps = 30", "steps = 6");
  run = replace(run, "keep = 2", "keep = 0");
  run = replace(run, "peak_flops", "freeze_vocab_below = 200\npeak_flops");
  std::ofstream(f.dir / "frozen.toml") << run;
  CommandResult r = run_hibari(f.dir / "frozen.toml", f.dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  hibari::LoadedCheckpoint first =
      hibari::load_checkpoint((f.dir / "frozen" / "ckpt" / "step_000001").string());
  hibari::LoadedCheckpoint last =
      hibari::load_checkpoint((f.dir / "frozen" / "ckpt" / "step_000006").string());
  for (const char* name : {"model.embed_tokens.weight", "lm_head.weight"}) {
    std::vector<float> a = first.tensors("model").read_f32(name);
    std::vector<float> b = last.tensors("model").read_f32(name);
    const size_t hidden = 32, frozen = 200 * hidden;
    EXPECT_TRUE(std::equal(a.begin(), a.begin() + frozen, b.begin())) << name;
    EXPECT_FALSE(std::equal(a.begin() + frozen, a.end(), b.begin() + frozen)) << name;
    std::vector<float> m = last.tensors("optimizer").read_f32(std::string("exp_avg.") + name);
    EXPECT_TRUE(std::all_of(m.begin(), m.begin() + frozen, [](float x) { return x == 0; })) << name;
  }
}

// The newest checkpoint of a run, exported to Hugging Face as f32: the same bits as the checkpoint.
TEST(Train, ConvertExportsTheNewestCheckpoint) {
  ResumeFixture f("convert_checkpoint");
  fs::path out = f.dir / "hf";
  const CommandResult converted =
      hibari::test::run_hibari(f.dir, "convert --from " + (f.dir / "whole" / "ckpt").string() +
                                          " --to hf --output " + out.string());
  ASSERT_EQ(converted.exit_code, 0) << converted.err;
  hibari::LoadedCheckpoint newest =
      hibari::load_checkpoint((f.dir / "whole" / "ckpt" / "step_000030").string());
  hibari::SafeTensorsFile exported = hibari::safetensors_read((out / "model.safetensors").string());
  const hibari::SafeTensorsFile& saved = newest.tensors("model");
  ASSERT_EQ(exported.tensors.size(), saved.tensors.size());
  for (const hibari::SafeTensorInfo& t : saved.tensors)
    EXPECT_EQ(exported.read_f32(t.name), saved.read_f32(t.name)) << t.name;
}

// Continual pretraining: a run started from exported HF weights (`[model].init_from`) starts where
// the first run ended, not from a random model; a directory of another shape is refused.
TEST(Train, InitFromHuggingFaceWeights) {
  ResumeFixture f("init_from");
  fs::path hf = f.dir / "hf";
  const CommandResult converted =
      hibari::test::run_hibari(f.dir, "convert --from " + (f.dir / "whole" / "ckpt").string() +
                                          " --to hf --output " + hf.string());
  ASSERT_EQ(converted.exit_code, 0) << converted.err;
  std::string run = replace(resumable_run(f.dir / "continued"), "config = \"config.json\"",
                            "config = \"config.json\"\ninit_from = \"hf\"");
  std::ofstream(f.dir / "continued.toml") << run;
  CommandResult r = run_hibari(f.dir / "continued.toml", f.dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> losses = logged_losses(f.dir / "continued" / "metrics.jsonl");
  ASSERT_EQ(losses.size(), 30u);
  // The same batches as the first run's first step, on weights trained for 30 steps.
  EXPECT_LT(std::stod(losses[0]), std::stod(f.expected[0]) - 0.05);

  std::ofstream(f.dir / "config.json")
      << replace(good_model, "\"intermediate_size\": 64", "\"intermediate_size\": 96");
  fs::remove_all(f.dir / "continued");
  r = run_hibari(f.dir / "continued.toml", f.dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("hf/config.json"), std::string::npos) << r.err;
}

// A phase longer than watchdog_seconds ends the run with exit code 3 and a line naming the step and
// the phase (here every phase is too long).
TEST(Train, WatchdogNamesTheStuckPhase) {
  ResumeFixture f("watchdog");
  std::string run =
      replace(resumable_run(f.dir / "stuck"), "peak_flops", "watchdog_seconds = 1e-6\npeak_flops");
  std::ofstream(f.dir / "stuck.toml") << run;
  CommandResult r = run_hibari(f.dir / "stuck.toml", f.dir);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("hibari: error: watchdog: step 1 stuck in phase \""), std::string::npos)
      << r.err;
}

}  // namespace
