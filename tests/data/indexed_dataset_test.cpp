// data/indexed_dataset: the .idx bytes decoded by hand against the format, byte identity with an
// independent Python writer that follows Megatron-LM's _IndexWriter, reads both ways, every
// validation error, a corruption fuzz (run under ASan/UBSan too) and atomic writes.
#include "data/indexed_dataset.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/scratch_dir.h"

namespace hibari {
namespace {

namespace fs = std::filesystem;

using Sequence = std::vector<int32_t>;
using Document = std::vector<Sequence>;  // a document is one or more sequences (or none)

// Replaces a file's bytes in place.  Loops that rewrite one file thousands of times use it: ext4
// flushes a file truncated to zero on close (auto_da_alloc), which made them slow on a busy disk.
void overwrite(const fs::path& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), 0), ssize_t(bytes.size())) << path;
  ASSERT_EQ(::ftruncate(fd, off_t(bytes.size())), 0) << path;
  ::close(fd);
}

template <typename T>
T field(const std::string& bytes, size_t at) {
  T v;
  EXPECT_LE(at + sizeof v, bytes.size());
  std::memcpy(&v, bytes.data() + at, sizeof v);
  return v;
}

template <typename T>
void put(std::string& bytes, size_t at, T v) {
  std::memcpy(bytes.data() + at, &v, sizeof v);
}

// Varied documents: several one-sequence documents (preprocess_data.py without sentence
// splitting), one of two sequences, one empty sequence, one document with no sequences at all.
std::vector<Document> sample_documents(int32_t max_id) {
  std::vector<Document> docs = {
      {{1, 2, 3}}, {{max_id, 0}, {7}}, {}, {{}}, {{42}},
  };
  std::mt19937 rng(5);
  for (int d = 0; d < 6; ++d) {
    Sequence s(rng() % 40);
    for (int32_t& t : s) t = int32_t(rng() % uint32_t(max_id + 1));
    docs.push_back({s});
  }
  return docs;
}

void write_hibari(const std::string& prefix, TokenDtype dtype, const std::vector<Document>& docs) {
  IndexedDatasetWriter w(prefix, dtype);
  for (const Document& doc : docs) {
    for (const Sequence& s : doc) w.add_sequence(s.data(), s.size());
    w.end_document();
  }
  w.finish();
}

class IndexedDatasetTest : public testing::Test {
 protected:
  std::string prefix(const std::string& name) const { return dir_.file(name); }

