// data/tokenizer_train.cpp — train_tokenizer (JSON Lines -> a tokenizer directory transformers
// loads) and sentencepiece_bpe_to_tokenizer_json (declared in data/sentencepiece_tokenizer.h).
//
// The .model file is read here with a small protobuf wire-format reader: libsentencepiece's API
// does not say which pieces are user-defined, nor the trainer and normalizer settings that decide
// whether a tokenizer.json can reproduce the model.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string_view>
#include <system_error>
#include <unordered_map>

#include "core/error.h"
#include "data/sentencepiece_tokenizer.h"
#include "data/tokenizer_unicode.h"

namespace hibari {

namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

// sentencepiece_model.proto: ModelProto.SentencePiece.Type and TrainerSpec.ModelType.
enum PieceType { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };
constexpr int model_type_bpe = 2;

struct SpPiece {
  std::string piece;
  int type = normal;
};

// The parts of a ModelProto the conversion needs; defaults are the proto's.
struct SpModel {
  std::vector<SpPiece> pieces;                 // ModelProto field 1
  int model_type = 1;                          // TrainerSpec 3 (unigram)
  bool treat_whitespace_as_suffix = false;     // TrainerSpec 24
  bool byte_fallback = false;                  // TrainerSpec 35
  int32_t unk_id = 0, bos_id = 1, eos_id = 2;  // TrainerSpec 40, 41, 42
  std::string precompiled_charsmap;            // NormalizerSpec 2
  bool add_dummy_prefix = true;                // NormalizerSpec 3
  bool remove_extra_whitespaces = true;        // NormalizerSpec 4
  bool escape_whitespaces = true;              // NormalizerSpec 5
};

// Protobuf wire format: a message is a run of (tag = field << 3 | wire type, value).
struct Wire {
  std::string_view data;
  size_t at = 0;
  const std::string& path;

  bool done() const { return at >= data.size(); }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at >= data.size()) fail_file(path, "not a SentencePiece model (truncated varint)");
      auto b = static_cast<unsigned char>(data[at++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail_file(path, "not a SentencePiece model (bad varint)");
  }
  std::string_view bytes() {
    uint64_t n = varint();
    if (n > data.size() - at) fail_file(path, "not a SentencePiece model (truncated field)");
    std::string_view s = data.substr(at, n);
    at += n;
    return s;
  }
  // Reads one field: calls on_varint(field, value) or on_bytes(field, bytes); skips the rest.
  template <typename V, typename B>
  void field(V on_varint, B on_bytes) {
    uint64_t tag = varint();
    auto number = static_cast<int>(tag >> 3);
    switch (tag & 7) {
      case 0:
        on_varint(number, varint());
        break;
      case 1:
        skip(8);
        break;
      case 2:
        on_bytes(number, bytes());
        break;
      case 5:
        skip(4);
        break;
      default:
        fail_file(path, "not a SentencePiece model (bad wire type)");
    }
  }
  void skip(size_t n) {
    if (n > data.size() - at) fail_file(path, "not a SentencePiece model (truncated field)");
    at += n;
  }
};

SpModel read_sp_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_file(path, "cannot open for reading");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  SpModel m;
  auto ignore_varint = [](int, uint64_t) {};
  auto ignore_bytes = [](int, std::string_view) {};
  for (Wire w{bytes, 0, path}; !w.done();) {
    w.field(ignore_varint, [&](int number, std::string_view sub) {
      Wire s{sub, 0, path};
      if (number == 1) {
        SpPiece p;
        while (!s.done()) {
          s.field(
              [&](int f, uint64_t v) {
                if (f == 3) p.type = static_cast<int>(v);
              },
              [&](int f, std::string_view b) {
                if (f == 1) p.piece = b;
              });
        }
        m.pieces.push_back(std::move(p));
      } else if (number == 2) {
        while (!s.done()) {
          s.field(
              [&](int f, uint64_t v) {
                if (f == 3) m.model_type = static_cast<int>(v);
                if (f == 24) m.treat_whitespace_as_suffix = v != 0;
                if (f == 35) m.byte_fallback = v != 0;
                // proto int32: negative values are 64-bit two's complement varints.
                if (f == 40) m.unk_id = static_cast<int32_t>(v);
                if (f == 41) m.bos_id = static_cast<int32_t>(v);
                if (f == 42) m.eos_id = static_cast<int32_t>(v);
              },
              ignore_bytes);
        }
      } else if (number == 3) {
        while (!s.done()) {
          s.field(
              [&](int f, uint64_t v) {
                if (f == 3) m.add_dummy_prefix = v != 0;
                if (f == 4) m.remove_extra_whitespaces = v != 0;
                if (f == 5) m.escape_whitespaces = v != 0;
              },
              [&](int f, std::string_view b) {
                if (f == 2) m.precompiled_charsmap = b;
              });
        }
      }
    });
  }
  if (m.pieces.empty()) fail_file(path, "not a SentencePiece model (no pieces)");
  return m;
}

