// data/tokenizer.cpp — the encode pipeline of Hugging Face `tokenizers`, in its order: added
// tokens are cut out of the raw text first; each remaining piece is normalized (normalized added
// tokens are then cut out of it), pre-tokenized into words, and each word goes through BPE; the
// post-processor's template adds special tokens.  Decode maps ids to token strings and runs the
// decoder chain.
#include "data/tokenizer.h"

#include "core/error.h"
#include "data/tokenizer_spec.h"

namespace hibari {

namespace {

// A piece of text, or an added token found in it.
struct Segment {
  Span span;
  int32_t added;  // index into spec.added, or -1 for text
};

// Rust's char::is_alphanumeric for the code point ending (starting) the text, which
// single_word uses to see a word boundary.
bool word_char(char32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
  return !is_unicode_whitespace(
      cp);  // approximation beyond ASCII; no shipped file sets single_word
}

// HF AddedVocabulary::find_matches: leftmost-longest matches, honouring single_word, lstrip and
// rstrip; text between matches becomes text segments.  With skip_special a special token's match
// is passed over and stays text, as HF's encode_special_tokens does (the match is still consumed).
void split_added(std::vector<Segment>& out, const AddedMatcher& m,
                 const std::vector<AddedToken>& added, std::string_view text, bool skip_special) {
  uint32_t start_offset = 0;
  for (size_t i = 0; i < text.size();) {
    if (!m.first_byte[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    int32_t hit = -1;
    size_t len = 0;
    for (uint32_t l : m.lengths) {
      if (l > text.size() - i) continue;
      auto it = m.by_content.find(text.substr(i, l));
      if (it != m.by_content.end()) {
        hit = it->second;
        len = l;
        break;
      }
    }
    if (hit < 0) {
      ++i;
      continue;
    }
    const AddedToken& t = added[static_cast<size_t>(hit)];
    if (skip_special && t.special) {
      i += len;
      continue;
    }
    size_t start = i, stop = i + len;
    if (t.single_word) {
      bool start_ok = true, stop_ok = true;
      if (start > 0) {
        size_t s = start - 1;
        while (s > 0 && (static_cast<unsigned char>(text[s]) & 0xC0) == 0x80) --s;
        start_ok = !word_char(utf8_next(text, s));
      }
      if (stop < text.size()) {
        size_t s = stop;
        stop_ok = !word_char(utf8_next(text, s));
      }
      if (!start_ok || !stop_ok) {
        i += len;  // HF's matcher has consumed this match all the same
        continue;
      }
    }
    if (t.lstrip) {
      size_t s = start;
      while (s > start_offset) {
        size_t p = s - 1;
        while (p > 0 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
        size_t q = p;
        if (!is_unicode_whitespace(utf8_next(text, q))) break;
        s = p;
      }
      start = s;
    }
    if (t.rstrip) {
      while (stop < text.size()) {
        size_t q = stop;
        if (!is_unicode_whitespace(utf8_next(text, q))) break;
        stop = q;
      }
    }
    if (start_offset < start) out.push_back({{start_offset, static_cast<uint32_t>(start)}, -1});
    out.push_back({{static_cast<uint32_t>(start), static_cast<uint32_t>(stop)}, hit});
    start_offset = static_cast<uint32_t>(stop);
    i = stop;
  }
  if (start_offset < text.size())
    out.push_back({{start_offset, static_cast<uint32_t>(text.size())}, -1});
}

// Encodes text that holds no raw added token: normalize, cut normalized added tokens, split, BPE.
void encode_piece(std::vector<int32_t>& ids, const TokenizerSpec& spec, std::string_view raw,
                  bool first, bool skip_special) {
  thread_local std::string normalized, words;
  thread_local std::vector<Span> spans;
  thread_local std::vector<Segment> segments;
  std::string_view text = raw;
  if (!spec.normalizers.empty()) {
    normalized.assign(raw);
    normalize(normalized, spec.normalizers);
    text = normalized;
  }
  // encode_piece is not re-entered on one thread, so the thread-local buffers are safe to reuse.
  segments.clear();
  if (spec.normalized_matcher.empty()) {
    if (!text.empty()) segments.push_back({{0, static_cast<uint32_t>(text.size())}, -1});
  } else {
    split_added(segments, spec.normalized_matcher, spec.added, text, skip_special);
  }
  for (const Segment& seg : segments) {
    if (seg.added >= 0) {
      ids.push_back(spec.added[static_cast<size_t>(seg.added)].id);
      continue;
    }
    words.clear();
    spans.clear();
    pre_tokenize(words, spans, text.substr(seg.span.begin, seg.span.end - seg.span.begin),
                 spec.pre_tokenizers, first && seg.span.begin == 0);
    for (Span w : spans)
      bpe_encode_word(ids, spec, std::string_view(words).substr(w.begin, w.end - w.begin));
  }
}

}  // namespace

Tokenizer::Tokenizer(const std::string& path) : spec(load_tokenizer_spec(path)) {}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens,
                                       SpecialTokensInText in_text) const {
  if (!utf8_valid(text)) fail_file(spec->path, "cannot encode text that is not valid UTF-8");
  std::vector<int32_t> content;
  content.reserve(text.size() / 3 + 4);
  std::vector<Segment> segments;
  const bool skip_special = in_text == SpecialTokensInText::ignore;
  split_added(segments, spec->raw_matcher, spec->added, text, skip_special);
  for (const Segment& seg : segments) {
    if (seg.added >= 0) {
      content.push_back(spec->added[static_cast<size_t>(seg.added)].id);
    } else {
      encode_piece(content, *spec, text.substr(seg.span.begin, seg.span.end - seg.span.begin),
                   seg.span.begin == 0, skip_special);
    }
  }
  if (!add_special_tokens || !spec->has_template) return content;
  std::vector<int32_t> ids;
  ids.reserve(content.size() + 4);
  for (const TemplatePiece& p : spec->single) {
    if (p.sequence) {
      ids.insert(ids.end(), content.begin(), content.end());
    } else {
      ids.insert(ids.end(), p.ids.begin(), p.ids.end());
    }
  }
  return ids;
}

std::optional<std::string> Tokenizer::token(int32_t id) const {
  auto it = spec->added_by_id.find(id);
  if (it != spec->added_by_id.end()) return spec->added[it->second].content;
  if (id >= 0 && static_cast<size_t>(id) < spec->bpe.id_to_token.size() &&
      !spec->bpe.id_to_token[static_cast<size_t>(id)].empty())
    return spec->bpe.id_to_token[static_cast<size_t>(id)];
  return std::nullopt;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    auto it = spec->added_by_id.find(id);
    if (it != spec->added_by_id.end()) {
      const AddedToken& t = spec->added[it->second];
      if (!(skip_special_tokens && t.special)) tokens.push_back(t.content);
    } else if (auto t = token(id)) {
      tokens.push_back(std::move(*t));
    }
  }
  if (spec->decoders.empty()) {  // HF joins with spaces when there is no decoder
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  return run_decoders(std::move(tokens), spec->decoders);
}

size_t Tokenizer::vocab_size() const {
  size_t n = spec->bpe.id_to_token.size();
  for (const AddedToken& t : spec->added) n = std::max(n, static_cast<size_t>(t.id) + 1);
  return n;
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  for (const AddedMatcher* m : {&spec->raw_matcher, &spec->normalized_matcher}) {
    auto it = m->by_content.find(token);
    if (it != m->by_content.end()) return spec->added[static_cast<size_t>(it->second)].id;
  }
  auto it = spec->bpe.vocab.find(token);
  if (it == spec->bpe.vocab.end()) return std::nullopt;
  return it->second;
}

std::optional<int32_t> Tokenizer::bos_id() const { return spec->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return spec->eos; }

bool Tokenizer::adds_bos() const {
  if (!spec->has_template || spec->single.empty() || spec->single[0].sequence) return false;
  const std::vector<int32_t>& first = spec->single[0].ids;
  return !first.empty() && (!spec->bos || first[0] == *spec->bos);
}

bool Tokenizer::lossless() const {
  bool byte_level_in = false, byte_level_out = false;
  for (const PreTokenizer& p : spec->pre_tokenizers)
    byte_level_in |= p.kind == PreTokenizerKind::byte_level;
  for (const TokenDecoder& d : spec->decoders) byte_level_out |= d.kind == DecoderKind::byte_level;
  for (const AddedToken& t : spec->added)
    if (t.lstrip || t.rstrip) return false;
  return byte_level_in && byte_level_out && spec->normalizers.empty();
}

const std::string& Tokenizer::path() const { return spec->path; }

}  // namespace hibari
