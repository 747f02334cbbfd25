// eval/emoji_code_points.h — emoji.is_emoji for one character, as the JP harness's JSQuAD
// normalize_answer calls it (emoji.is_emoji(c) is `c in emoji.EMOJI_DATA`).  The table in
// eval/emoji_code_points.cpp is generated from Debian's python3-emoji by
// tests/reference/emoji_code_points.py; that file names the emoji version.
#pragma once

namespace hibari {

// True when the single code point c is a key of emoji.EMOJI_DATA.
bool emoji_package_is_emoji(char32_t c);

}  // namespace hibari
