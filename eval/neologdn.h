// eval/neologdn.h — a port of neologdn's normalize and shorten_repeat, which the JP LM Evaluation
// Harness (jp-stable) applies to JSQuAD predictions and answers before scoring them.
//
// Ported from neologdn v0.5.6, the latest release (github.com/ikegami-yukino/neologdn,
// neologdn.pyx at tag v0.5.6, commit 17916acbdc6397c42a48f8a3d525f85df9a20c03).  The port follows
// the Cython loop step by step, quirks included (a lone U+FF9E / U+FF9F stays half-width; U+FF0D
// becomes the choonpu ー; only ' ' and U+3000 count as spaces).  Text is a sequence of code
// points, as a Python str; the UTF-8 overload decodes first (an invalid byte becomes U+FFFD) and
// encodes the result.
// The harness asks only for neologdn>=0.5.1; releases before 0.5.6 differ from this port in two
// ways a JSQuAD answer can meet: before 0.5.5 “ (U+201C) stays as it is (0.5.5 maps it to "), and
// before 0.5.4 a hyphen, choonpu or tilde after a "latin " space does not end that space, so
// "A ˗あ" gave "A あ" there (v0.5.4 commit bf3a8d4, "Fix tilde loss after latin and whitespace").
#pragma once

#include <string>
#include <string_view>

namespace hibari {

// neologdn's `tilde` argument.
enum class NeologdnTilde {
  kRemove,            // 'remove' (the default): drop ~ ∼ ∾ 〜 〰 ～
  kIgnore,            // 'ignore': keep them as they are
  kNormalize,         // 'normalize': each becomes '~'
  kNormalizeZenkaku,  // 'normalize_zenkaku': each becomes '〜'
};

// neologdn.normalize's keyword arguments, with its defaults (the harness passes none).
struct NeologdnOptions {
  int repeat = 0;  // non-zero: shorten_repeat(result, repeat, max_repeat_substr_length)
  bool remove_space = true;
  int max_repeat_substr_length = 8;
  NeologdnTilde tilde = NeologdnTilde::kRemove;
};

std::u32string neologdn_normalize(std::u32string_view text, const NeologdnOptions& options = {});
std::string neologdn_normalize(std::string_view utf8, const NeologdnOptions& options = {});

// neologdn.shorten_repeat: runs of a substring (up to max_repeat_substr_length code points long; 0
// means no limit) repeated more than repeat_threshold times are cut to repeat_threshold copies.
std::u32string neologdn_shorten_repeat(std::u32string_view text, int repeat_threshold,
                                       int max_repeat_substr_length = 8);

// UTF-8 <-> code points as the ports here need them: an invalid or truncated byte sequence decodes
// to one U+FFFD per byte (the harness only ever sees valid text; this keeps the output valid).
std::u32string decode_utf8_lossy(std::string_view utf8);
std::string encode_utf8(std::u32string_view text);

}  // namespace hibari
