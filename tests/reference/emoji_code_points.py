#!/usr/bin/python3
"""Writes eval/emoji_code_points.cpp: the single-code-point keys of the emoji package's EMOJI_DATA.

The JP harness's normalize_answer drops every character c with emoji.is_emoji(c), which is
`c in EMOJI_DATA`; for one character only the one-code-point keys can match, so the table holds
those, merged into inclusive ranges.

  /usr/bin/python3 tests/reference/emoji_code_points.py > eval/emoji_code_points.cpp
  clang-format -i eval/emoji_code_points.cpp
"""
import emoji

cps = sorted(ord(k) for k in emoji.EMOJI_DATA if len(k) == 1)
ranges = []
for c in cps:
    if ranges and ranges[-1][1] + 1 == c:
        ranges[-1][1] = c
    else:
        ranges.append([c, c])

print(f"""// eval/emoji_code_points.cpp — GENERATED, do not edit; regenerate with
//   /usr/bin/python3 tests/reference/emoji_code_points.py > eval/emoji_code_points.cpp
//   clang-format -i eval/emoji_code_points.cpp
// The single-code-point keys of emoji.EMOJI_DATA from the emoji package {emoji.__version__} (Debian's
// python3-emoji): {len(cps)} code points in {len(ranges)} ranges.  The JP harness asks only for
// emoji>=2.1.0, so the table of the version a given harness run used may differ slightly.
#include "eval/emoji_code_points.h"

#include <algorithm>
#include <iterator>

namespace hibari {{
namespace {{

struct CodePointRange {{
  char32_t first;
  char32_t last;  // inclusive
}};

constexpr CodePointRange kEmojiRanges[] = {{""")
for a, b in ranges:
    print(f"    {{0x{a:X}, 0x{b:X}}},")
print("""};

}  // namespace

bool emoji_package_is_emoji(char32_t c) {
  // The first range whose last >= c holds c if its first <= c.
  const auto* it = std::lower_bound(std::begin(kEmojiRanges), std::end(kEmojiRanges), c,
                                    [](const CodePointRange& r, char32_t v) { return r.last < v; });
  return it != std::end(kEmojiRanges) && it->first <= c;
}

}  // namespace hibari""")