  // Runs tests/reference/megatron_indexed.py; returns its stdout, fails the test on a non-zero
  // exit.
  std::string python(const std::string& args) const {
    const fs::path out = dir_.path / "python_out.txt";
    const std::string cmd = std::string(HIBARI_PYTHON) + " '" + HIBARI_SOURCE_DIR +
                            "/tests/reference/megatron_indexed.py' " + args + " > '" +
                            out.string() + "' 2>&1";
    const int rc = std::system(cmd.c_str());
    const std::string text = test::read_file(out);
    EXPECT_TRUE(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << cmd << "\n" << text;
    return text;
  }

  // The Python writer's input: a line per document, "|" between sequences, "-" for none.
  void python_write(const std::string& p, const char* dtype, const std::vector<Document>& docs,
                    bool multimodal = false) const {
    std::string spec;
    for (const Document& doc : docs) {
      if (doc.empty()) spec += "-";
      for (size_t s = 0; s < doc.size(); ++s) {
        if (s > 0) spec += "|";
        for (int32_t t : doc[s]) spec += " " + std::to_string(t);
      }
      spec += "\n";
    }
    test::write_file(dir_.path / "spec.txt", spec);
    python("write '" + p + "' " + dtype + " '" + (dir_.path / "spec.txt").string() + "'" +
           (multimodal ? " --multimodal" : ""));
  }

  // A fresh directory per test: ctest runs test cases as parallel processes.
  test::ScratchDir dir_{"indexed_dataset"};
};

// Asserts that opening `p` throws an Error whose one-line message starts with `file` and contains
// `problem`.
void expect_open_error(const std::string& p, const std::string& file, const std::string& problem) {
  try {
    IndexedDataset::open(p);
    ADD_FAILURE() << "opened " << p << ", expected: " << problem;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(file + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(problem), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

void expect_tokens(const IndexedDataset& ds, const std::vector<Document>& docs) {
  size_t seq = 0;
  ASSERT_EQ(ds.document_count(), docs.size());
  for (size_t d = 0; d < docs.size(); ++d) {
    EXPECT_EQ(ds.document_index(d), seq);
    for (const Sequence& s : docs[d]) {
      EXPECT_EQ(ds.sequence_length(seq), s.size());
      EXPECT_EQ(ds.sequence(seq), s) << "sequence " << seq;
      ++seq;
    }
  }
  EXPECT_EQ(ds.document_index(docs.size()), seq);
  EXPECT_EQ(ds.sequence_count(), seq);
}

TEST(IndexedDatasetDtype, MatchesPreprocessData) {
  EXPECT_EQ(token_dtype_for_vocab(258), TokenDtype::u16);
  EXPECT_EQ(token_dtype_for_vocab(32000), TokenDtype::u16);
  EXPECT_EQ(token_dtype_for_vocab(65499), TokenDtype::u16);
  EXPECT_EQ(token_dtype_for_vocab(65500), TokenDtype::i32);  // Megatron's threshold, not 65536
  EXPECT_EQ(token_dtype_for_vocab(128256), TokenDtype::i32);
  EXPECT_EQ(token_dtype_size(TokenDtype::u16), 2u);
  EXPECT_EQ(token_dtype_size(TokenDtype::i32), 4u);
  EXPECT_EQ(token_dtype_size(TokenDtype::i64), 8u);
  EXPECT_EQ(int(TokenDtype::u16), 8);
  EXPECT_EQ(int(TokenDtype::i32), 4);
}

TEST_F(IndexedDatasetTest, IdxBytesFollowTheFormatFieldByField) {
  // Documents: [10 11 12], [20] [21 22] (two sequences), [] (no sequences), [65535].
  const std::string p = prefix("d");
  write_hibari(p, TokenDtype::u16, {{{10, 11, 12}}, {{20}, {21, 22}}, {}, {{65535}}});
  const std::string idx = test::read_file(p + ".idx"), bin = test::read_file(p + ".bin");

  ASSERT_EQ(idx.size(), 34u + 4 * 12 + 5 * 8);
  EXPECT_EQ(idx.substr(0, 9), std::string("MMIDIDX\0\0", 9));
  EXPECT_EQ(field<uint64_t>(idx, 9), 1u);   // version
  EXPECT_EQ(field<uint8_t>(idx, 17), 8u);   // uint16
  EXPECT_EQ(field<uint64_t>(idx, 18), 4u);  // sequences
  EXPECT_EQ(field<uint64_t>(idx, 26), 5u);  // document indices = documents + 1
  const size_t lengths = 34, pointers = lengths + 4 * 4, documents = pointers + 4 * 8;
  const int32_t want_len[] = {3, 1, 2, 1};
  const int64_t want_ptr[] = {0, 6, 8, 12};  // bytes: lengths * 2
  const int64_t want_doc[] = {0, 1, 3, 3, 4};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(field<int32_t>(idx, lengths + 4 * i), want_len[i]) << i;
    EXPECT_EQ(field<int64_t>(idx, pointers + 8 * i), want_ptr[i]) << i;
  }
  for (size_t d = 0; d < 5; ++d) EXPECT_EQ(field<int64_t>(idx, documents + 8 * d), want_doc[d]);

  ASSERT_EQ(bin.size(), 14u);
  const uint16_t want_tokens[] = {10, 11, 12, 20, 21, 22, 65535};
  for (size_t k = 0; k < 7; ++k) EXPECT_EQ(field<uint16_t>(bin, 2 * k), want_tokens[k]) << k;

  IndexedDataset ds = IndexedDataset::open(p);
  EXPECT_EQ(ds.dtype(), TokenDtype::u16);
  EXPECT_EQ(ds.token_count(), 7u);
  EXPECT_FALSE(ds.has_sequence_modes());
  expect_tokens(ds, {{{10, 11, 12}}, {{20}, {21, 22}}, {}, {{65535}}});
}

TEST_F(IndexedDatasetTest, ByteIdenticalToMegatronWriter) {
  struct Case {
    TokenDtype dtype;
    const char* name;
    int32_t max_id;
  };
  for (const Case& c :
       {Case{TokenDtype::u16, "uint16", 65535}, Case{TokenDtype::i32, "int32", 151935}}) {
    SCOPED_TRACE(c.name);
    const std::vector<Document> docs = sample_documents(c.max_id);
    const std::string ours = prefix(std::string("hibari_") + c.name);
    const std::string theirs = prefix(std::string("python_") + c.name);
    write_hibari(ours, c.dtype, docs);
    python_write(theirs, c.name, docs);
    const std::string idx = test::read_file(ours + ".idx"), bin = test::read_file(ours + ".bin");
    EXPECT_GT(idx.size(), 34u);
    EXPECT_TRUE(idx == test::read_file(theirs + ".idx")) << ".idx differs";
    EXPECT_TRUE(bin == test::read_file(theirs + ".bin")) << ".bin differs";
  }
}

TEST_F(IndexedDatasetTest, ReadsPythonWrittenFilesOfEveryIntegerDtype) {
  struct Case {
    TokenDtype dtype;
    const char* name;
    int32_t lo, hi;
  };
  for (const Case& c :
       {Case{TokenDtype::u8, "uint8", 0, 255}, Case{TokenDtype::i8, "int8", -128, 127},
        Case{TokenDtype::i16, "int16", -32768, 32767}, Case{TokenDtype::u16, "uint16", 0, 65535},
        Case{TokenDtype::i32, "int32", -2147483647 - 1, 2147483647},
        Case{TokenDtype::i64, "int64", -2147483647 - 1, 2147483647}}) {
    SCOPED_TRACE(c.name);
    const std::vector<Document> docs = {{{c.lo, 0, c.hi}}, {{1}, {}, {2, 3}}, {}, {{c.hi}}};
    const std::string p = prefix(c.name);
    python_write(p, c.name, docs);
    IndexedDataset ds = IndexedDataset::open(p);
    EXPECT_EQ(ds.dtype(), c.dtype);
    expect_tokens(ds, docs);
  }
}

TEST_F(IndexedDatasetTest, PythonReaderReadsHibariFiles) {
  const std::string p = prefix("d");
  write_hibari(p, TokenDtype::i32, {{{5, -1, 70000}}, {}, {{8}, {}}});
  EXPECT_EQ(python("read '" + p + "'"),
            "dtype int32\ndoc_indices 0 1 1 3\nseq 0: 5 -1 70000\nseq 1: 8\nseq 2: \n");
}

TEST_F(IndexedDatasetTest, ReadsMultimodalFilesWithTrailingModes) {
  // Newer Megatron appends int8 modes per sequence when built with multimodal=True; the header is
  // unchanged, so only the file size tells.
  const std::vector<Document> docs = {{{1, 2}}, {{3}, {4, 5, 6}}};
  const std::string p = prefix("mm");
  python_write(p, "uint16", docs, /*multimodal=*/true);
  IndexedDataset ds = IndexedDataset::open(p);
  EXPECT_TRUE(ds.has_sequence_modes());
  expect_tokens(ds, docs);
}

TEST_F(IndexedDatasetTest, ReadsSpansLikeMegatronGet) {
  const std::string p = prefix("d");
  write_hibari(p, TokenDtype::u16, {{{0, 1, 2, 3, 4, 5}}, {{9}}});
  IndexedDataset moved = IndexedDataset::open(p);
  IndexedDataset ds = std::move(moved);
  int32_t out[6] = {};
  ds.read(0, 2, 3, out);
  EXPECT_EQ(out[0], 2);
  EXPECT_EQ(out[2], 4);
  ds.read(0, 6, 0, out);  // an empty span at the end is fine
  EXPECT_THROW(ds.read(0, 4, 3, out), Error);
  EXPECT_THROW(ds.read(0, 7, 0, out), Error);
  EXPECT_THROW(ds.read(0, 1, SIZE_MAX, out), Error);  // offset + length wraps
  EXPECT_THROW(ds.read(2, 0, 0, out), Error);
  EXPECT_THROW(ds.sequence_length(2), Error);
  EXPECT_THROW(ds.document_index(3), Error);
}

TEST_F(IndexedDatasetTest, EmptyDatasetRoundTrips) {
  const std::string p = prefix("empty");
  write_hibari(p, TokenDtype::u16, {});
  EXPECT_EQ(test::read_file(p + ".bin").size(), 0u);
  IndexedDataset ds = IndexedDataset::open(p);
  EXPECT_EQ(ds.sequence_count(), 0u);
  EXPECT_EQ(ds.document_count(), 0u);
}

TEST_F(IndexedDatasetTest, Int64IdsOutsideInt32AreAnError) {
  const std::string p = prefix("wide");
  IndexedDatasetWriter w(p, TokenDtype::i64);
  const int32_t ids[] = {1, 2};
  w.add_document(ids, 2);
  w.finish();
  std::string bin = test::read_file(p + ".bin");
  put<int64_t>(bin, 8, int64_t(1) << 40);
  test::write_file(p + ".bin", bin);
  IndexedDataset ds = IndexedDataset::open(p);
  EXPECT_THROW(ds.sequence(0), Error);
}

TEST_F(IndexedDatasetTest, WriterRejectsIdsOutsideTheDtype) {
  const std::string p = prefix("d");
  IndexedDatasetWriter w(p, TokenDtype::u16);
  const int32_t big[] = {1, 65536}, neg[] = {-1}, fine[] = {65535};
  EXPECT_THROW(w.add_document(big, 2), Error);
  EXPECT_THROW(w.add_document(neg, 1), Error);
  w.add_document(fine, 1);  // the rejected calls left nothing behind
  w.finish();
  IndexedDataset ds = IndexedDataset::open(p);
  expect_tokens(ds, {{{65535}}});
}

TEST_F(IndexedDatasetTest, WriterLeavesNothingWithoutFinish) {
  const std::string p = prefix("d");
  {
    IndexedDatasetWriter w(p, TokenDtype::u16);
    const int32_t ids[] = {1, 2, 3};
    w.add_document(ids, 3);
    EXPECT_TRUE(fs::exists(p + ".bin.tmp"));
  }
  EXPECT_FALSE(fs::exists(p + ".bin"));
  EXPECT_FALSE(fs::exists(p + ".idx"));
  EXPECT_FALSE(fs::exists(p + ".bin.tmp"));
  EXPECT_FALSE(fs::exists(p + ".idx.tmp"));

  // A sequence without end_document() makes finish() fail, and still nothing appears.
  {
    IndexedDatasetWriter w(p, TokenDtype::u16);
    const int32_t ids[] = {1};
    w.add_sequence(ids, 1);
    EXPECT_THROW(w.finish(), Error);
  }
  EXPECT_TRUE(fs::is_empty(dir_.path));

  // finish() replaces an older pair.
  write_hibari(p, TokenDtype::u16, {{{1, 2, 3}}});
  write_hibari(p, TokenDtype::i32, {{{4}}});
  expect_tokens(IndexedDataset::open(p), {{{4}}});
  EXPECT_FALSE(fs::exists(p + ".bin.tmp"));
  EXPECT_FALSE(fs::exists(p + ".idx.tmp"));
}

TEST_F(IndexedDatasetTest, EveryTruncatedIdxIsAnError) {
  const std::string p = prefix("d");
  write_hibari(p, TokenDtype::u16, {{{1, 2}}, {{3}, {4, 5}}});
  const std::string idx = test::read_file(p + ".idx");
  for (size_t n = 0; n < idx.size(); ++n) {
    SCOPED_TRACE(n);
    overwrite(p + ".idx", idx.substr(0, n));
    // Cut inside the magic it is not recognisably an index; after it, it is truncated.
    expect_open_error(p, p + ".idx", n == 0 ? "no MMIDIDX magic" : "truncated");
  }
}

TEST_F(IndexedDatasetTest, HeaderErrorsNameTheFileAndTheProblem) {
  const std::string p = prefix("d");
  write_hibari(p, TokenDtype::u16, {{{1, 2}}, {{3}}});
  const std::string good = test::read_file(p + ".idx");

  std::string bad = good;
  bad[0] = 'X';
  test::write_file(p + ".idx", bad);
  expect_open_error(p, p + ".idx", "no MMIDIDX magic");

  bad = good;
  put<uint64_t>(bad, 9, 2);
  test::write_file(p + ".idx", bad);
  expect_open_error(p, p + ".idx", "version 2, only version 1 exists");

  for (uint8_t code : {0, 9, 255}) {
    bad = good;
    bad[17] = char(code);
    test::write_file(p + ".idx", bad);
    expect_open_error(p, p + ".idx", "unknown dtype code " + std::to_string(code));
  }
  bad = good;
  bad[17] = 7;
  test::write_file(p + ".idx", bad);
  expect_open_error(p, p + ".idx", "float32 (code 7) cannot hold token ids");

  bad = good;
  put<uint64_t>(bad, 18, uint64_t(1) << 62);  // a sequence count that would overflow size math
  test::write_file(p + ".idx", bad);
  expect_open_error(p, p + ".idx", "cannot hold the header's");

  bad = good + std::string(3, '\0');  // trailing bytes that are not a multimodal modes array
  test::write_file(p + ".idx", bad);
  expect_open_error(p, p + ".idx", "need");
}

TEST_F(IndexedDatasetTest, ArrayErrorsNameTheFileAndTheProblem) {
  // Three one-token uint16 sequences in two documents: lengths at 34, pointers at 46, documents
  // at 70.
  const std::string p = prefix("d");
  write_hibari(p, TokenDtype::u16, {{{1}, {2}}, {{3}}});
  const std::string good = test::read_file(p + ".idx");
  auto expect_patched = [&](size_t at, int64_t v, bool is32, const std::string& problem) {
    std::string bad = good;
    if (is32) {
      put<int32_t>(bad, at, int32_t(v));
    } else {
      put<int64_t>(bad, at, v);
    }
    test::write_file(p + ".idx", bad);
    expect_open_error(p, p + ".idx", problem);
  };
  expect_patched(34 + 4, -1, true, "sequence 1 has length -1");
  expect_patched(34 + 4, 2, true, "sequence 2 points at byte 4, but the lengths before it end");
  expect_patched(46, 2, false, "sequence 0 points at byte 2");
  expect_patched(46 + 16, 2, false, "sequence 2 points at byte 2");
  expect_patched(70, 1, false, "document_indices[0] is 1, not 0");
  expect_patched(70 + 8, 4, false, "document_indices[2] = 3 is below the previous entry 4");
  expect_patched(70 + 16, 2, false, "last document index is 2, not the 3 sequences");
  {
    std::string bad = good;
    put<uint64_t>(bad, 26, 0);  // no document indices, with the file size to match
    bad.resize(70);
    test::write_file(p + ".idx", bad);
    expect_open_error(p, p + ".idx", "no document indices");
  }
  test::write_file(p + ".idx", good);
  expect_tokens(IndexedDataset::open(p), {{{1}, {2}}, {{3}}});
}

TEST_F(IndexedDatasetTest, ShortOrMissingBinIsAnError) {
  const std::string p = prefix("d");
  write_hibari(p, TokenDtype::i32, {{{1, 2, 3}}, {{4, 5}}});
  const std::string bin = test::read_file(p + ".bin");
  for (size_t n = 0; n < bin.size(); ++n) {
    SCOPED_TRACE(n);
    overwrite(p + ".bin", bin.substr(0, n));
    expect_open_error(p, p + ".bin", "(truncated .bin?)");
  }
  fs::remove(p + ".bin");
  expect_open_error(p, p + ".bin", "cannot open: No such file or directory");
  fs::remove(p + ".idx");
  expect_open_error(p, p + ".idx", "cannot open: No such file or directory");
}

TEST_F(IndexedDatasetTest, CorruptionFuzzNeverCrashes) {
  // Corrupted .idx files (and .bin sizes): open() either refuses with an Error or succeeds, and
  // then every read stays inside the mapping (ASan would catch a read outside).  Documents of
  // several sequences give the document indices room to move and stay valid.
  std::mt19937_64 rng(20240601);
  std::vector<Document> docs = sample_documents(65535);
  for (int d = 0; d < 8; ++d) {
    Document doc(1 + rng() % 5);
    for (Sequence& s : doc) s.assign(rng() % 20, int32_t(d));
    docs.push_back(doc);
  }
  const std::string p = prefix("d");
  write_hibari(p, TokenDtype::u16, docs);
  const std::string good = test::read_file(p + ".idx"), good_bin = test::read_file(p + ".bin");
  const size_t docs_at = good.size() - 8 * (docs.size() + 1);
  std::string on_disk_bin = good_bin;
  int opened = 0, refused = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::string bad = good, bin = good_bin;
    const size_t mode = rng() % 4;
    if (mode < 2) {
      // Chaos: 1-3 bytes or bits anywhere, half of them in the 34-byte header where every field
      // matters.  Nearly always refused.
      for (int f = 0, flips = 1 + int(rng() % 3); f < flips; ++f) {
        const size_t at = rng() % 2 ? rng() % 34 : rng() % bad.size();
        const uint8_t mask = rng() % 2 ? uint8_t(1u << (rng() % 8)) : uint8_t(1 + rng() % 255);
        bad[at] = char(uint8_t(bad[at]) ^ mask);
      }
    } else if (mode == 2) {
      // A low bit of one document index: often still between its neighbours, so still valid.
      const size_t at = docs_at + 8 * (rng() % (docs.size() + 1));
      bad[at] = char(uint8_t(bad[at]) ^ uint8_t(1u << (rng() % 3)));
    } else {
      bad[17] = char(rng() % 10);  // every dtype code; 3 (int16) has uint16's size, so valid
    }
    if (rng() % 8 == 0) bad.resize(rng() % (bad.size() + 16), '\0');
    if (rng() % 8 == 0) bin.resize(rng() % (bin.size() + 16), '\0');
    overwrite(p + ".idx", bad);
    if (bin != on_disk_bin) overwrite(p + ".bin", bin);  // rewrite only when it changes: faster
    on_disk_bin = bin;
    try {
      IndexedDataset ds = IndexedDataset::open(p);
      ++opened;
      for (size_t i = 0; i < ds.sequence_count(); ++i) {
        const std::vector<int32_t> s = ds.sequence(i);
        EXPECT_EQ(s.size(), ds.sequence_length(i));
      }
      for (size_t d = 0; d <= ds.document_count(); ++d)
        EXPECT_LE(ds.document_index(d), ds.sequence_count());
    } catch (const Error&) {
      ++refused;
    }
  }
  // Some corruptions stay valid (a document index moved between its neighbours, int16 for uint16,
  // a longer .bin); the reads above ran on those.
  EXPECT_GT(opened, 20);
  EXPECT_GT(refused, 1000);
  RecordProperty("opened", opened);
}

}  // namespace
}  // namespace hibari
