// JsonlReader: the same documents from plain, gzip and zstd files (compressed here with zlib and
// zstd), read in blocks smaller than a line; every kind of bad line under both policies; truncated
// and mislabelled compressed files.
#include "data/jsonl_reader.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"

namespace {

namespace fs = std::filesystem;
using hibari::BadLinePolicy;
using hibari::BadLineReason;
using hibari::JsonlDocument;
using hibari::JsonlOptions;
using hibari::JsonlReader;

fs::path temp_dir() {
  fs::path dir = fs::path(HIBARI_BINARY_DIR) / "test_tmp" / "jsonl_reader";
  fs::create_directories(dir);
  return dir;
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string gzip(const std::string& data) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);  // 16: gzip
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string zstd(const std::string& data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

std::vector<JsonlDocument> read_all(const fs::path& path, JsonlOptions options = {}) {
  JsonlReader reader(path.string(), options);
  std::vector<JsonlDocument> docs;
  for (JsonlDocument doc; reader.next(doc);) docs.push_back(doc);
  return docs;
}

std::string error_of(const fs::path& path, JsonlOptions options = {}) {
  try {
    read_all(path, options);
  } catch (const hibari::Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string json_line(const std::string& text) {
  return nlohmann::json{{"id", 1}, {"text", text}}.dump() + "\n";
}

// Many lines of varied text (so the compressed streams are not tiny), with a CRLF line, a blank
// line and a last line without '\n'.
std::string corpus(std::vector<std::string>& texts, std::vector<size_t>& lines) {
  std::string data;
  size_t line = 0;
  for (int i = 0; i < 300; ++i) {
    std::string text = "doc " + std::to_string(i * 7919 % 1000) + " 日本語のテキスト " +
                       std::string(static_cast<size_t>(i % 13), 'x') + " \"q\" \\ end";
    texts.push_back(text);
    std::string json = json_line(text);
    if (i == 5) json.insert(json.size() - 1, "\r");
    if (i == 299) json.pop_back();
    data += json;
    lines.push_back(++line);
    if (i == 10) {
      data += "  \n";
      ++line;
    }
  }
  return data;
}

void expect_corpus(const fs::path& path, size_t block_size) {
  std::vector<std::string> texts;
  std::vector<size_t> lines;
  corpus(texts, lines);
  JsonlReader reader(path.string(), {.block_size = block_size});
  size_t i = 0;
  for (JsonlDocument doc; reader.next(doc); ++i) {
    ASSERT_LT(i, texts.size());
    EXPECT_EQ(doc.text, texts[i]) << path << " line " << doc.line;
    EXPECT_EQ(doc.line, lines[i]) << path;
  }
  EXPECT_EQ(i, texts.size()) << path;
  EXPECT_EQ(reader.blank_lines(), 1u);
  EXPECT_EQ(reader.skipped().total(), 0u);
  EXPECT_GT(reader.bytes_read(), 0u);
}

TEST(JsonlReader, PlainGzipAndZstdGiveTheSameDocuments) {
  std::vector<std::string> texts;
  std::vector<size_t> lines;
  std::string data = corpus(texts, lines);
  fs::path dir = temp_dir();
  write_bytes(dir / "c.jsonl", data);
  write_bytes(dir / "c.jsonl.gz", gzip(data));
  write_bytes(dir / "c.jsonl.zst", zstd(data));
  for (const char* name : {"c.jsonl", "c.jsonl.gz", "c.jsonl.zst"}) {
    for (size_t block : {size_t{1} << 20, size_t{7}, size_t{1}}) {
      expect_corpus(dir / name, block);
    }
  }
}

TEST(JsonlReader, ConcatenatedZstdFramesAndGzipMembers) {
  std::string a = json_line("first"), b = json_line("second");
  fs::path dir = temp_dir();
  write_bytes(dir / "two.jsonl.zst", zstd(a) + zstd(b));
  write_bytes(dir / "two.jsonl.gz", gzip(a) + gzip(b));
  for (const char* name : {"two.jsonl.zst", "two.jsonl.gz"}) {
    std::vector<JsonlDocument> docs = read_all(dir / name);
    ASSERT_EQ(docs.size(), 2u) << name;
    EXPECT_EQ(docs[0].text, "first");
    EXPECT_EQ(docs[1].text, "second");
    EXPECT_EQ(docs[1].line, 2u);
  }
}

TEST(JsonlReader, LineLongerThanTheBlock) {
  std::string long_text(200000, 'a');
  for (size_t i = 0; i < long_text.size(); i += 97) long_text[i] = 'b';
  std::string data = json_line("short") + json_line(long_text) + json_line("after");
  fs::path dir = temp_dir();
  write_bytes(dir / "long.jsonl", data);
  write_bytes(dir / "long.jsonl.zst", zstd(data));
  write_bytes(dir / "long.jsonl.gz", gzip(data));
  for (const char* name : {"long.jsonl", "long.jsonl.zst", "long.jsonl.gz"}) {
    std::vector<JsonlDocument> docs = read_all(dir / name, {.block_size = 4096});
    ASSERT_EQ(docs.size(), 3u) << name;
    EXPECT_EQ(docs[0].text, "short");
    EXPECT_EQ(docs[1].text, long_text) << name;
    EXPECT_EQ(docs[2].text, "after");
    EXPECT_EQ(docs[2].line, 3u);
  }
}

TEST(JsonlReader, EmptyFiles) {
  fs::path dir = temp_dir();
  write_bytes(dir / "empty.jsonl", "");
  write_bytes(dir / "empty.jsonl.gz", gzip(""));
  write_bytes(dir / "empty.jsonl.zst", zstd(""));
  for (const char* name : {"empty.jsonl", "empty.jsonl.gz", "empty.jsonl.zst"}) {
    EXPECT_TRUE(read_all(dir / name).empty()) << name;
  }
}

struct BadCase {
  const char* name;
  std::string line;
  BadLineReason reason;
  const char* phrase;  // a piece of the fail-policy message
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BadLine : public ::testing::TestWithParam<BadCase> {};

// Line 2 of 3 is bad: under fail the error names FILE:2 and the problem; under skip the two good
// documents come through and the bad line is counted under its reason, and only there.
TEST_P(BadLine, FailNamesFileAndLineSkipCountsIt) {
  const BadCase& c = GetParam();
  fs::path path = temp_dir() / (std::string("bad_") + c.name + ".jsonl");
  write_bytes(path, json_line("good one") + c.line + "\n" + json_line("good two"));

  std::string message = error_of(path, {.bad_lines = BadLinePolicy::fail});
  EXPECT_NE(message.find(path.string() + ":2: "), std::string::npos) << message;
  EXPECT_NE(message.find(c.phrase), std::string::npos) << message;

  JsonlReader reader(path.string(), {.bad_lines = BadLinePolicy::skip});
  std::vector<JsonlDocument> docs;
  for (JsonlDocument doc; reader.next(doc);) docs.push_back(doc);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].text, "good one");
  EXPECT_EQ(docs[1].text, "good two");
  EXPECT_EQ(docs[1].line, 3u);
  EXPECT_EQ(reader.skipped()[c.reason], 1u);
  EXPECT_EQ(reader.skipped().total(), 1u);
  EXPECT_NE(reader.skipped().to_string().find(hibari::bad_line_reason_name(c.reason)),
            std::string::npos);
}

const BadCase bad_cases[] = {
    {"syntax", "{\"text\": \"unterminated}", BadLineReason::invalid_json, "invalid JSON"},
    {"not_object", "[\"text\"]", BadLineReason::invalid_json, "expected an object"},
    {"missing_key", "{\"content\": \"hello\"}", BadLineReason::missing_key, "missing key \"text\""},
    {"number", "{\"text\": 42}", BadLineReason::not_a_string, "\"text\" is not a string"},
    {"null", "{\"text\": null}", BadLineReason::not_a_string, "\"text\" is not a string"},
    {"bad_utf8", "{\"text\": \"caf\xC3\x28\"}", BadLineReason::invalid_utf8, "invalid UTF-8"},
    {"overlong", "{\"text\": \"\xC0\xAF\"}", BadLineReason::invalid_utf8, "invalid UTF-8"},
    {"surrogate", "{\"text\": \"\xED\xA0\x80\"}", BadLineReason::invalid_utf8, "invalid UTF-8"},
    {"empty", "{\"text\": \"\"}", BadLineReason::empty_document, "empty document"},
};

INSTANTIATE_TEST_SUITE_P(Kinds, BadLine, ::testing::ValuesIn(bad_cases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(JsonlReader, OtherKey) {
  fs::path path = temp_dir() / "key.jsonl";
  write_bytes(path, "{\"body\": \"x\", \"text\": 1}\n");
  std::vector<JsonlDocument> docs = read_all(path, {.key = "body"});
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].text, "x");
}

TEST(JsonlReader, SkipCountsAddUpAcrossReasons) {
  fs::path path = temp_dir() / "mixed.jsonl";
  write_bytes(path, "nope\n{\"a\":1}\n{\"text\":\"\"}\n{\"text\":\"ok\"}\n{\"b\":2}\n");
  JsonlReader reader(path.string(), {.bad_lines = BadLinePolicy::skip});
  std::vector<JsonlDocument> docs;
  for (JsonlDocument doc; reader.next(doc);) docs.push_back(doc);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].line, 4u);
  EXPECT_EQ(reader.skipped()[BadLineReason::invalid_json], 1u);
  EXPECT_EQ(reader.skipped()[BadLineReason::missing_key], 2u);
  EXPECT_EQ(reader.skipped()[BadLineReason::empty_document], 1u);
  EXPECT_EQ(reader.skipped().total(), 4u);
  EXPECT_EQ(reader.skipped().to_string(), "invalid JSON 1, missing key 2, empty document 1");
}

TEST(JsonlReader, TruncatedCompressedFilesAreErrorsNamingTheFile) {
  std::vector<std::string> texts;
  std::vector<size_t> lines;
  std::string data = corpus(texts, lines);
  std::string gz = gzip(data), zs = zstd(data);
  fs::path dir = temp_dir();
  struct Cut {
    const char* name;
    std::string bytes;
  };
  const Cut cuts[] = {
      {"half.jsonl.gz", gz.substr(0, gz.size() / 2)},
      {"no_trailer.jsonl.gz", gz.substr(0, gz.size() - 4)},
      {"half.jsonl.zst", zs.substr(0, zs.size() / 2)},
      {"end.jsonl.zst", zs.substr(0, zs.size() - 3)},
  };
  for (const Cut& cut : cuts) {
    write_bytes(dir / cut.name, cut.bytes);
    std::string message = error_of(dir / cut.name);
    EXPECT_NE(message.find((dir / cut.name).string() + ": "), std::string::npos) << message;
    EXPECT_NE(message.find("truncated"), std::string::npos) << message;
  }
}

TEST(JsonlReader, ExtensionAndMagicMustAgree) {
  fs::path dir = temp_dir();
  write_bytes(dir / "plain.jsonl.zst", json_line("not compressed"));
  write_bytes(dir / "plain.jsonl.gz", json_line("not compressed"));
  write_bytes(dir / "zst.jsonl", zstd(json_line("compressed")));
  EXPECT_NE(error_of(dir / "plain.jsonl.zst").find("plain.jsonl.zst: not a zstd file"),
            std::string::npos);
  EXPECT_NE(error_of(dir / "plain.jsonl.gz").find("plain.jsonl.gz: not a gzip file"),
            std::string::npos);
  EXPECT_NE(error_of(dir / "zst.jsonl").find("zst.jsonl: the file is zstd-compressed"),
            std::string::npos);
}

TEST(JsonlReader, MissingFileIsAnErrorNamingIt) {
  fs::path path = temp_dir() / "absent.jsonl";
  std::string message = error_of(path);
  EXPECT_NE(message.find(path.string() + ": cannot open"), std::string::npos) << message;
}

TEST(JsonlReader, Utf8Validation) {
  EXPECT_TRUE(hibari::is_valid_utf8("abc 日本語 \xF0\x9F\x98\x80"));
  EXPECT_FALSE(hibari::is_valid_utf8("\xE6\x97"));          // cut short
  EXPECT_FALSE(hibari::is_valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(hibari::is_valid_utf8("\xE0\x80\xAF"));      // overlong
  EXPECT_FALSE(hibari::is_valid_utf8("\xFF"));
}

}  // namespace
