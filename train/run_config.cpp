#include "train/run_config.h"

#include <toml++/toml.h>

#include <filesystem>
#include <set>
#include <sstream>

#include "core/error.h"
#include "data/loader.h"

namespace hibari {

namespace {

// Reads the keys of one TOML table into a section struct, through the section's visit list.
struct TomlReader {
  const toml::table& table;
  const std::string& file;
  const std::string& section;
  std::set<std::string> known;

  std::string where(const char* key) const { return "[" + section + "]." + key; }

  void operator()(const char* key, int64_t& value, const char*) {
    known.insert(key);
    const toml::node* node = table.get(key);
    if (!node) return;
    auto v = node->value_exact<int64_t>();
    if (!v) fail_file(file, where(key) + " must be an integer");
    value = *v;
  }
  void operator()(const char* key, double& value, const char*) {
    known.insert(key);
    const toml::node* node = table.get(key);
    if (!node) return;
    auto v = node->value<double>();  // integers are accepted where a float is expected
    if (!v || !(node->is_floating_point() || node->is_integer()))
      fail_file(file, where(key) + " must be a number");
    value = *v;
  }
  void operator()(const char* key, std::string& value, const char*) {
    known.insert(key);
    const toml::node* node = table.get(key);
    if (!node) return;
    auto v = node->value_exact<std::string>();
    if (!v) fail_file(file, where(key) + " must be a string");
    value = *v;
  }
  void operator()(const char* key, bool& value, const char*) {
    known.insert(key);
    const toml::node* node = table.get(key);
    if (!node) return;
    auto v = node->value_exact<bool>();
    if (!v) fail_file(file, where(key) + " must be true or false");
    value = *v;
  }
  void operator()(const char* key, std::vector<double>& value, const char*) {
    known.insert(key);
    const toml::node* node = table.get(key);
    if (!node) return;
    const toml::array* array = node->as_array();
    if (!array) fail_file(file, where(key) + " must be an array of numbers");
    value.clear();
    for (const toml::node& item : *array) {
      auto v = item.value<double>();
      if (!v || !(item.is_floating_point() || item.is_integer()))
        fail_file(file, where(key) + " must be an array of numbers");
      value.push_back(*v);
    }
  }
  void operator()(const char* key, std::vector<int64_t>& value, const char*) {
    known.insert(key);
    const toml::node* node = table.get(key);
    if (!node) return;
    const toml::array* array = node->as_array();
    if (!array) fail_file(file, where(key) + " must be an array of integers");
    value.clear();
    for (const toml::node& item : *array) {
      auto v = item.value_exact<int64_t>();
      if (!v) fail_file(file, where(key) + " must be an array of integers");
      value.push_back(*v);
    }
  }
  void operator()(const char* key, std::vector<std::string>& value, const char*) {
    known.insert(key);
    const toml::node* node = table.get(key);
    if (!node) return;
    const toml::array* array = node->as_array();
    if (!array) fail_file(file, where(key) + " must be an array of strings");
    value.clear();
    for (const toml::node& item : *array) {
      auto v = item.value_exact<std::string>();
      if (!v) fail_file(file, where(key) + " must be an array of strings");
      value.push_back(*v);
    }
  }
};

template <class Section>
void read_section(const toml::table& root, const char* name, Section& section,
                  const std::string& file) {
  const toml::node* node = root.get(name);
  if (!node) return;
  const toml::table* table = node->as_table();
  if (!table) fail_file(file, std::string("[") + name + "] must be a table");
  TomlReader reader{*table, file, name, {}};
  section.visit(reader);
  for (const auto& [key, value] : *table) {
    if (!reader.known.count(std::string(key.str())))
      fail_file(file, "unknown key [" + std::string(name) + "]." + std::string(key.str()));
  }
}

// Writes "key = default  # description" lines of one section.
struct ReferenceWriter {
  std::ostringstream& out;
  void operator()(const char* key, int64_t& v, const char* help) {
    line(key, std::to_string(v), help);
  }
  void operator()(const char* key, double& v, const char* help) {
    std::ostringstream s;
    s << v;
    line(key, s.str(), help);
  }
  void operator()(const char* key, std::string& v, const char* help) {
    line(key, "\"" + v + "\"", help);
  }
  void operator()(const char* key, std::vector<std::string>&, const char* help) {
    line(key, "[]", help);
  }
  void operator()(const char* key, bool& v, const char* help) {
    line(key, v ? "true" : "false", help);
  }
  void operator()(const char* key, std::vector<double>&, const char* help) {
    line(key, "[]", help);
  }
  void operator()(const char* key, std::vector<int64_t>&, const char* help) {
    line(key, "[]", help);
  }
  void line(const char* key, const std::string& value, const char* help) {
    out << key << " = " << value << "  # " << help << "\n";
  }
};

// The sections of a run file, in order: the one list that reading and the reference walk.
template <class F>
void for_each_section(RunConfig& c, F&& f) {
  f("model", c.model);
  f("data", c.data);
  f("train", c.train);
  f("optimizer", c.optimizer);
  f("schedule", c.schedule);
  f("checkpoint", c.checkpoint);
  f("parallel", c.parallel);
  f("run", c.run);
}

void check_positive(const std::string& file, const char* key, int64_t v) {
  if (v <= 0) fail_file(file, std::string(key) + " must be positive, got " + std::to_string(v));
}

// One split's datasets of Megatron's blend_per_split: [data].NAME_prefixes and NAME_weights.
void check_split_blend(const std::string& file, const std::string& name,
                       const std::vector<std::string>& prefixes,
                       const std::vector<double>& weights) {
  const std::string key = "[data]." + name + "_weights";
  if (!weights.empty() && prefixes.empty())
    fail_file(file, key + " needs [data]." + name + "_prefixes");
  if ((prefixes.size() > 1 || !weights.empty()) && weights.size() != prefixes.size())
    fail_file(file, key + " needs one weight per prefix of [data]." + name + "_prefixes");
  for (double w : weights) {
    if (!(w > 0)) fail_file(file, key + " must be positive");
  }
}

}  // namespace

RunConfig load_run_config(const std::string& path) {
  if (!std::filesystem::exists(path)) fail_file(path, "no such file");
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    fail_file(path, "malformed TOML at line " + std::to_string(where.line) + ", column " +
                        std::to_string(where.column) + ": " + std::string(e.description()));
  }
  RunConfig c;
  c.path = path;
  std::set<std::string> sections;
  for_each_section(c, [&](const char* name, auto& section) {
    sections.insert(name);
    read_section(root, name, section, path);
  });
  for (const auto& [key, value] : root) {
    if (!sections.count(std::string(key.str())))
      fail_file(path, "unknown section [" + std::string(key.str()) + "]");
  }

