// fuzz/fuzz_seeds.cpp — `fuzz_seeds SOURCE_DIR CORPUS_ROOT` writes the seed corpus of every target
// into CORPUS_ROOT/<target>/: the fixtures and examples of the source tree, and small valid files
// made by hibari's own writers (safetensors, .idx, .npy, SentencePiece models, a checkpoint), so
// the fuzzers start from inputs that parse and mutate them into ones that almost do.
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint/safetensors.h"
#include "data/gpt_indices.h"
#include "data/indexed_dataset.h"
#include "data/sentencepiece_tokenizer.h"
#include "eval/dataset.h"
#include "eval/task.h"
#include "fuzz/fuzz_checkpoint.h"
#include "fuzz/fuzz_common.h"
#include "parallel/rank_status.h"
#include "train/run_config.h"

namespace fs = std::filesystem;
using namespace hibari;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Corpus {
  std::string root;
  int count = 0;
  void add(const std::string& target, const std::string& name, std::string_view bytes) {
    fs::create_directories(root + "/" + target);
    fuzz::write_bytes(root + "/" + target + "/" + name, bytes.data(), bytes.size());
    ++count;
  }
  void add_file(const std::string& target, const std::string& name, const std::string& path) {
    add(target, name, read_all(path));
  }
};

// At most `limit` bytes of a JSON Lines file, cut at a line end.
std::string head_lines(const std::string& path, size_t limit) {
  std::string s = read_all(path);
  if (s.size() <= limit) return s;
  size_t end = s.rfind('\n', limit);
  return s.substr(0, end == std::string::npos ? limit : end + 1);
}

std::string gzip(const std::string& text, const std::string& tmp) {
  gzFile f = gzopen(tmp.c_str(), "wb");
  gzwrite(f, text.data(), unsigned(text.size()));
  gzclose(f);
  return read_all(tmp);
}

std::string zstd(const std::string& text) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), text.data(), text.size(), 3));
  return out;
}

void safetensors_seeds(Corpus& c, const std::string& tmp) {
  const float f[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
  const int64_t i[3] = {1, -2, 1ll << 40};
  const uint8_t u[4] = {1, 2, 3, 4};
  const std::vector<std::vector<SafeTensorOut>> files = {
      {{"w", StDtype::F32, {2, 3}, f}},
      {{"a.weight", StDtype::BF16, {6}, f, true}, {"b.bias", StDtype::F16, {3}, f, true}},
      {{"ids", StDtype::I64, {3}, i}, {"mask", StDtype::U8, {2, 2}, u}, {"s", StDtype::F32, {}, f}},
  };
  for (size_t k = 0; k < files.size(); ++k) {
    safetensors_write(tmp, files[k],
                      k == 0 ? std::map<std::string, std::string>{{"format", "pt"}}
                             : std::map<std::string, std::string>{});
    const std::string bytes = read_all(tmp);
    c.add("safetensors_header", "file" + std::to_string(k), bytes);
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    c.add("safetensors_header", "header" + std::to_string(k), bytes.substr(8, n));
  }
  c.add("safetensors_index", "index.json",
        R"({"metadata": {"total_size": 36}, "weight_map": {"x.weight": "a.safetensors", )"
        R"("y.weight": "b.safetensors"}})");
}

void sentencepiece_seeds(Corpus& c, const std::string& tmp, const std::string& source) {
  std::vector<std::string> sentences;
  std::istringstream text(head_lines(source + "/examples/demo/en.jsonl", 6000) +
                          head_lines(source + "/examples/demo/ja.jsonl", 6000));
  for (std::string line; std::getline(text, line);) {
    fuzz::value_or_error(
        [&] { sentences.push_back(nlohmann::json::parse(line).at("text").get<std::string>()); });
  }
  for (const char* type : {"bpe", "unigram"}) {
    SentencePieceTrainOptions o;
    o.sentences = sentences;
    o.model_prefix = tmp + "/sp_" + type;
    o.vocab_size = 800;
    o.model_type = type;
    o.character_coverage = 0.995;
    o.remove_extra_whitespaces = false;
    o.user_defined_symbols = {"<|im_start|>"};
    o.num_threads = 1;
    train_sentencepiece(o);
    c.add_file("sentencepiece", std::string(type) + ".model", o.model_prefix + ".model");
    if (std::string(type) == "bpe")
      c.add("tokenizer_json", "sp_bpe.json",
            sentencepiece_bpe_to_tokenizer_json(o.model_prefix + ".model"));
  }
}

void tokenizer_seeds(Corpus& c, const std::string& source) {
  c.add_file("tokenizer_json", "tiny_model.json",
             source + "/examples/eval/tiny_model/tokenizer.json");
  // A small byte-level BPE in the shape of GPT-2/Llama-3 files.
  c.add("tokenizer_json", "byte_level.json", R"({
  "version": "1.0",
  "added_tokens": [{"id": 9, "content": "<|end|>", "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true}],
  "normalizer": null,
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "(?i:'s|'t)|\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+|\\s+"},
     "behavior": "Isolated", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<|end|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"<|end|>": {"id": "<|end|>", "ids": [9], "tokens": ["<|end|>"]}}},
  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
  "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": true,
            "vocab": {"H": 0, "e": 1, "l": 2, "o": 3, "He": 4, "ll": 5, "Hell": 6, "Hello": 7, "Ġ": 8},
            "merges": ["H e", "l l", "He ll", "Hell o"]}
})");
}

