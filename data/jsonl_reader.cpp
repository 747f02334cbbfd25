// data/jsonl_reader.cpp — see jsonl_reader.h.
#include "data/jsonl_reader.h"

#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/file_io.h"
#include "core/json_fields.h"

namespace hibari {

namespace {

enum class Compression { none, gzip, zstd };

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

Compression compression_of(std::string_view path) {
  if (ends_with(path, ".gz")) return Compression::gzip;
  if (ends_with(path, ".zst") || ends_with(path, ".zstd")) return Compression::zstd;
  return Compression::none;
}

bool is_gzip_magic(const unsigned char* m, size_t n) {
  return n >= 2 && m[0] == 0x1f && m[1] == 0x8b;
}

// A zstd frame (0xFD2FB528) or a skippable frame (0x184D2A50..5F), little-endian.
bool is_zstd_magic(const unsigned char* m, size_t n) {
  if (n < 4) return false;
  uint32_t v = uint32_t{m[0]} | uint32_t{m[1]} << 8 | uint32_t{m[2]} << 16 | uint32_t{m[3]} << 24;
  return v == 0xFD2FB528u || (v & 0xFFFFFFF0u) == 0x184D2A50u;
}

}  // namespace

const char* bad_line_reason_name(BadLineReason reason) {
  switch (reason) {
    case BadLineReason::invalid_json:
      return "invalid JSON";
    case BadLineReason::missing_key:
      return "missing key";
    case BadLineReason::not_a_string:
      return "not a string";
    case BadLineReason::invalid_utf8:
      return "invalid UTF-8";
    case BadLineReason::empty_document:
      return "empty document";
  }
  return "?";
}

size_t BadLineCounts::total() const {
  size_t n = 0;
  for (size_t c : by_reason) n += c;
  return n;
}

BadLineCounts& BadLineCounts::operator+=(const BadLineCounts& other) {
  for (size_t i = 0; i < by_reason.size(); ++i) by_reason[i] += other.by_reason[i];
  return *this;
}

std::string BadLineCounts::to_string() const {
  std::string out;
  for (size_t i = 0; i < by_reason.size(); ++i) {
    if (by_reason[i] == 0) continue;
    if (!out.empty()) out += ", ";
    out += bad_line_reason_name(static_cast<BadLineReason>(i));
    out += " " + std::to_string(by_reason[i]);
  }
  return out.empty() ? "none" : out;
}

bool is_valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (p[i + k] & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    static constexpr uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += len;
  }
  return true;
}

// The byte stream of the file: read as is, through zlib's gz* functions, or through a zstd
// streaming decompressor.  read() returns 0 only at the end, after checking the stream is whole.
struct JsonlReader::Source {
  Compression kind = Compression::none;
  std::string path;
  std::FILE* file = nullptr;  // none and zstd
  gzFile gz = nullptr;        // gzip
  ZSTD_DCtx* dctx = nullptr;  // zstd
  std::vector<char> in;       // zstd: compressed input block
  ZSTD_inBuffer zin{nullptr, 0, 0};
  size_t frame_left = 0;  // zstd: last ZSTD_decompressStream result; 0 at a frame boundary
  bool input_done = false;
  uint64_t raw_bytes = 0;  // none and zstd: bytes read from the file

  Source(std::string p, Compression c) : kind(c), path(std::move(p)) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) fail_file(path, "cannot open: " + errno_text(errno));
    unsigned char magic[4];
    size_t got = std::fread(magic, 1, sizeof magic, f);
    if (std::ferror(f)) {
      std::fclose(f);
      fail_file(path, "cannot read: " + errno_text(errno));
    }
    std::rewind(f);
    const char* problem = nullptr;
    if (kind == Compression::gzip && !is_gzip_magic(magic, got)) {
      problem = "not a gzip file (the name ends in .gz but the magic bytes are not 1f 8b)";
    } else if (kind == Compression::zstd && !is_zstd_magic(magic, got)) {
      problem = "not a zstd file (the name ends in .zst but the magic bytes are not 28 b5 2f fd)";
    } else if (kind == Compression::none && is_gzip_magic(magic, got)) {
      problem = "the file is gzip-compressed but its name does not end in .gz";
    } else if (kind == Compression::none && is_zstd_magic(magic, got)) {
      problem = "the file is zstd-compressed but its name does not end in .zst";
    }
    if (problem != nullptr) {
      std::fclose(f);
      fail_file(path, problem);
    }
    if (kind == Compression::gzip) {
      std::fclose(f);
      gz = gzopen(path.c_str(), "rb");
      if (gz == nullptr) fail_file(path, "cannot open: " + errno_text(errno));
      gzbuffer(gz, 1 << 17);
    } else {
      file = f;
    }
    if (kind == Compression::zstd) {
      dctx = ZSTD_createDCtx();
      if (dctx == nullptr) fail_file(path, "cannot create a zstd decompressor");
      in.resize(ZSTD_DStreamInSize());
    }
  }

  ~Source() {
    if (file != nullptr) std::fclose(file);
    if (gz != nullptr) gzclose(gz);
    if (dctx != nullptr) ZSTD_freeDCtx(dctx);
  }

  size_t read_plain(char* out, size_t n) {
    size_t got = std::fread(out, 1, n, file);
    if (got < n && std::ferror(file)) fail_file(path, "read error: " + errno_text(errno));
    raw_bytes += got;
    return got;
  }

  size_t read_gzip(char* out, size_t n) {
    int got = gzread(gz, out, static_cast<unsigned>(n));
    int err = Z_OK;
    const char* message = gzerror(gz, &err);
    if (got < 0 || (err != Z_OK && err != Z_BUF_ERROR)) {
      fail_file(path, std::string("corrupt gzip stream: ") + message);
    }
    // Z_BUF_ERROR: "the input file ended in the middle of a gzip stream" (zlib.h, gzread).
    if (got == 0 && err == Z_BUF_ERROR) {
      fail_file(path, "truncated gzip stream (the file ends in the middle of the data)");
    }
    return static_cast<size_t>(got);
  }

  size_t read_zstd(char* out, size_t n) {
    ZSTD_outBuffer zout{out, n, 0};
    while (zout.pos < zout.size) {
      if (zin.pos == zin.size && !input_done) {
        size_t got = read_plain(in.data(), in.size());
        if (got == 0) input_done = true;
        zin = ZSTD_inBuffer{in.data(), got, 0};
      }
      // A clean end: the input is used up and the last frame is complete and flushed.
      if (input_done && zin.pos == zin.size && frame_left == 0) break;
      size_t out_before = zout.pos, in_before = zin.pos;
      size_t ret = ZSTD_decompressStream(dctx, &zout, &zin);
      if (ZSTD_isError(ret)) {
        fail_file(path, std::string("corrupt zstd stream: ") + ZSTD_getErrorName(ret));
      }
      frame_left = ret;
      if (input_done && zout.pos == out_before && zin.pos == in_before) break;
    }
    if (zout.pos < zout.size && frame_left != 0) {
      fail_file(path, "truncated zstd stream (the file ends in the middle of a frame)");
    }
    return zout.pos;
  }

  size_t read(char* out, size_t n) {
    switch (kind) {
      case Compression::none:
        return read_plain(out, n);
      case Compression::gzip:
        return read_gzip(out, n);
      case Compression::zstd:
        return read_zstd(out, n);
    }
    return 0;
  }

  uint64_t bytes_read() const {
    if (kind == Compression::gzip) {
      z_off_t at = gzoffset(gz);
      return at < 0 ? 0 : static_cast<uint64_t>(at);
    }
    return raw_bytes;
  }
};

