// data/tokenizer_json.cpp — reads a Hugging Face tokenizer.json into a TokenizerSpec.  Every
// component type is checked here: one this code does not run is an error naming the file and the
// component, so a tokenizer never silently encodes differently from HF.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/json_fields.h"
#include "data/tokenizer_spec.h"

namespace hibari {

namespace {

using nlohmann::json;

// GPT-2's pre-tokenizer regex, used by ByteLevel when use_regex is true.
constexpr std::string_view gpt2_regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Loader {
  std::string path;

  [[noreturn]] void unsupported(std::string_view what, const json& j) const {
    std::string type =
        j.is_object() && j.contains("type") ? j["type"].dump() : j.dump().substr(0, 80);
    fail_file(path, "unsupported " + std::string(what) + " " + type);
  }
  const json& need(const json& j, const char* key, std::string_view where) const {
    if (!j.is_object() || !j.contains(key) || j[key].is_null())
      fail_file(path, std::string(where) + " has no \"" + key + "\"");
    return j[key];
  }
  // Typed reads: HF tokenizers (serde) refuses a wrong-typed field, so hibari does too — a
  // "true" read as false would silently change the ids (ignore_merges on Llama 3).
  bool flag(const json& j, const char* key, bool fallback) const {
    return json_get_bool(j, key, fallback, path);
  }
  std::string text(const json& j, const char* key, std::string fallback) const {
    return json_get_string(j, key, std::move(fallback), path);
  }
  std::string need_text(const json& j, const char* key, std::string_view where) const {
    return json_as_string(need(j, key, where), std::string(where) + " \"" + key + "\"", path);
  }
  // A token id: an integer in [0, 2^31) (HF: u32; hibari's ids are int32) — never 1.5 read as 1
  // or 2^40 wrapped to 0.
  int32_t id(const json& v, const std::string& what) const {
    return static_cast<int32_t>(json_as_int(v, what, path, 0, INT32_MAX));
  }

  Pattern pattern(const json& j, std::string_view where) const {
    const json& p = need(j, "pattern", where);
    if (p.contains("String"))
      return {need_text(p, "String", std::string(where) + " pattern"), nullptr};
    if (p.contains("Regex"))
      return {"", compile_regex(path, need_text(p, "Regex", std::string(where) + " pattern"))};
    fail_file(path, std::string(where) + " pattern is neither String nor Regex");
  }

  void normalizer(std::vector<Normalizer>& out, const json& j) const {
    if (j.is_null()) return;
    std::string type = need_text(j, "type", "normalizer");
    if (type == "Sequence") {
      for (const json& n : need(j, "normalizers", "Sequence normalizer")) normalizer(out, n);
    } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
      UnicodeForm form = type == "NFC"    ? UnicodeForm::nfc
                         : type == "NFD"  ? UnicodeForm::nfd
                         : type == "NFKC" ? UnicodeForm::nfkc
                                          : UnicodeForm::nfkd;
      out.push_back({.kind = NormalizerKind::unicode, .form = form});
    } else if (type == "Prepend") {
      out.push_back({.kind = NormalizerKind::prepend,
                     .content = need_text(j, "prepend", "Prepend normalizer")});
    } else if (type == "Replace") {
      out.push_back({.kind = NormalizerKind::replace,
                     .content = need_text(j, "content", "Replace normalizer"),
                     .pattern = pattern(j, "Replace normalizer")});
    } else if (type == "Strip") {
      out.push_back({.kind = NormalizerKind::strip,
                     .strip_left = flag(j, "strip_left", true),
                     .strip_right = flag(j, "strip_right", true)});
    } else {
      unsupported("normalizer", j);
    }
  }

  PrependScheme prepend_scheme(const json& j) const {
    if (json_field(j, "prepend_scheme")) {
      std::string s = need_text(j, "prepend_scheme", "Metaspace");
      if (s == "always") return PrependScheme::always;
      if (s == "first") return PrependScheme::first;
      if (s == "never") return PrependScheme::never;
      fail_file(path, "unsupported Metaspace prepend_scheme \"" + s + "\"");
    }
    // Files before prepend_scheme existed say add_prefix_space.
    return flag(j, "add_prefix_space", true) ? PrependScheme::always : PrependScheme::never;
  }

