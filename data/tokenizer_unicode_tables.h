// data/tokenizer_unicode_tables.h — the generated Unicode tables behind the NFC/NFKC normalizers
// (data/tokenizer_unicode_tables.cpp, written by tests/fixtures/tokenizers/gen_unicode_tables.py).
#pragma once

#include <cstddef>
#include <cstdint>

namespace hibari::unicode_tables {

struct CombiningClass {
  char32_t cp;
  uint8_t ccc;
};
// Full (recursive) decomposition of cp: data[offset .. offset + size).
struct Decomposition {
  char32_t cp;
  uint32_t offset;
  uint32_t size;
};
struct Composition {
  char32_t first, second, composite;
};
struct CodeRange {
  char32_t first, last;
};

// All sorted by code point.
extern const CombiningClass combining_classes[];
extern const size_t combining_classes_size;
extern const Decomposition canonical[];
extern const char32_t canonical_data[];
extern const size_t canonical_size;
extern const Decomposition compatibility[];
extern const char32_t compatibility_data[];
extern const size_t compatibility_size;
extern const Composition compositions[];
extern const size_t compositions_size;
// Code points that may change under NFC (NFKC); text without any is already normalized.
extern const CodeRange nfc_unsafe[];
extern const size_t nfc_unsafe_size;
extern const CodeRange nfkc_unsafe[];
extern const size_t nfkc_unsafe_size;

}  // namespace hibari::unicode_tables