const std::string* piece_at(const SpModel& m, int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= m.pieces.size()) return nullptr;
  return &m.pieces[static_cast<size_t>(id)].piece;
}

// transformers' generate_merges over the vocabulary in id order: every split of a piece into two
// pieces of the vocabulary is a merge, ranked by the id of the piece it makes, then by the length
// of its left half in code points.  SentencePiece's BPE merges the adjacent pair whose piece
// scores highest (has the lowest id), so the ranks agree with it.  Pieces SentencePiece never
// makes by merging (control, unknown, byte) neither make nor take part in merges, as
// generate_merges' skip_tokens, so "<" "s" ">" in text never becomes BOS.
ordered_json derive_merges(const SpModel& m) {
  std::unordered_map<std::string_view, size_t> id_of;
  for (size_t i = 0; i < m.pieces.size(); ++i) id_of.emplace(m.pieces[i].piece, i);
  auto mergeable = [&](std::string_view s) {
    auto it = id_of.find(s);
    if (it == id_of.end()) return false;
    int t = m.pieces[it->second].type;
    return t != control && t != unknown && t != byte;
  };
  ordered_json merges = ordered_json::array();
  for (const SpPiece& p : m.pieces) {
    if (p.type == control || p.type == unknown || p.type == byte) continue;
    std::string_view s = p.piece;
    for (size_t k = 1; k < s.size(); ++k) {
      if ((static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) continue;  // inside a code point
      std::string_view l = s.substr(0, k), r = s.substr(k);
      if (mergeable(l) && mergeable(r)) merges.push_back({l, r});
    }
  }
  return merges;
}

ordered_json added_token(const std::string& content, int32_t id, bool special) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

// The directory's files, as transformers' LlamaTokenizer.save_pretrained writes them.
void write_json(const fs::path& file, const ordered_json& j) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << j.dump(2) << "\n";
  out.close();
  if (!out) fail_file(file.string(), "write error");
}

ordered_json token_entry(const std::string& content) {
  return {{"content", content},
          {"lstrip", false},
          {"normalized", false},
          {"rstrip", false},
          {"single_word", false}};
}

void write_configs(const fs::path& dir, const SpModel& m, int64_t model_max_length) {
  const std::string* unk = piece_at(m, m.unk_id);
  const std::string* bos = piece_at(m, m.bos_id);
  const std::string* eos = piece_at(m, m.eos_id);
  ordered_json decoder = ordered_json::object();
  for (size_t i = 0; i < m.pieces.size(); ++i) {
    const SpPiece& p = m.pieces[i];
    if (p.type != unknown && p.type != control && p.type != user_defined) continue;
    ordered_json e = token_entry(p.piece);
    e["special"] = p.type != user_defined;
    decoder[std::to_string(i)] = e;
  }
  ordered_json config = {
      {"add_bos_token", bos != nullptr},
      {"add_eos_token", false},
      {"added_tokens_decoder", decoder},
      {"bos_token", bos ? ordered_json(*bos) : ordered_json()},
      {"clean_up_tokenization_spaces", false},
      {"eos_token", eos ? ordered_json(*eos) : ordered_json()},
      // legacy: each text segment gets the dummy prefix, as tokenizer.json's Prepend does.
      {"legacy", true},
      {"model_max_length", model_max_length},
      {"pad_token", nullptr},
      {"sp_model_kwargs", ordered_json::object()},
      {"spaces_between_special_tokens", false},
      {"tokenizer_class", "LlamaTokenizer"},
      {"unk_token", unk ? ordered_json(*unk) : ordered_json()},
      {"use_default_system_prompt", false},
  };
  write_json(dir / "tokenizer_config.json", config);
  ordered_json map = ordered_json::object();
  if (bos) map["bos_token"] = token_entry(*bos);
  if (eos) map["eos_token"] = token_entry(*eos);
  if (unk) map["unk_token"] = token_entry(*unk);
  write_json(dir / "special_tokens_map.json", map);
}

