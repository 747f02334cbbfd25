// data/jsonl_reader.h — a corpus file in JSON Lines, read one document at a time: plain text,
// gzip (.gz) or zstd (.zst, .zstd), chosen by the file name and confirmed by the magic bytes.
// Memory stays bounded: the file is read and decompressed in blocks, and only the current line is
// held whole (so memory is one block plus the longest line).
//
// Each line is a JSON object; the document is the string under one key ("text" by default).  A line
// that cannot give a document is a bad line, for one of the BadLineReason reasons.  Under
// BadLinePolicy::fail the first bad line is an Error "FILE:LINE: problem"; under ::skip it is
// counted by reason (skipped()) and reading goes on, so the caller can report what was dropped.
// Whitespace-only lines carry no document and are counted apart (blank_lines()).  A compressed file
// that ends in the middle of its stream is an Error naming the file.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace hibari {

enum class BadLinePolicy { fail, skip };

enum class BadLineReason {
  invalid_json,    // not JSON, or not a JSON object
  missing_key,     // the object has no such key
  not_a_string,    // the key's value is not a string
  invalid_utf8,    // the line's bytes are not valid UTF-8
  empty_document,  // the string is empty
};
inline constexpr size_t bad_line_reason_count = 5;
// "invalid JSON", "missing key", "not a string", "invalid UTF-8", "empty document".
const char* bad_line_reason_name(BadLineReason reason);

// Bad lines skipped, by reason (indexed by BadLineReason).
struct BadLineCounts {
  std::array<size_t, bad_line_reason_count> by_reason{};

  size_t& operator[](BadLineReason r) { return by_reason[static_cast<size_t>(r)]; }
  size_t operator[](BadLineReason r) const { return by_reason[static_cast<size_t>(r)]; }
  size_t total() const;
  BadLineCounts& operator+=(const BadLineCounts& other);
  // "invalid JSON 2, missing key 1", reasons with a zero count left out; "none" when all are zero.
  std::string to_string() const;
};

struct JsonlOptions {
  std::string key = "text";  // the JSON key that holds the document
  BadLinePolicy bad_lines = BadLinePolicy::fail;
  size_t block_size = size_t{1} << 20;  // bytes read (decompressed) per block
};

struct JsonlDocument {
  size_t line = 0;   // 1-based line number in the file
  std::string text;  // valid, non-empty UTF-8
};

class JsonlReader {
 public:
  // Opens the file (an Error naming it when it cannot be opened or its magic bytes do not match).
  JsonlReader(std::string path, JsonlOptions options);
  ~JsonlReader();
  JsonlReader(const JsonlReader&) = delete;
  JsonlReader& operator=(const JsonlReader&) = delete;

  // The next document; false at the end of the file.
  bool next(JsonlDocument& doc);

  const std::string& path() const { return path_; }
  const BadLineCounts& skipped() const { return skipped_; }
  size_t blank_lines() const { return blank_lines_; }
  // Bytes of the file consumed so far (compressed bytes for .gz/.zst), for progress reports.
  uint64_t bytes_read() const;

  struct Source;  // the byte stream under the lines (jsonl_reader.cpp)

 private:
  // Fills `line` with the next line (without '\n'); false at the end of the file.
  bool next_line(std::string_view& line);
  // Reads one more block into buffer_; false at the end of the file.
  bool fill();
  // The document of one line, or false when the line is bad (and skipped).
  bool parse_line(std::string_view line, size_t number, JsonlDocument& doc);

  std::string path_;
  JsonlOptions options_;
  std::unique_ptr<Source> source_;
  std::string buffer_;      // decompressed bytes; [start_, size) not yet returned as lines
  size_t start_ = 0;        // first byte of the current line in buffer_
  size_t scanned_ = 0;      // bytes of the current line already searched for '\n'
  bool eof_ = false;        // the source is exhausted
  size_t line_number_ = 0;  // of the last line returned
  size_t blank_lines_ = 0;
  BadLineCounts skipped_;
};

// Whether s is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s);

}  // namespace hibari