  void pre_tokenizer(std::vector<PreTokenizer>& out, const json& j) const {
    if (j.is_null()) return;
    std::string type = need_text(j, "type", "pre_tokenizer");
    if (type == "Sequence") {
      for (const json& p : need(j, "pretokenizers", "Sequence pre_tokenizer"))
        pre_tokenizer(out, p);
    } else if (type == "Split") {
      std::string b = need_text(j, "behavior", "Split pre_tokenizer");
      SplitBehavior behavior;
      if (b == "Removed") {
        behavior = SplitBehavior::removed;
      } else if (b == "Isolated") {
        behavior = SplitBehavior::isolated;
      } else if (b == "MergedWithPrevious") {
        behavior = SplitBehavior::merged_with_previous;
      } else if (b == "MergedWithNext") {
        behavior = SplitBehavior::merged_with_next;
      } else if (b == "Contiguous") {
        behavior = SplitBehavior::contiguous;
      } else {
        fail_file(path, "unsupported Split behavior \"" + b + "\"");
      }
      out.push_back({.kind = PreTokenizerKind::split,
                     .pattern = pattern(j, "Split pre_tokenizer"),
                     .behavior = behavior,
                     .invert = flag(j, "invert", false)});
    } else if (type == "ByteLevel") {
      bool use_regex = flag(j, "use_regex", true);
      out.push_back({.kind = PreTokenizerKind::byte_level,
                     .pattern = {"", use_regex ? compile_regex(path, gpt2_regex) : nullptr},
                     .add_prefix_space = flag(j, "add_prefix_space", true),
                     .use_regex = use_regex});
    } else if (type == "Metaspace") {
      out.push_back({.kind = PreTokenizerKind::metaspace,
                     .replacement = text(j, "replacement", "\u2581"),
                     .prepend_scheme = prepend_scheme(j),
                     .split = flag(j, "split", true)});
    } else if (type == "Digits") {
      out.push_back({.kind = PreTokenizerKind::digits,
                     .individual_digits = flag(j, "individual_digits", false)});
    } else {
      unsupported("pre_tokenizer", j);
    }
  }

  void decoder(std::vector<TokenDecoder>& out, const json& j) const {
    if (j.is_null()) return;
    std::string type = need_text(j, "type", "decoder");
    if (type == "Sequence") {
      for (const json& d : need(j, "decoders", "Sequence decoder")) decoder(out, d);
    } else if (type == "ByteLevel") {
      out.push_back({.kind = DecoderKind::byte_level});
    } else if (type == "Replace") {
      out.push_back({.kind = DecoderKind::replace,
                     .pattern = pattern(j, "Replace decoder"),
                     .content = need_text(j, "content", "Replace decoder")});
    } else if (type == "ByteFallback") {
      out.push_back({.kind = DecoderKind::byte_fallback});
    } else if (type == "Fuse") {
      out.push_back({.kind = DecoderKind::fuse});
    } else if (type == "Strip") {
      out.push_back({.kind = DecoderKind::strip,
                     .content = need_text(j, "content", "Strip decoder"),
                     .start = size_t(json_as_int(need(j, "start", "Strip decoder"),
                                                 "Strip decoder \"start\"", path, 0, INT32_MAX)),
                     .stop = size_t(json_as_int(need(j, "stop", "Strip decoder"),
                                                "Strip decoder \"stop\"", path, 0, INT32_MAX))});
    } else if (type == "Metaspace") {
      out.push_back({.kind = DecoderKind::metaspace,
                     .content = text(j, "replacement", "\u2581"),
                     .prepend_scheme = prepend_scheme(j)});
    } else {
      unsupported("decoder", j);
    }
  }