// The files this code writes into a tokenizer directory: an existing directory holding only these
// (or nothing) may be replaced.
bool replaceable(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name != "tokenizer.model" && name != "tokenizer.json" && name != "tokenizer_config.json" &&
        name != "special_tokens_map.json")
      return false;
  }
  return !ec;
}

// Appends the non-blank lines of text to the sentence file; returns how many.
size_t write_sentences(std::ofstream& out, std::string_view text) {
  size_t n = 0;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t\r\f\v") == std::string_view::npos) continue;
    out.write(line.data(), static_cast<std::streamsize>(line.size()));
    out.put('\n');
    ++n;
  }
  return n;
}

}  // namespace

std::string sentencepiece_bpe_to_tokenizer_json(const std::string& model_path) {
  const SpModel m = read_sp_model(model_path);
  auto cannot = [&](const std::string& why) {
    fail_file(model_path, "cannot be converted to a tokenizer.json: " + why);
  };
  if (m.model_type != model_type_bpe) cannot("not a BPE model");
  if (!m.precompiled_charsmap.empty())
    cannot("it normalizes text (a precompiled rule such as nmt_nfkc); train it with identity");
  if (m.remove_extra_whitespaces) cannot("it removes extra whitespace");
  if (!m.add_dummy_prefix || !m.escape_whitespaces || m.treat_whitespace_as_suffix)
    cannot("its whitespace handling differs from Llama's");
  const std::string* unk = piece_at(m, m.unk_id);
  if (!unk) cannot("it has no unknown piece");

  ordered_json added = ordered_json::array();
  // A std::map underneath: ordered_json's linear key search would be quadratic in the vocabulary.
  nlohmann::json vocab = nlohmann::json::object();
  for (size_t i = 0; i < m.pieces.size(); ++i) {
    const SpPiece& p = m.pieces[i];
    // JSON holds text: a piece that is not UTF-8 (a damaged or foreign .model) has no
    // tokenizer.json
    if (!utf8_valid(p.piece)) cannot("piece " + std::to_string(i) + " is not valid UTF-8");
    vocab[p.piece] = i;
    if (p.type == unknown || p.type == control || p.type == user_defined)
      added.push_back(added_token(p.piece, static_cast<int32_t>(i), p.type != user_defined));
  }
  if (vocab.size() != m.pieces.size()) cannot("two pieces have the same text");

  ordered_json post = nullptr;
  if (const std::string* bos = piece_at(m, m.bos_id)) {
    auto special = [](const std::string& id, int type_id) {
      return ordered_json{{"SpecialToken", {{"id", id}, {"type_id", type_id}}}};
    };
    auto sequence = [](const char* id, int type_id) {
      return ordered_json{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
    };
    post = {{"type", "TemplateProcessing"},
            {"single", {special(*bos, 0), sequence("A", 0)}},
            {"pair", {special(*bos, 0), sequence("A", 0), special(*bos, 1), sequence("B", 1)}},
            {"special_tokens", {{*bos, {{"id", *bos}, {"ids", {m.bos_id}}, {"tokens", {*bos}}}}}}};
  }
  const std::string meta = "\xE2\x96\x81";  // U+2581, SentencePiece's whitespace mark
  ordered_json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", meta}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", meta}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor", post},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", meta}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", *unk},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},  // SentencePiece fuses runs of unknown pieces too
        {"byte_fallback", m.byte_fallback},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", derive_merges(m)}}},
  };
  return j.dump(2);
}