  if (c.model.config.empty()) fail_file(path, "[model].config is required");
  // Megatron's blend_per_split: each split's datasets given apart, instead of one list cut by
  // `split` (Megatron asserts that blend, split and blend_per_split do not meet).
  const toml::table* data_table = root["data"].as_table();
  auto given = [&](const char* key) { return data_table && data_table->contains(key); };
  for (const char* key : {"train_prefixes", "train_weights", "valid_prefixes", "valid_weights",
                          "test_prefixes", "test_weights"})
    c.data.blend_per_split = c.data.blend_per_split || given(key);
  if (c.data.blend_per_split) {
    DataSection& data = c.data;
    for (const char* key : {"prefixes", "weights", "split"}) {
      if (given(key))
        fail_file(path, std::string("[data].") + key +
                            " does not go with [data].train_prefixes, valid_prefixes and "
                            "test_prefixes (Megatron's blend_per_split): give one or the other");
    }
    if (data.train_prefixes.empty())
      fail_file(path,
                "[data].train_prefixes needs at least one dataset (Megatron's blend_per_split)");
    check_split_blend(path, "train", data.train_prefixes, data.train_weights);
    check_split_blend(path, "valid", data.valid_prefixes, data.valid_weights);
    check_split_blend(path, "test", data.test_prefixes, data.test_weights);
    if ((!data.valid_prefixes.empty() || !data.test_prefixes.empty()) && c.train.eval_iters == 0)
      fail_file(path,
                "[data].valid_prefixes and test_prefixes need [train].eval_iters > 0 (Megatron's "
                "accounting of validation and test reads them)");
    data.prefixes = data.train_prefixes;
    data.weights = data.train_weights;
  }
  const DataSection& d = c.data;
  if (d.prefixes.empty()) fail_file(path, "[data].prefixes needs at least one dataset");
  if (!d.names.empty() && d.names.size() != d.prefixes.size())
    fail_file(path, "[data].names needs one name per prefix");
  if (d.prefixes.size() > 1 && d.weights.size() != d.prefixes.size())
    fail_file(path, "[data].weights needs one weight per prefix");
  for (double w : d.weights) {
    if (!(w > 0)) fail_file(path, "[data].weights must be positive");
  }
  if (!d.weights.empty() && d.weights.size() != d.prefixes.size())
    fail_file(path, "[data].weights needs one weight per prefix");
  if (!(d.mid_level_dataset_surplus >= 0))
    fail_file(path, "[data].mid_level_dataset_surplus must not be negative");
  // Checked here so a bad split names the run file (the loader would say only "split").
  if (!d.blend_per_split) {
    try {
      parse_split(d.split);
    } catch (const Error& e) {
      fail_file(path, std::string("[data].") + e.what());
    }
  }
  check_positive(path, "[train].seq_length", c.train.seq_length);
  check_positive(path, "[train].micro_batch_size", c.train.micro_batch_size);
  check_positive(path, "[train].global_batch_size", c.train.global_batch_size);
  check_positive(path, "[train].steps", c.train.steps);
  check_positive(path, "[train].log_every", c.train.log_every);
  if (c.train.global_batch_size % c.train.micro_batch_size != 0)
    fail_file(path, "[train].global_batch_size must be a multiple of micro_batch_size");
  // Megatron's sample-based training: train_samples instead of steps (not both), and a ramp-up
  // only with it.
  if (c.train.train_samples < 0) fail_file(path, "[train].train_samples must not be negative");
  const toml::table* train_table = root["train"].as_table();
  if (c.train.train_samples > 0 && train_table && train_table->contains("steps"))
    fail_file(path, "give [train].steps or [train].train_samples, not both");
  if (!c.train.rampup_batch_size.empty() && c.train.train_samples == 0)
    fail_file(path,
              "[train].rampup_batch_size needs [train].train_samples (Megatron ramps up "
              "sample-based runs only)");
  try {
    check_rampup(c.train.rampup_batch_size, c.train.global_batch_size, c.train.micro_batch_size,
                 "[train].rampup_batch_size");
  } catch (const Error& e) {
    fail_file(path, e.what());
  }
  if (c.train.train_samples > 0) {
    c.train.steps = rampup_train_iters(c.train.rampup_batch_size, c.train.global_batch_size,
                                       c.train.train_samples);
    if (c.train.steps == 0)
      fail_file(path, "[train].train_samples " + std::to_string(c.train.train_samples) +
                          " is less than one global batch");
  }
  // The samples (and tokens) the run reads must fit in 64 bits: steps = 2^63 - 1 wrapped into
  // "train_samples must be positive".
  int64_t samples = 0, tokens = 0;
  if (__builtin_mul_overflow(c.train.steps, c.train.global_batch_size, &samples) ||
      __builtin_mul_overflow(samples, c.train.seq_length, &tokens))
    fail_file(path, "[train].steps " + std::to_string(c.train.steps) + " x global_batch_size " +
                        std::to_string(c.train.global_batch_size) + " x seq_length " +
                        std::to_string(c.train.seq_length) + " does not fit in 64 bits");
  if (c.train.eval_iters > 0 && c.train.eval_every == 0)
    fail_file(path,
              "[train].eval_iters (Megatron's accounting) needs [train].eval_every > 0 "
              "(Megatron's eval_interval)");
  if (c.train.threads < 0 || c.train.eval_every < 0 || c.train.eval_batches < 0 ||
      c.train.eval_iters < 0 || c.train.sample_tokens < 0 || c.train.sample_top_k < 0 ||
      c.train.peak_flops < 0)
    fail_file(path, "[train] values must not be negative");
  if (c.optimizer.lr <= 0 || c.optimizer.min_lr < 0 || c.optimizer.min_lr > c.optimizer.lr)
    fail_file(path, "[optimizer] needs lr > 0 and 0 <= min_lr <= lr");
  if (!(c.optimizer.beta1 >= 0 && c.optimizer.beta1 < 1 && c.optimizer.beta2 >= 0 &&
        c.optimizer.beta2 < 1))
    fail_file(path, "[optimizer].beta1 and beta2 must be in [0, 1)");
  if (c.optimizer.eps <= 0 || c.optimizer.weight_decay < 0 || c.optimizer.grad_clip < 0)
    fail_file(path, "[optimizer] needs eps > 0, weight_decay >= 0, grad_clip >= 0");
  if (c.schedule.warmup_steps < 0 || c.schedule.decay_steps < 0)
    fail_file(path, "[schedule] steps must not be negative");
  if (c.schedule.decay != "cosine" && c.schedule.decay != "linear" &&
      c.schedule.decay != "constant")
    fail_file(path, "[schedule].decay must be cosine, linear or constant, got \"" +
                        c.schedule.decay + "\"");
  if (c.train.nan_policy != "abort" && c.train.nan_policy != "skip")
    fail_file(path, "[train].nan_policy must be abort or skip, got \"" + c.train.nan_policy + "\"");
  if (c.checkpoint.every < 0 || c.checkpoint.keep < 0 || c.train.spike_factor < 0 ||
      c.train.freeze_vocab_below < 0 || c.train.watchdog_seconds < 0)
    fail_file(path,
              "[checkpoint].every, [checkpoint].keep, [train].spike_factor and "
              "[train].freeze_vocab_below must not be negative");
  check_positive(path, "[parallel].tp", c.parallel.tp);
  check_positive(path, "[parallel].pp", c.parallel.pp);
  if (c.parallel.zero_stage < 0 || c.parallel.zero_stage > 3)
    fail_file(path, "[parallel].zero_stage must be 0, 1, 2 or 3, got " +
                        std::to_string(c.parallel.zero_stage));
  if (c.parallel.shard_group < 0) fail_file(path, "[parallel].shard_group must not be negative");
  if (c.parallel.shard_group > 0 && c.parallel.zero_stage < 2)
    fail_file(path, "[parallel].shard_group (hybrid sharding) needs zero_stage 2 or 3");
  if (c.parallel.quantized_gather && c.parallel.zero_stage != 3)
    fail_file(path, "[parallel].quantized_gather needs zero_stage 3");
  if (c.parallel.sequence_parallel && c.parallel.tp == 1)
    fail_file(path, "[parallel].sequence_parallel needs tp > 1");
  if (c.checkpoint.dir.empty())
    c.checkpoint.dir = (std::filesystem::path(c.run.dir) / "ckpt").string();
  if (c.schedule.decay_steps == 0) c.schedule.decay_steps = c.train.steps;