void idx_seeds(Corpus& c, const std::string& tmp) {
  int k = 0;
  for (TokenDtype dtype : {TokenDtype::u16, TokenDtype::i32, TokenDtype::u8}) {
    const std::string prefix = tmp + "/ds";
    IndexedDatasetWriter w(prefix, dtype);
    const int32_t a[5] = {1, 2, 3, 4, 5}, b[2] = {7, 8};
    w.add_document(a, 5);
    w.add_sequence(b, 2);
    w.add_sequence(a, 1);
    w.end_document();
    w.finish();
    std::string idx = read_all(prefix + ".idx");
    const size_t bin = fs::file_size(prefix + ".bin");
    idx.push_back(char(bin & 0xff));
    idx.push_back(char(bin >> 8));
    c.add("idx", "ds" + std::to_string(k++), idx);
  }
}

void npy_seeds(Corpus& c, const std::string& tmp) {
  const int16_t s[4] = {1, 2, 3, 4};
  const int32_t i[6] = {0, 0, 1, 5, 2, 3};
  const uint32_t u[3] = {2, 0, 1};
  const int64_t l[4] = {0, 1ll << 40, 3, 4};
  const double d[2] = {0.5, 1e300};
  const std::vector<NpyArray> arrays = {npy_from(std::span(s), {4}), npy_from(std::span(i), {3, 2}),
                                        npy_from(std::span(u), {3}), npy_from(std::span(l), {2, 2}),
                                        npy_from(std::span(d), {2})};
  for (size_t k = 0; k < arrays.size(); ++k) {
    write_npy(tmp + "/x.npy", arrays[k]);
    c.add_file("npy", "a" + std::to_string(k) + ".npy", tmp + "/x.npy");
  }
}

void jsonl_seeds(Corpus& c, const std::string& tmp, const std::string& source) {
  const std::string en = head_lines(source + "/examples/demo/en.jsonl", 3000);
  const std::string ja = head_lines(source + "/examples/demo/ja.jsonl", 3000);
  c.add("jsonl", "en.jsonl", en);
  c.add("jsonl", "ja.jsonl", ja);
  c.add("jsonl", "en.jsonl.gz", gzip(en, tmp + "/x.gz"));
  c.add("jsonl", "ja.jsonl.zst", zstd(ja));
  c.add("jsonl", "bad.jsonl",
        "{\"text\": \"a\"}\n\n{\"text\": 5}\n{\"other\": \"b\"}\nnot json\n{\"text\": \"\"}\n"
        "{\"text\": \"\\ud800\"}\r\n{\"text\": \"caf\xc3\xa9\"}");
}

