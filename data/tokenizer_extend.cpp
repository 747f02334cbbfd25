// data/tokenizer_extend.cpp — hibari tokenizer extend: SentencePiece BPE pieces from a corpus,
// added to a HF BPE tokenizer.json as new tokens with one appended merge each (tokenizer_extend.h).
#include "data/tokenizer_extend.h"

#include <sentencepiece_processor.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_set>
#include <utility>

#include "core/error.h"
#include "data/sentencepiece_tokenizer.h"
#include "data/tokenizer.h"
#include "data/tokenizer_spec.h"

namespace hibari {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr std::string_view metaspace = "\xE2\x96\x81";  // "▁", SentencePiece's space

// How the base writes text as tokens: SentencePiece's own pieces ("▁" for a space), or GPT-2's
// printable stand-ins for the UTF-8 bytes.
enum class Alphabet { metaspace, byte_level };

// A SentencePiece piece new to the base.
struct Candidate {
  std::string token;  // in the base's alphabet: a vocab key
  std::string text;   // the text it stands for
};

struct NewToken {
  std::string token, text;
  std::string left, right;  // the merge that makes it; both empty for a lone character
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_file(path.string(), "cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void write_file(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) fail_file(path.string(), "cannot write");
}

size_t count_chars(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t i = s.find(from); i != std::string::npos; i = s.find(from, i + to.size()))
    s.replace(i, from.size(), to);
  return s;
}

// The base's tokenizer.json, checked to hold a BPE model before anything else reads it.
json load_base_json(const std::string& file) {
  json j;
  try {
    j = json::parse(read_file(file));
  } catch (const json::exception& e) {
    fail_file(file, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    fail_file(file, "no \"model\" object; not a Hugging Face tokenizer.json");
  const json& model = j["model"];
  std::string type = model.value("type", model.contains("merges") ? "BPE" : "");
  if (type != "BPE")
    fail_file(file, "the model is " + (type.empty() ? std::string("untyped") : type) +
                        ", not BPE; tokenizer extend adds BPE tokens with merges");
  if (!model.contains("vocab") || !model["vocab"].is_object())
    fail_file(file, "the BPE model has no \"vocab\" object");
  if (model.contains("merges") && !model["merges"].is_array())
    fail_file(file, "the BPE model's \"merges\" is not a list");
  return j;
}

Alphabet alphabet_of(const TokenizerSpec& spec, const std::string& file) {
  for (const PreTokenizer& p : spec.pre_tokenizers)
    if (p.kind == PreTokenizerKind::byte_level) return Alphabet::byte_level;
  for (const PreTokenizer& p : spec.pre_tokenizers)
    if (p.kind == PreTokenizerKind::metaspace && p.replacement == metaspace)
      return Alphabet::metaspace;
  // Llama-2's legacy form: normalizers prepend "▁" and replace " " by it.
  for (const Normalizer& n : spec.normalizers)
    if (n.kind == NormalizerKind::replace && n.content == metaspace) return Alphabet::metaspace;
  fail_file(file,
            "the BPE model is neither ByteLevel nor Metaspace (\"▁\" for spaces); cannot write "
            "new tokens in its alphabet");
}

// The corpus documents, and the sentences (non-empty lines) SentencePiece trains on.
struct Corpus {
  std::vector<std::string> documents;
  std::vector<std::string> sentences;
  BadLineCounts skipped;
};

Corpus read_corpus(const TokenizerExtendOptions& o) {
  for (const std::string& f : o.inputs) {
    std::error_code ec;
    if (!fs::is_regular_file(f, ec)) fail_file(f, "no such corpus file");
  }
  Corpus c;
  for (const std::string& f : o.inputs) {
    JsonlReader reader(f, o.jsonl);
    JsonlDocument doc;
    while (reader.next(doc)) {
      std::string_view text = doc.text;
      for (size_t start = 0; start < text.size();) {
        size_t end = std::min(text.find('\n', start), text.size());
        std::string_view line = text.substr(start, end - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (!line.empty()) c.sentences.emplace_back(line);
        start = end + 1;
      }
      c.documents.push_back(std::move(doc.text));
    }
    c.skipped += reader.skipped();
  }
  if (c.documents.empty()) fail_file(o.inputs.front(), "the corpus holds no documents");
  return c;
}

size_t distinct_chars(const std::vector<std::string>& sentences) {
  std::unordered_set<char32_t> seen;
  for (const std::string& s : sentences)
    for (size_t i = 0; i < s.size();) seen.insert(utf8_next(s, i));
  return seen.size();
}

// The word cache of bpe_encode_word is keyed by TokenizerSpec::serial, so a spec changed in place
// needs a serial never used before; the high bit keeps these apart from load_tokenizer_spec's.
uint64_t fresh_serial() {
  static std::atomic<uint64_t> count{0};
  return (uint64_t{1} << 63) | ++count;
}

// Whether text, met inside a document, reaches BPE as the single word `token`: the normalizers
// leave it alone and the pre-tokenizers do not split it.  Otherwise no merge could ever form it.
bool one_word(const TokenizerSpec& spec, Alphabet alphabet, const Candidate& c) {
  if (alphabet == Alphabet::metaspace) {
    // Llama-2's normalizers only prepend "▁" and turn spaces into it: the piece is the word.  A
    // splitting Metaspace pre-tokenizer starts a word at every "▁".
    for (const PreTokenizer& p : spec.pre_tokenizers)
      if (p.kind == PreTokenizerKind::metaspace && p.split &&
          c.token.find(metaspace, 1) != std::string::npos)
        return false;
    return true;
  }
  std::string text = c.text;
  normalize(text, spec.normalizers);
  if (text != c.text) return false;
  std::string words;
  std::vector<Span> spans;
  pre_tokenize(words, spans, text, spec.pre_tokenizers, false);
  return spans.size() == 1 && words == c.token;
}

std::vector<Candidate> read_candidates(const std::string& model, const TokenizerSpec& spec,
                                       Alphabet alphabet) {
  const SentencePieceTokenizer sp(model);
  const sentencepiece::SentencePieceProcessor& p = *sp.processor;
  const auto& byte_chars = byte_level_chars();
  std::unordered_set<std::string> added_contents;
  for (const AddedToken& t : spec.added) added_contents.insert(t.content);
  std::unordered_set<std::string> seen;
  std::vector<Candidate> out;
  // A BPE .model lists its pieces in merge order (most frequent first), then the characters.
  for (int id = 0; id < p.GetPieceSize(); ++id) {
    if (p.IsControl(id) || p.IsUnknown(id) || p.IsByte(id) || p.IsUnused(id)) continue;
    Candidate c;
    c.text = replace_all(p.IdToPiece(id), metaspace, " ");
    if (alphabet == Alphabet::metaspace) {
      c.token = p.IdToPiece(id);
    } else {
      for (char b : c.text) c.token += byte_chars[static_cast<unsigned char>(b)];
    }
    if (spec.bpe.vocab.contains(c.token) || added_contents.contains(c.text)) continue;
    if (!one_word(spec, alphabet, c) || !seen.insert(c.token).second) continue;
    out.push_back(std::move(c));
  }
  return out;
}

// Adds candidates to spec (vocab and merges) pass after pass until `limit` are in or a pass adds
// nothing.  A candidate goes in when BPE now encodes it as exactly two tokens (their merge makes
// it), or, for byte-fallback models, when it is one character the vocabulary lacks.
std::vector<NewToken> choose_tokens(TokenizerSpec& spec, const std::vector<Candidate>& candidates,
                                    size_t limit, int32_t first_id, int32_t first_rank,
                                    Alphabet alphabet, bool merges_as_pairs, size_t& passes) {
  Bpe& bpe = spec.bpe;
  // The merge table is open addressing sized for what it held: make room once.
  MergeTable merges;
  merges.reserve(bpe.merges.size + std::min(limit, candidates.size()));
  for (const MergeTable::Slot& s : bpe.merges.slots)
    if (s.key != MergeTable::empty_key) merges.insert_or_assign(s.key, s.rank, s.merged_id);
  bpe.merges = std::move(merges);

  auto usable = [&](int32_t id) {
    if (bpe.unk && id == *bpe.unk) return false;
    if (std::find(bpe.byte_ids.begin(), bpe.byte_ids.end(), id) != bpe.byte_ids.end()) return false;
    return id >= 0 && static_cast<size_t>(id) < bpe.id_to_token.size() &&
           !bpe.id_to_token[static_cast<size_t>(id)].empty();
  };
  std::vector<NewToken> added;
  std::vector<bool> done(candidates.size(), false);
  std::vector<int32_t> ids;
  int32_t rank = first_rank;
  for (bool grew = true; grew && added.size() < limit;) {
    grew = false;
    ++passes;
    for (size_t i = 0; i < candidates.size() && added.size() < limit; ++i) {
      if (done[i]) continue;
      const Candidate& c = candidates[i];
      ids.clear();
      bpe_encode_word(ids, spec, c.token);
      NewToken t{c.token, c.text, "", ""};
      if (ids.size() == 2 && usable(ids[0]) && usable(ids[1])) {
        t.left = bpe.id_to_token[static_cast<size_t>(ids[0])];
        t.right = bpe.id_to_token[static_cast<size_t>(ids[1])];
        // "a b" strings cannot hold a token with a space in it.
        if (!merges_as_pairs &&
            (t.left.find(' ') != std::string::npos || t.right.find(' ') != std::string::npos)) {
          done[i] = true;
          continue;
        }
      } else if (!(bpe.byte_fallback && alphabet == Alphabet::metaspace &&
                   count_chars(c.token) == 1)) {
        continue;  // not reachable yet; perhaps after a later addition
      }
      int32_t id = first_id + static_cast<int32_t>(added.size());
      bpe.vocab.emplace(t.token, id);
      bpe.id_to_token.resize(static_cast<size_t>(id) + 1);
      bpe.id_to_token[static_cast<size_t>(id)] = t.token;
      if (!t.left.empty()) bpe.merges.insert_or_assign(MergeTable::key(ids[0], ids[1]), rank++, id);
      spec.serial = fresh_serial();
      added.push_back(std::move(t));
      done[i] = true;
      grew = true;
    }
  }
  return added;
}

// Indents the lines after the first of a pretty-printed value by `level` steps.
std::string nested(const json& v, int level) {
  return replace_all(v.dump(2), "\n", "\n" + std::string(2 * static_cast<size_t>(level), ' '));
}

// The extended tokenizer.json: the base's keys in Hugging Face's own order, its vocab by id with
// the new tokens after, and its merges with the new ones appended in the base's representation.
std::string render_tokenizer_json(const json& base, const std::vector<NewToken>& added,
                                  int32_t first_id, bool merges_as_pairs) {
  const json& model = base["model"];
  std::vector<std::pair<int64_t, std::string>> vocab;
  vocab.reserve(model["vocab"].size() + added.size());
  for (const auto& [token, id] : model["vocab"].items())
    vocab.emplace_back(id.get<int64_t>(), token);
  // HF `tokenizers` ignores the ids in "added_tokens" when it loads a file: a token the model
  // vocab lacks gets the next id after the model's vocab.len().  With new model tokens that would
  // shift Llama-3's and Qwen3's specials, so they go into the model vocab with their ids (where
  // Llama-2's file already has its <unk>, <s>, </s>); added-token matching still comes first.
  std::unordered_set<int64_t> taken;
  for (const auto& v : vocab) taken.insert(v.first);
  for (const json& t : base.value("added_tokens", json::array())) {
    const std::string content = t.value("content", "");
    const int64_t id = t.value("id", int64_t{-1});
    if (id >= 0 && !model["vocab"].contains(content) && taken.insert(id).second)
      vocab.emplace_back(id, content);
  }
  std::sort(vocab.begin(), vocab.end());
  for (size_t k = 0; k < added.size(); ++k)
    vocab.emplace_back(first_id + static_cast<int64_t>(k), added[k].token);

  std::string out = "{";
  bool first_key = true;
  auto key = [&](std::string_view name, int level) {
    out += first_key ? "\n" : ",\n";
    first_key = false;
    out.append(2 * static_cast<size_t>(level), ' ');
    out += json(name).dump() + ": ";
  };
  auto ordered = [](const json& obj, std::vector<std::string> order) {
    std::vector<std::string> keys;
    for (const std::string& k : order)
      if (obj.contains(k)) keys.push_back(k);
    for (const auto& [k, v] : obj.items())
      if (std::find(order.begin(), order.end(), k) == order.end()) keys.push_back(k);
    return keys;
  };
  for (const std::string& k :
       ordered(base, {"version", "truncation", "padding", "added_tokens", "normalizer",
                      "pre_tokenizer", "post_processor", "decoder", "model"})) {
    key(k, 1);
    if (k != "model") {
      out += nested(base[k], 1);
      continue;
    }
    out += "{";
    first_key = true;
    for (const std::string& mk :
         ordered(model,
                 {"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix",
                  "fuse_unk", "byte_fallback", "ignore_merges", "vocab", "merges"})) {
      key(mk, 2);
      if (mk == "vocab") {
        out += "{";
        for (size_t i = 0; i < vocab.size(); ++i) {
          out += i ? ",\n      " : "\n      ";
          out += json(vocab[i].second).dump() + ": " + std::to_string(vocab[i].first);
        }
        out += "\n    }";
      } else if (mk == "merges") {
        out += "[";
        bool first_merge = true;
        auto merge = [&](const std::string& text) {
          out += first_merge ? "\n      " : ",\n      ";
          first_merge = false;
          out += text;
        };
        for (const json& m : model["merges"]) merge(m.dump());
        for (const NewToken& t : added) {
          if (t.left.empty()) continue;
          merge(merges_as_pairs ? json::array({t.left, t.right}).dump()
                                : json(t.left + " " + t.right).dump());
        }
        out += "\n    ]";
      } else {
        out += nested(model[mk], 2);
      }
    }
    out += "\n  }";
    first_key = false;
  }
  out += "\n}\n";
  return out;
}

// Indices of the new tokens the written tokenizer does not produce for their own text.
std::vector<size_t> unreachable(const Tokenizer& tok, const std::vector<NewToken>& added,
                                int32_t first_id, Alphabet alphabet) {
  std::vector<size_t> bad;
  std::vector<int32_t> ids;
  for (size_t k = 0; k < added.size(); ++k) {
    const NewToken& t = added[k];
    const std::vector<int32_t> want = {first_id + static_cast<int32_t>(k)};
    ids.clear();
    bpe_encode_word(ids, *tok.spec, t.token);
    bool ok = ids == want;
    // The whole pipeline too: a ByteLevel text as it is; a "▁word" token as the start of a text,
    // where the Metaspace normalizer or pre-tokenizer puts the "▁".
    if (ok && alphabet == Alphabet::byte_level) ok = tok.encode(t.text, false) == want;
    if (ok && alphabet == Alphabet::metaspace && t.text.size() > 1 && t.text[0] == ' ' &&
        t.text[1] != ' ')
      ok = tok.encode(std::string_view(t.text).substr(1), false) == want;
    if (!ok) bad.push_back(k);
  }
  return bad;
}

// added without the tokens at `bad` and every token whose merge needs one of them.
std::vector<NewToken> without(const std::vector<NewToken>& added, const std::vector<size_t>& bad) {
  std::unordered_set<std::string> gone;
  for (size_t k : bad) gone.insert(added[k].token);
  std::vector<NewToken> kept;
  for (const NewToken& t : added) {
    if (gone.contains(t.token) || gone.contains(t.left) || gone.contains(t.right)) {
      gone.insert(t.token);
      continue;
    }
    kept.push_back(t);
  }
  return kept;
}

// Characters and tokens of the corpus under one tokenizer (no special tokens).
uint64_t count_tokens(const Tokenizer& tok, const std::vector<std::string>& documents) {
  uint64_t tokens = 0;
  const int64_t n = static_cast<int64_t>(documents.size());
#pragma omp parallel for reduction(+ : tokens) schedule(dynamic, 16)
  for (int64_t i = 0; i < n; ++i)
    tokens += tok.encode(documents[static_cast<size_t>(i)], false).size();
  return tokens;
}

// Where the output goes; an Error when something is in the way.
fs::path checked_output(const std::string& output) {
  if (output.empty()) fail("tokenizer extend: no output directory given");
  fs::path out = fs::path(output).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  std::error_code ec;
  if (fs::exists(out, ec) && !(fs::is_directory(out, ec) && fs::is_empty(out, ec)))
    fail_file(out.string(), "already exists (give a new or empty directory)");
  return out;
}

}  // namespace

double TokenizerExtendReport::chars_per_token_before() const {
  return tokens_before ? static_cast<double>(chars) / static_cast<double>(tokens_before) : 0.0;
}
double TokenizerExtendReport::chars_per_token_after() const {
  return tokens_after ? static_cast<double>(chars) / static_cast<double>(tokens_after) : 0.0;
}

TokenizerExtendReport extend_tokenizer(const TokenizerExtendOptions& o) {
  if (o.add < 1) fail("tokenizer extend: the number of tokens to add must be at least 1");
  if (o.inputs.empty()) fail("tokenizer extend: no corpus file given");
  const fs::path out = checked_output(o.output);
  fs::path base_file = o.base;
  if (fs::is_directory(base_file)) base_file /= "tokenizer.json";
  if (!fs::is_regular_file(base_file)) fail_file(base_file.string(), "no such tokenizer file");
  const json base = load_base_json(base_file.string());
  const Tokenizer base_tok(base_file.string());
  const Alphabet alphabet = alphabet_of(*base_tok.spec, base_file.string());
  Corpus corpus = read_corpus(o);

  TokenizerExtendReport r;
  r.skipped = corpus.skipped;
  r.documents = corpus.documents.size();
  r.base_vocab_size = base_tok.vocab_size();
  r.first_new_id = static_cast<int32_t>(r.base_vocab_size);
  const json& merges = base["model"].value("merges", json::array());
  const bool merges_as_pairs = !merges.empty() && merges[0].is_array();

  if (!out.parent_path().empty()) fs::create_directories(out.parent_path());
  const fs::path staging =
      out.parent_path() / ("." + out.filename().string() + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(staging);
  fs::create_directories(staging / "sentencepiece");
  try {
    // Candidates: a SentencePiece BPE model of the corpus, big enough that after dropping what
    // the base has there are still `add` to choose from.
    SentencePieceTrainOptions sp;
    sp.sentences = std::move(corpus.sentences);
    sp.model_prefix = (staging / "sentencepiece" / "candidates").string();
    const int64_t want = o.add * std::max(1, o.candidates_per_token);
    sp.vocab_size = static_cast<int>(
        std::min<int64_t>(3 + static_cast<int64_t>(distinct_chars(sp.sentences)) + want, 1 << 20));
    sp.model_type = "bpe";
    sp.byte_fallback = false;  // byte pieces are never candidates; leave their room to pieces
    sp.num_threads = o.num_threads;
    try {
      train_sentencepiece(sp);
    } catch (const Error& e) {
      // A small corpus runs out of pairs to merge first; the trainer says how far it got.
      const std::string message = e.what();
      const std::string_view hint = "Please set it to a value <= ";
      const size_t at = message.find(hint);
      if (at == std::string::npos) throw;
      const int most = std::atoi(message.c_str() + at + hint.size());
      if (most <= 0 || most >= sp.vocab_size) throw;
      sp.vocab_size = most;
      train_sentencepiece(sp);
    }
    sp.sentences = {};
    std::vector<Candidate> candidates =
        read_candidates(sp.model_prefix + ".model", *base_tok.spec, alphabet);
    r.candidates = candidates.size();
    fs::remove_all(staging / "sentencepiece");

    TokenizerSpec spec = *base_tok.spec;
    std::vector<NewToken> added =
        choose_tokens(spec, candidates, static_cast<size_t>(o.add), r.first_new_id,
                      static_cast<int32_t>(merges.size()), alphabet, merges_as_pairs, r.passes);

    const fs::path base_dir = base_file.parent_path();
    for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
      // Nothing in them depends on the model vocabulary: the added tokens keep their ids.
      if (fs::is_regular_file(base_dir / name)) fs::copy_file(base_dir / name, staging / name);
    }
    // Write, load back, and drop what the real encoder does not produce, until nothing is dropped.
    std::unique_ptr<Tokenizer> tok;
    for (int round = 0;; ++round) {
      write_file(staging / "tokenizer.json",
                 render_tokenizer_json(base, added, r.first_new_id, merges_as_pairs));
      tok = std::make_unique<Tokenizer>((staging / "tokenizer.json").string());
      std::vector<size_t> bad = unreachable(*tok, added, r.first_new_id, alphabet);
      if (bad.empty()) break;
      if (round == 8) fail("tokenizer extend: new tokens stay unreachable after 8 rounds");
      added = without(added, bad);
    }
    r.added = added.size();
    r.vocab_size = tok->vocab_size();
    for (const NewToken& t : added) r.tokens.push_back(t.token);
    for (const std::string& d : corpus.documents) r.chars += count_chars(d);
    r.tokens_before = count_tokens(base_tok, corpus.documents);
    r.tokens_after = count_tokens(*tok, corpus.documents);

    std::error_code ec;
    if (fs::exists(out, ec)) fs::remove(out);  // an empty directory (checked_output)
    fs::rename(staging, out);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staging, ec);
    throw;
  }
  return r;
}

}  // namespace hibari