JsonlReader::JsonlReader(std::string path, JsonlOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  check(options_.block_size > 0, "JsonlReader: block_size must be positive");
  source_ = std::make_unique<Source>(path_, compression_of(path_));
}

JsonlReader::~JsonlReader() = default;

uint64_t JsonlReader::bytes_read() const { return source_->bytes_read(); }

bool JsonlReader::fill() {
  if (eof_) return false;
  if (start_ > 0) {  // drop the lines already returned
    buffer_.erase(0, start_);
    start_ = 0;
  }
  size_t old = buffer_.size();
  buffer_.resize(old + options_.block_size);
  size_t got = source_->read(buffer_.data() + old, options_.block_size);
  buffer_.resize(old + got);
  if (got == 0) eof_ = true;
  return got > 0;
}

bool JsonlReader::next_line(std::string_view& line) {
  for (;;) {
    size_t nl = buffer_.find('\n', start_ + scanned_);
    if (nl != std::string::npos) {
      line = std::string_view(buffer_).substr(start_, nl - start_);
      start_ = nl + 1;
      scanned_ = 0;
      return true;
    }
    scanned_ = buffer_.size() - start_;
    if (!fill()) {  // the last line may lack its '\n'
      if (start_ == buffer_.size()) return false;
      line = std::string_view(buffer_).substr(start_);
      start_ = buffer_.size();
      scanned_ = 0;
      return true;
    }
  }
}

bool JsonlReader::parse_line(std::string_view line, size_t number, JsonlDocument& doc) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (number == 1 && line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);  // a UTF-8 BOM
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
    ++blank_lines_;
    return false;
  }
  auto bad = [&](BadLineReason reason, const std::string& problem) {
    if (options_.bad_lines == BadLinePolicy::fail) {
      fail_file(path_ + ":" + std::to_string(number), problem);
    }
    ++skipped_[reason];
    return false;
  };
  const std::string& key = options_.key;
  if (!is_valid_utf8(line)) return bad(BadLineReason::invalid_utf8, "invalid UTF-8");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    return bad(BadLineReason::invalid_json,
               "invalid JSON (syntax error at byte " + std::to_string(e.byte) + ")");
  } catch (const nlohmann::json::exception& e) {  // out_of_range: a number such as 1e309
    return bad(BadLineReason::invalid_json, "invalid JSON (" + json_exception_text(e) + ")");
  }
  if (!j.is_object()) {
    return bad(BadLineReason::invalid_json,
               std::string("invalid JSON (expected an object, got ") + j.type_name() + ")");
  }
  auto it = j.find(key);
  if (it == j.end()) return bad(BadLineReason::missing_key, "missing key \"" + key + "\"");
  if (!it->is_string()) {
    return bad(BadLineReason::not_a_string,
               "\"" + key + "\" is not a string (it is " + it->type_name() + ")");
  }
  auto& text = it->get_ref<std::string&>();
  if (text.empty())
    return bad(BadLineReason::empty_document, "empty document (\"" + key + "\" is \"\")");
  doc.line = number;
  doc.text = std::move(text);
  return true;
}

bool JsonlReader::next(JsonlDocument& doc) {
  std::string_view line;
  while (next_line(line)) {
    ++line_number_;
    if (parse_line(line, line_number_, doc)) return true;
  }
  return false;
}

}  // namespace hibari