  // The template for a single sequence, flattened over Sequence processors.
  void post_processor(TokenizerSpec& spec, const json& j) const {
    if (j.is_null()) return;
    std::string type = need_text(j, "type", "post_processor");
    if (type == "Sequence") {
      for (const json& p : need(j, "processors", "Sequence post_processor"))
        post_processor(spec, p);
    } else if (type == "ByteLevel") {
      // Only trims offsets; ids are unchanged.
    } else if (type == "TemplateProcessing") {
      if (spec.has_template) fail_file(path, "more than one TemplateProcessing post_processor");
      spec.has_template = true;
      const json& specials = need(j, "special_tokens", "TemplateProcessing");
      for (const json& piece : need(j, "single", "TemplateProcessing")) {
        if (piece.contains("Sequence")) {
          if (piece["Sequence"]["id"] != "A")
            fail_file(path, "single template uses a sequence other than A");
          spec.single.push_back({true, {}});
        } else if (piece.contains("SpecialToken")) {
          std::string name = need_text(piece["SpecialToken"], "id", "template SpecialToken");
          if (!specials.contains(name))
            fail_file(path,
                      "template names special token \"" + name + "\" missing from special_tokens");
          const json& ids = need(specials[name], "ids", "special token \"" + name + "\"");
          if (!ids.is_array()) fail_file(path, "special token \"" + name + "\" ids is not a list");
          std::vector<int32_t> values;
          for (const json& v : ids) values.push_back(id(v, "special token \"" + name + "\" id"));
          spec.single.push_back({false, std::move(values)});
        } else {
          fail_file(path, "unsupported TemplateProcessing piece " + piece.dump());
        }
      }
    } else if (type == "BertProcessing" || type == "RobertaProcessing") {
      if (spec.has_template) fail_file(path, "more than one template post_processor");
      spec.has_template = true;
      for (const char* key : {"cls", "sep"}) {
        const json& pair = need(j, key, type);
        if (!pair.is_array() || pair.size() != 2)
          fail_file(path, type + " \"" + key + "\" is not a [token, id] pair");
        if (std::string(key) == "sep") spec.single.push_back({true, {}});
        spec.single.push_back({false, {id(pair[1], type + " \"" + key + "\" id")}});
      }
    } else {
      unsupported("post_processor", j);
    }
  }

  void model(Bpe& bpe, const json& j) const {
    if (j.is_null()) fail_file(path, "no \"model\"");
    // No "type": HF tries each model in turn; hibari runs BPE only.
    std::string type = text(j, "type", "BPE");
    if (type != "BPE") unsupported("model", j);
    if (!j.contains("vocab") || !j["vocab"].is_object())
      fail_file(path, "BPE model has no \"vocab\" object");
    if (json_get_number(j, "dropout", 0.0, path) != 0.0)
      fail_file(path, "BPE dropout is not supported (encoding would be random)");
    int32_t max_id = -1;
    bpe.vocab.reserve(j["vocab"].size());
    for (const auto& [token, value] : j["vocab"].items()) {
      int32_t i = id(value, "id of vocab token \"" + token.substr(0, 40) + "\"");
      bpe.vocab.emplace(token, i);
      max_id = std::max(max_id, i);
    }
    bpe.id_to_token.assign(static_cast<size_t>(max_id + 1), "");
    for (const auto& [token, id] : bpe.vocab) bpe.id_to_token[static_cast<size_t>(id)] = token;
    bpe.byte_fallback = flag(j, "byte_fallback", false);
    bpe.fuse_unk = flag(j, "fuse_unk", false);
    bpe.ignore_merges = flag(j, "ignore_merges", false);
    bpe.continuing_subword_prefix = text(j, "continuing_subword_prefix", "");
    bpe.end_of_word_suffix = text(j, "end_of_word_suffix", "");
    if (json_field(j, "unk_token")) {
      auto it = bpe.vocab.find(text(j, "unk_token", ""));
      if (it == bpe.vocab.end())
        fail_file(path, "unk_token " + j["unk_token"].dump() + " is not in the vocab");
      bpe.unk = it->second;
    }
    bpe.byte_ids.fill(-1);
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      auto it = bpe.vocab.find(std::string_view(name));
      if (it != bpe.vocab.end()) bpe.byte_ids[b] = it->second;
    }
    auto id_of = [&](std::string_view token) {
      auto it = bpe.vocab.find(token);
      if (it == bpe.vocab.end())
        fail_file(path, "merge uses \"" + std::string(token) + "\", not in the vocab");
      return it->second;
    };
    const json& merges = j.contains("merges") ? j["merges"] : json::array();
    bpe.merges.reserve(merges.size());
    std::string merged;
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const json& m = merges[rank];
      std::string a, b;
      if (m.is_string()) {  // "a b", split at the first space as HF does
        const std::string& s = m.get_ref<const std::string&>();
        size_t space = s.find(' ');
        if (space == std::string::npos) fail_file(path, "merge \"" + s + "\" is not two tokens");
        a = s.substr(0, space);
        b = s.substr(space + 1);
      } else if (m.is_array() && m.size() == 2) {  // newer files: ["a", "b"]
        a = json_as_string(m[0], "merge " + std::to_string(rank), path);
        b = json_as_string(m[1], "merge " + std::to_string(rank), path);
      } else {
        fail_file(path, "merge " + m.dump() + " is neither \"a b\" nor [a, b]");
      }
      std::string_view b_rest = b;
      if (b_rest.starts_with(bpe.continuing_subword_prefix))
        b_rest.remove_prefix(bpe.continuing_subword_prefix.size());
      merged.assign(a);
      merged += b_rest;
      bpe.merges.insert_or_assign(MergeTable::key(id_of(a), id_of(b)), static_cast<int32_t>(rank),
                                  id_of(merged));
    }
  }

  void added_tokens(TokenizerSpec& spec, const json& j) const {
    if (j.is_null()) return;
    for (const json& t : j) {
      spec.added.push_back({.content = need_text(t, "content", "added token"),
                            .id = id(need(t, "id", "added token"), "added token \"id\""),
                            .special = flag(t, "special", false),
                            .normalized = flag(t, "normalized", !flag(t, "special", false)),
                            .lstrip = flag(t, "lstrip", false),
                            .rstrip = flag(t, "rstrip", false),
                            .single_word = flag(t, "single_word", false)});
      if (spec.added.back().content.empty()) fail_file(path, "added token with empty content");
    }
    for (size_t i = 0; i < spec.added.size(); ++i) {
      const AddedToken& t = spec.added[i];
      spec.added_by_id[t.id] = i;
      AddedMatcher& m = t.normalized ? spec.normalized_matcher : spec.raw_matcher;
      m.by_content.emplace(t.content, static_cast<int32_t>(i));
      m.first_byte[static_cast<unsigned char>(t.content[0])] = true;
      if (std::find(m.lengths.begin(), m.lengths.end(), t.content.size()) == m.lengths.end())
        m.lengths.push_back(static_cast<uint32_t>(t.content.size()));
    }
    for (AddedMatcher* m : {&spec.raw_matcher, &spec.normalized_matcher})
      std::sort(m->lengths.begin(), m->lengths.end(), std::greater<>());
  }

  // BOS/EOS as tokenizer_config.json names them ("bos_token": "<s>" or {"content": "<s>"}).
  void special_ids(TokenizerSpec& spec, const std::filesystem::path& config) const {
    auto id_of = [&](const json& j) -> std::optional<int32_t> {
      const std::string file = config.string();
      std::string name = j.is_string()   ? j.get<std::string>()
                         : j.is_object() ? json_get_string(j, "content", "", file)
                                         : "";
      if (name.empty()) return std::nullopt;
      for (const AddedToken& t : spec.added)
        if (t.content == name) return t.id;
      auto it = spec.bpe.vocab.find(name);
      if (it == spec.bpe.vocab.end()) return std::nullopt;
      return it->second;
    };
    if (std::filesystem::exists(config)) {
      std::ifstream in(config, std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      const json c = parse_json_file(text.str(), config.string());
      if (c.contains("bos_token")) spec.bos = id_of(c["bos_token"]);
      if (c.contains("eos_token")) spec.eos = id_of(c["eos_token"]);
    }
    // Without a config, the token the template puts first is the BOS.
    if (!spec.bos && spec.has_template && !spec.single.empty() && !spec.single[0].sequence &&
        !spec.single[0].ids.empty())
      spec.bos = spec.single[0].ids[0];
  }
};

}  // namespace

