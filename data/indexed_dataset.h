// data/indexed_dataset.h — Megatron-LM's indexed dataset (MMIDIDX): a PREFIX.bin of token ids and a
// PREFIX.idx that says where each sequence starts.  Files are byte-compatible with
// megatron/core/datasets/indexed_dataset.py (IndexedDatasetBuilder / _IndexWriter / _IndexReader),
// so Megatron-LM and GPT-NeoX read what hibari writes and vice versa.
//
// PREFIX.idx, little-endian, packed (so the arrays are not aligned):
//   magic            9 bytes  "MMIDIDX\0\0"
//   version          uint64   1
//   dtype code       uint8    1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32,
//                             8 uint16 (the dtype of the tokens in PREFIX.bin)
//   S                uint64   sequence count
//   D                uint64   document index count (= documents + 1)
//   lengths          int32[S] tokens per sequence
//   pointers         int64[S] byte offset of each sequence in PREFIX.bin
//   document_indices int64[D] 0, then the index of the first sequence after each document end
//   (modes           int8[S]  only in "multimodal" files; Megatron knows them from a constructor
//   flag,
//                             not from the header, so a reader can only tell by the file size)
// PREFIX.bin: the tokens of all sequences back to back, in the dtype of the header.
//
// A sequence is what Megatron calls an item (a sentence when preprocess_data.py splits sentences);
// a document is one or more sequences.  Without sentence splitting each document is one sequence.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hibari {

// The integer dtypes of the format; the value is the code in the header.  (Codes 6 and 7, float64
// and float32, exist in the format but cannot hold token ids; the reader refuses them.)
enum class TokenDtype : uint8_t { u8 = 1, i8 = 2, i16 = 3, i32 = 4, i64 = 5, u16 = 8 };

size_t token_dtype_size(TokenDtype dtype);
const char* token_dtype_name(TokenDtype dtype);  // numpy's name: "uint16", "int32", ...
// What preprocess_data.py picks (DType.optimal_dtype): uint16 below 65500 ids, else int32.
TokenDtype token_dtype_for_vocab(size_t vocab_size);

// Writes PREFIX.bin.tmp and PREFIX.idx.tmp; finish() renames both into place, so PREFIX.bin/.idx
// appear only complete.  Destroyed without finish() (an error, an exception) it removes the temps.
// Exactly the bytes of Megatron's IndexedDatasetBuilder(multimodal=False) + finalize().
class IndexedDatasetWriter {
 public:
  IndexedDatasetWriter(std::string prefix, TokenDtype dtype);
  ~IndexedDatasetWriter();
  IndexedDatasetWriter(const IndexedDatasetWriter&) = delete;
  IndexedDatasetWriter& operator=(const IndexedDatasetWriter&) = delete;

  // One sequence (Megatron's add_item); ids outside the dtype's range are an error, not wrapped.
  void add_sequence(const int32_t* ids, size_t n);
  // Ends the current document (Megatron's end_document); the sequences since the last end form it.
  void end_document();
  // One sequence that is a whole document, as preprocess_data.py without sentence splitting.
  void add_document(const int32_t* ids, size_t n) {
    add_sequence(ids, n);
    end_document();
  }

  // Writes the .idx, fsyncs both files and renames them into place (.bin first, then .idx).
  // Sequences added after the last end_document() are an error.
  void finish();

  size_t sequence_count() const { return lengths_.size(); }
  size_t document_count() const { return document_indices_.size() - 1; }

 private:
  void flush_bin();
  void remove_temps() noexcept;

  std::string prefix_;
  TokenDtype dtype_;
  int bin_fd_ = -1;
  bool finished_ = false;
  std::vector<unsigned char> buffer_;  // .bin bytes not yet written
  std::vector<int32_t> lengths_;
  std::vector<int64_t> document_indices_{0};
};

// PREFIX.idx and PREFIX.bin memory-mapped read-only.  open() validates everything the reads rely
// on (header, sizes, every pointer against the lengths and the .bin size, the document indices), so
// afterwards a read can only go wrong by asking for a sequence or span that does not exist, which
// is an Error too.  Array entries are read with memcpy: they are not aligned in the file.
class IndexedDataset {
 public:
  static IndexedDataset open(const std::string& prefix);
  ~IndexedDataset();
  IndexedDataset(IndexedDataset&& other) noexcept;
  IndexedDataset& operator=(IndexedDataset&& other) noexcept;
  IndexedDataset(const IndexedDataset&) = delete;
  IndexedDataset& operator=(const IndexedDataset&) = delete;

  TokenDtype dtype() const { return dtype_; }
  size_t sequence_count() const { return sequence_count_; }
  size_t token_count() const { return token_count_; }  // all sequences together
  // Documents; the .idx stores one more document index than this (the leading 0).
  size_t document_count() const { return document_index_count_ - 1; }
  // Entry d of document_indices, d in [0, document_count()]: document d is the sequences
  // [document_index(d), document_index(d + 1)).
  size_t document_index(size_t d) const;
  // True for a file with the trailing int8 modes of a multimodal dataset (not read by hibari).
  bool has_sequence_modes() const { return has_modes_; }

  size_t sequence_length(size_t i) const;
  // Tokens [offset, offset + length) of sequence i, as Megatron's get(idx, offset, length),
  // converted to int32.  An int64 dataset with an id outside int32 is an error.
  void read(size_t i, size_t offset, size_t length, int32_t* out) const;
  std::vector<int32_t> sequence(size_t i) const;

 private:
  IndexedDataset() = default;
  int64_t sequence_pointer(size_t i) const;

  std::string idx_path_, bin_path_;
  const unsigned char* idx_ = nullptr;  // mapping of the whole .idx
  size_t idx_size_ = 0;
  const unsigned char* bin_ = nullptr;  // mapping of the whole .bin (nullptr when it is empty)
  size_t bin_size_ = 0;
  TokenDtype dtype_ = TokenDtype::i32;
  size_t sequence_count_ = 0;
  size_t document_index_count_ = 0;
  size_t token_count_ = 0;
  bool has_modes_ = false;
};

}  // namespace hibari
