// data/tokenizer_spec.h — a loaded tokenizer.json as plain data: one struct per component kind of
// Hugging Face `tokenizers` (normalizers, pre-tokenizers, the BPE model, added tokens,
// post-processor, decoders).  data/tokenizer_json.cpp fills it; the other tokenizer_*.cpp files run
// it.  Internal to data/: callers use data/tokenizer.h.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "data/tokenizer_unicode.h"

namespace hibari {

// A byte range [begin, end) of some buffer.
struct Span {
  uint32_t begin, end;
};

// Hash and equality that let unordered maps keyed by std::string be probed with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct CompiledRegex;  // PCRE2 code, JIT-compiled (data/tokenizer_pretokenize.cpp)
// HF's Pattern: a literal string or a regex.
struct Pattern {
  std::string literal;
  std::shared_ptr<const CompiledRegex> regex;  // set for {"Regex": ...}
};
std::shared_ptr<const CompiledRegex> compile_regex(std::string_view path, std::string_view pattern);
// Appends every (non-overlapping, leftmost-first) match of p in text to out.
void find_matches(std::vector<Span>& out, const Pattern& p, std::string_view text);
// Replaces every match of p in text by `content` (the Replace normalizer and decoder). `matches`
// and `scratch` are the caller's reusable buffers.
void replace_matches(std::string& text, const Pattern& p, std::string_view content,
                     std::vector<Span>& matches, std::string& scratch);

enum class NormalizerKind { unicode, prepend, replace, strip };
struct Normalizer {
  NormalizerKind kind;
  UnicodeForm form = UnicodeForm::nfc;  // unicode
  std::string content{};                // prepend, replace
  Pattern pattern{};                    // replace
  bool strip_left = false, strip_right = false;
};

enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };
enum class PrependScheme { always, first, never };
enum class PreTokenizerKind { split, byte_level, metaspace, digits };
struct PreTokenizer {
  PreTokenizerKind kind;
  Pattern pattern{};  // split; byte_level with use_regex
  SplitBehavior behavior = SplitBehavior::isolated;
  bool invert = false;
  bool add_prefix_space = false;  // byte_level
  bool use_regex = false;         // byte_level
  std::string replacement{};      // metaspace
  PrependScheme prepend_scheme = PrependScheme::always;
  bool split = true;               // metaspace
  bool individual_digits = false;  // digits
};

// Merge ranks keyed by (left id << 32 | right id): open addressing, because this lookup is the
// inner loop of BPE and std::unordered_map's node chasing costs more than the merge itself.
struct MergeTable {
  struct Slot {
    uint64_t key = empty_key;
    int32_t rank = 0, merged_id = 0;
  };
  static constexpr uint64_t empty_key = ~uint64_t{0};
  std::vector<Slot> slots;
  uint32_t shift = 64;
  size_t size = 0;

  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  size_t home(uint64_t k) const {
    return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> shift);
  }
  void reserve(size_t n) {  // before any insert: at most half full
    size_t cap = 16;
    shift = 60;
    while (cap < 2 * n) cap *= 2, --shift;
    slots.assign(cap, Slot{});
  }
  // A repeated key takes the new value (HF's map keeps the last merge of a pair).
  void insert_or_assign(uint64_t k, int32_t rank, int32_t merged_id) {
    for (size_t i = home(k);; i = (i + 1) & (slots.size() - 1)) {
      if (slots[i].key == k || slots[i].key == empty_key) {
        size += slots[i].key == empty_key;
        slots[i] = {k, rank, merged_id};
        return;
      }
    }
  }
  const Slot* find(int32_t a, int32_t b) const {
    if (slots.empty()) return nullptr;
    uint64_t k = key(a, b);
    for (size_t i = home(k);; i = (i + 1) & (slots.size() - 1)) {
      if (slots[i].key == k) return &slots[i];
      if (slots[i].key == empty_key) return nullptr;
    }
  }
};

struct Bpe {
  StringIdMap vocab;
  std::vector<std::string> id_to_token;  // model tokens; "" where the vocab has a gap
  MergeTable merges;
  std::optional<int32_t> unk;
  bool byte_fallback = false, fuse_unk = false, ignore_merges = false;
  std::string continuing_subword_prefix, end_of_word_suffix;
  std::array<int32_t, 256> byte_ids;  // ids of <0x00>..<0xFF>, -1 where absent
};

struct AddedToken {
  std::string content;
  int32_t id;
  bool special, normalized, lstrip, rstrip, single_word;
};
// Finds added tokens in text, leftmost-longest like HF's Aho-Corasick matcher.
struct AddedMatcher {
  std::unordered_map<std::string_view, int32_t> by_content;  // content -> index into added
  std::vector<uint32_t> lengths;  // distinct content lengths, longest first
  std::array<bool, 256> first_byte{};
  bool empty() const { return by_content.empty(); }
};

// One piece of the post-processor's template: the input sequence, or fixed special token ids.
struct TemplatePiece {
  bool sequence;
  std::vector<int32_t> ids;
};

enum class DecoderKind { byte_level, replace, byte_fallback, fuse, strip, metaspace };
struct TokenDecoder {
  DecoderKind kind;
  Pattern pattern{};           // replace
  std::string content{};       // replace: replacement; strip: the char; metaspace: replacement
  size_t start = 0, stop = 0;  // strip
  PrependScheme prepend_scheme = PrependScheme::always;  // metaspace
};

struct TokenizerSpec {
  std::string path;
  uint64_t serial = 0;  // distinguishes tokenizers in the thread-local BPE caches
  std::vector<AddedToken> added;
  std::unordered_map<int32_t, size_t> added_by_id;  // id -> index into added
  AddedMatcher raw_matcher, normalized_matcher;
  std::vector<Normalizer> normalizers;
  std::vector<PreTokenizer> pre_tokenizers;
  Bpe bpe;
  bool has_template = false;
  std::vector<TemplatePiece> single;  // the post-processor's template for one sequence
  std::vector<TokenDecoder> decoders;
  std::optional<int32_t> bos, eos;
};

// data/tokenizer_json.cpp
std::shared_ptr<const TokenizerSpec> load_tokenizer_spec(const std::string& path);

// data/tokenizer_pretokenize.cpp: normalizers and pre-tokenizers.  `first` says whether the text
// starts at offset 0 of the original input (Metaspace's prepend_scheme "first").
void normalize(std::string& text, const std::vector<Normalizer>& normalizers);
// Splits text into words, appending them to `words` (one buffer) as spans.
void pre_tokenize(std::string& words, std::vector<Span>& spans, std::string_view text,
                  const std::vector<PreTokenizer>& pre_tokenizers, bool first);
// GPT-2's byte <-> printable-char map used by ByteLevel.
const std::array<std::string, 256>& byte_level_chars();
// Inverse map: code point -> byte, or -1.
int byte_level_byte(char32_t cp);

// data/tokenizer_bpe.cpp: appends the ids of one word.
void bpe_encode_word(std::vector<int32_t>& ids, const TokenizerSpec& spec, std::string_view word);

// data/tokenizer_decode.cpp: the decoder chain over token strings.
std::string run_decoders(std::vector<std::string> tokens,
                         const std::vector<TokenDecoder>& decoders);

}  // namespace hibari