std::shared_ptr<const TokenizerSpec> load_tokenizer_spec(const std::string& where) {
  std::filesystem::path file = where;
  if (std::filesystem::is_directory(file)) file /= "tokenizer.json";
  Loader l{file.string()};
  std::ifstream in(file, std::ios::binary);
  if (!in) fail_file(l.path, "cannot open tokenizer file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const json j = parse_json_file(buffer.str(), l.path);
  auto spec = std::make_shared<TokenizerSpec>();
  static std::atomic<uint64_t> serials{0};
  spec->serial = ++serials;
  spec->path = l.path;
  try {
    if (!j.is_object()) fail_file(l.path, "top level is not a JSON object");
    // Both would change the ids of a single encode; the trainer never wants them.
    for (const char* key : {"truncation", "padding"})
      if (j.contains(key) && !j[key].is_null())
        fail_file(l.path, std::string("unsupported ") + key + " (must be null)");
    l.model(spec->bpe, j.contains("model") ? j["model"] : json());
    l.added_tokens(*spec, j.value("added_tokens", json()));
    l.normalizer(spec->normalizers, j.value("normalizer", json()));
    l.pre_tokenizer(spec->pre_tokenizers, j.value("pre_tokenizer", json()));
    l.post_processor(*spec, j.value("post_processor", json()));
    l.decoder(spec->decoders, j.value("decoder", json()));
    l.special_ids(*spec, file.parent_path() / "tokenizer_config.json");
  } catch (const json::exception& e) {
    fail_file(l.path, "malformed tokenizer: " + json_exception_text(e));
  }
  return spec;
}

}  // namespace hibari