void eval_seeds(Corpus& c, const std::string& source) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(builtin_task_dir()))
    if (e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());  // the order eval_data_fuzz.cpp picks tasks by
  for (size_t k = 0; k < files.size(); ++k) {
    c.add_file("eval_task", fs::path(files[k]).filename(), files[k]);
    const TaskSpec task = load_task_spec(files[k]);
    fuzz::value_or_error([&] {
      const std::string data =
          resolve_data_file(source + "/examples/eval/data", task.data_file, task.name);
      c.add("eval_data", task.name, std::string(1, char(k)) + head_lines(data, 4000));
    });
  }
}

void checkpoint_seeds(Corpus& c, const std::string& tmp) {
  const std::string step = fuzz::write_tiny_checkpoint(tmp + "/ckpt");
  c.add_file("checkpoint_manifest", "manifest.json", step + "/manifest.json");
  c.add("checkpoint_state", "state.json", fuzz::tiny_state_json());
  c.add("checkpoint_state", "config.json", "C" + read_all(step + "/config.json"));
}

void run_seeds(Corpus& c, const std::string& source) {
  c.add_file("run_toml", "demo.toml", source + "/examples/demo/run.toml");
  c.add("run_toml", "reference.toml", run_config_reference());
  c.add_file("config_json", "demo.json", source + "/examples/demo/config.json");
  c.add_file("config_json", "tiny_model.json", source + "/examples/eval/tiny_model/config.json");
  c.add("config_json", "rope_scaling.json",
        R"({"model_type": "llama", "vocab_size": 128, "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "hidden_act": "silu", "attention_bias": false, "tie_word_embeddings": true,
            "bos_token_id": 1, "eos_token_id": [2, 3],
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 64}})");
  const std::pair<char, const char*> values[] = {{0, "969,30,1"}, {0, "98, 2"},      {1, "cosine"},
                                                 {1, "linear"},   {2, "5GB"},        {2, "512MiB"},
                                                 {2, "1000"},     {3, "jglue-jnli"}, {3, "text"}};
  int k = 0;
  for (const auto& [which, text] : values)
    c.add("cli_values", "v" + std::to_string(k++), std::string(1, which) + text);
}

void rank_status_seeds(Corpus& c) {
  std::string records;
  for (int r = 0; r < 3; ++r) {
    RankRecord rec;
    rec.sequence = rec.sequence_end = 7;
    rec.magic = kRankRecordMagic;
    rec.version = kRankRecordVersion;
    rec.rank = r;
    rec.size = 3;
    rec.pid = 4242 + r;
    rec.step = 5;
    rec.heartbeat_unix_ns = 1700000000000000000ll;
    rec.collectives = r == 2 ? 811 : 812;
    rec.floats = 1 << 20;
    std::snprintf(rec.host, sizeof rec.host, "node-a");
    std::snprintf(rec.phase, sizeof rec.phase, "forward");
    if (r != 2) std::snprintf(rec.collective, sizeof rec.collective, "all_reduce");
    std::snprintf(rec.group, sizeof rec.group, "dp");
    records.append(reinterpret_cast<const char*>(&rec), sizeof rec);
  }
  c.add("rank_status", "three_ranks", records);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: fuzz_seeds SOURCE_DIR CORPUS_ROOT\n";
    return 2;
  }
  const std::string source = argv[1];
  Corpus c{argv[2]};
  const std::string tmp = fuzz::scratch_dir();
  try {
    safetensors_seeds(c, tmp + "/x.safetensors");
    sentencepiece_seeds(c, tmp, source);
    tokenizer_seeds(c, source);
    idx_seeds(c, tmp);
    npy_seeds(c, tmp);
    jsonl_seeds(c, tmp, source);
    eval_seeds(c, source);
    checkpoint_seeds(c, tmp);
    run_seeds(c, source);
    rank_status_seeds(c);
  } catch (const std::exception& e) {
    std::cerr << "fuzz_seeds: " << e.what() << "\n";
    return 1;
  }
  std::cout << "fuzz_seeds: " << c.count << " seeds in " << c.root << "\n";
  return 0;
}