  // Paths inside the file are relative to the file.
  std::filesystem::path base = std::filesystem::path(path).parent_path();
  auto resolve = [&](std::string& p) {
    if (!p.empty() && std::filesystem::path(p).is_relative()) p = (base / p).lexically_normal();
  };
  resolve(c.model.config);
  for (std::string& p : c.data.prefixes) resolve(p);
  for (std::string& p : c.data.train_prefixes) resolve(p);
  for (std::string& p : c.data.valid_prefixes) resolve(p);
  for (std::string& p : c.data.test_prefixes) resolve(p);
  resolve(c.data.tokenizer);
  resolve(c.model.init_from);
  resolve(c.data.cache_dir);
  if (c.data.names.empty()) {
    for (const std::string& p : c.data.prefixes)
      c.data.names.push_back(std::filesystem::path(p).filename().string());
  }
  for (size_t i = 0; i < c.data.names.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (c.data.names[i] == c.data.names[j])
        fail_file(path, "[data].names: two datasets are named \"" + c.data.names[i] +
                            "\" (set names to tell them apart)");
    }
  }
  if (!c.train.sample_prompts.empty() && c.data.tokenizer.empty())
    fail_file(path, "[train].sample_prompts needs [data].tokenizer to turn them into tokens");
  return c;
}

std::string run_config_reference() {
  RunConfig c;
  std::ostringstream out;
  ReferenceWriter writer{out};
  for_each_section(c, [&](const char* name, auto& section) {
    out << (out.tellp() > 0 ? "\n[" : "[") << name << "]\n";
    section.visit(writer);
  });
  return out.str();
}

}  // namespace hibari