TokenizerTrainSummary train_tokenizer(const TokenizerTrainOptions& o) {
  auto start = std::chrono::steady_clock::now();
  check(!o.inputs.empty(), "tokenizer train: no input files");
  check(!o.output_dir.empty(), "tokenizer train: the output directory is empty");
  if (o.model_type != "bpe" && o.model_type != "unigram") {
    fail("tokenizer train: model type '" + o.model_type + "' is not bpe or unigram");
  }
  fs::path out = fs::path(o.output_dir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();  // "dir/" names dir
  std::error_code ec;
  if (fs::exists(out, ec) && !replaceable(out)) {
    fail_file(out.string(),
              "exists and is not a tokenizer directory written by hibari; remove it or choose "
              "another --output");
  }
  const std::string pid = std::to_string(::getpid());
  const fs::path tmp = out.parent_path() / ("." + out.filename().string() + ".tmp." + pid);
  const fs::path old = out.parent_path() / ("." + out.filename().string() + ".old." + pid);
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) fail_file(tmp.string(), "cannot create directory: " + ec.message());

  TokenizerTrainSummary summary;
  try {
    // The sentences go through a file, so memory stays bounded whatever the corpus size.
    const fs::path text_file = tmp / "sentences.txt";
    {
      std::ofstream text(text_file, std::ios::binary);
      if (!text) fail_file(text_file.string(), "cannot open for writing");
      for (const std::string& path : o.inputs) {
        JsonlReader reader(path, {.key = o.json_key, .bad_lines = o.bad_lines});
        JsonlDocument doc;
        while (reader.next(doc)) {
          ++summary.documents;
          summary.sentences += write_sentences(text, doc.text);
        }
        summary.skipped += reader.skipped();
        summary.blank_lines += reader.blank_lines();
      }
      text.close();
      if (!text) fail_file(text_file.string(), "write error");
    }
    if (summary.sentences == 0) fail("tokenizer train: the inputs hold no text to train on");

    SentencePieceTrainOptions sp;
    sp.input_files = {text_file.string()};
    sp.model_prefix = (tmp / "tokenizer").string();
    sp.vocab_size = o.vocab_size;
    sp.model_type = o.model_type;
    sp.byte_fallback = o.byte_fallback;
    sp.character_coverage = o.character_coverage;
    sp.user_defined_symbols = o.user_defined_symbols;
    sp.input_sentence_size = o.max_sentences;
    sp.num_threads = o.threads;
    // As Llama's models: spaces kept as they are, so tokenizer.json can reproduce the model.
    sp.remove_extra_whitespaces = false;
    sp.allow_whitespace_only_pieces = true;
    sp.max_sentence_length = 1 << 16;  // long Japanese paragraphs are one line
    try {
      train_sentencepiece(sp);
    } catch (const Error& e) {
      // The message names the temporary prefix; name the directory the user asked for.
      std::string msg = e.what();
      const std::string prefix = "train_sentencepiece (" + sp.model_prefix + "): ";
      if (msg.rfind(prefix, 0) == 0) msg = msg.substr(prefix.size());
      fail_file(o.output_dir, "training failed: " + msg);
    }
    fs::remove(text_file, ec);
    fs::remove(tmp / "tokenizer.vocab", ec);

    const std::string model = (tmp / "tokenizer.model").string();
    const SpModel m = read_sp_model(model);
    summary.vocab_size = m.pieces.size();
    if (o.model_type == "bpe") {
      std::ofstream json(tmp / "tokenizer.json", std::ios::binary | std::ios::trunc);
      json << sentencepiece_bpe_to_tokenizer_json(model) << "\n";
      json.close();
      if (!json) fail_file((tmp / "tokenizer.json").string(), "write error");
    }
    write_configs(tmp, m, o.model_max_length);

    // Replace: the old directory moves aside first, so `out` is always whole or absent.
    bool had_old = fs::exists(out, ec);
    if (had_old) {
      fs::remove_all(old, ec);
      fs::rename(out, old, ec);
      if (ec) fail_file(out.string(), "cannot move the old directory aside: " + ec.message());
    }
    fs::rename(tmp, out, ec);
    if (ec) fail_file(out.string(), "cannot rename the new directory into place: " + ec.message());
    if (had_old) fs::remove_all(old, ec);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace hibari
