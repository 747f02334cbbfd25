// data/tokenizer_bpe.cpp — the BPE model of Hugging Face `tokenizers` for one word: initial
// symbols (with byte fallback and unknown-token fusing), then merges applied lowest rank first,
// leftmost first among equal ranks, with a heap over a linked list of symbols (HF's
// Word::merge_all).  Results are cached per thread, keyed by the word.
#include <algorithm>

#include "data/tokenizer_spec.h"

namespace hibari {

namespace {

struct Symbol {
  int32_t id;
  int32_t prev, next;  // neighbours in the word, -1 at the ends
  uint32_t len;        // bytes covered; 0 once merged into its left neighbour
};
struct Candidate {
  int32_t rank;
  int32_t pos;  // the left symbol of the pair
  int32_t merged_id;
  int32_t left_id, right_id;  // the pair when queued: unchanged means still valid
};
// std heap functions keep the largest first; invert so the lowest (rank, pos) comes out first.
bool later(const Candidate& a, const Candidate& b) {
  return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
}

void encode_uncached(std::vector<int32_t>& ids, const Bpe& bpe, std::string_view word) {
  if (bpe.ignore_merges) {
    auto it = bpe.vocab.find(word);
    if (it != bpe.vocab.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Candidate> heap;
  thread_local std::string piece;
  symbols.clear();
  heap.clear();
  auto add = [&](int32_t id, size_t len) {
    int32_t i = static_cast<int32_t>(symbols.size());
    if (i > 0) symbols.back().next = i;
    symbols.push_back({id, i - 1, -1, static_cast<uint32_t>(len)});
  };
  int32_t unk_id = -1;  // a pending run of unknown chars: its id and bytes
  size_t unk_len = 0;
  for (size_t i = 0; i < word.size();) {
    size_t n = std::min(utf8_length(static_cast<unsigned char>(word[i])), word.size() - i);
    std::string_view ch = word.substr(i, n);
    bool first = i == 0, last = i + n == word.size();
    i += n;
    std::string_view s = ch;
    if ((!first && !bpe.continuing_subword_prefix.empty()) ||
        (last && !bpe.end_of_word_suffix.empty())) {
      piece.clear();
      if (!first) piece += bpe.continuing_subword_prefix;
      piece += ch;
      if (last) piece += bpe.end_of_word_suffix;
      s = piece;
    }
    auto it = bpe.vocab.find(s);
    if (it != bpe.vocab.end()) {
      if (unk_id >= 0) add(unk_id, unk_len);
      unk_id = -1;
      add(it->second, n);
      continue;
    }
    if (bpe.byte_fallback && std::all_of(s.begin(), s.end(), [&](char c) {
          return bpe.byte_ids[static_cast<unsigned char>(c)] >= 0;
        })) {
      // As HF: byte tokens go in without flushing a pending unknown run.
      for (char c : s) add(bpe.byte_ids[static_cast<unsigned char>(c)], 1);
      continue;
    }
    if (bpe.unk) {
      if (unk_id >= 0 && bpe.fuse_unk) {
        unk_len += n;
      } else {
        if (unk_id >= 0) add(unk_id, unk_len);
        unk_id = *bpe.unk;
        unk_len = n;
      }
    }
    // Without an unknown token HF drops the character.
  }
  if (unk_id >= 0) add(unk_id, unk_len);

  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const MergeTable::Slot* m = bpe.merges.find(symbols[i].id, symbols[i + 1].id))
      heap.push_back(
          {m->rank, static_cast<int32_t>(i), m->merged_id, symbols[i].id, symbols[i + 1].id});
  }
  std::make_heap(heap.begin(), heap.end(), later);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = symbols[top.pos];
    // Stale candidates: the left symbol was merged away, or its right neighbour changed.
    if (left.len == 0 || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    if (left.id != top.left_id || right.id != top.right_id) {
      // HF's test: the pair now there merges into the same token (it may be another pair).
      const MergeTable::Slot* m = bpe.merges.find(left.id, right.id);
      if (!m || m->merged_id != top.merged_id) continue;
    }
    left.id = top.merged_id;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const MergeTable::Slot* pm = bpe.merges.find(symbols[left.prev].id, left.id)) {
        heap.push_back({pm->rank, left.prev, pm->merged_id, symbols[left.prev].id, left.id});
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
    if (left.next >= 0) {
      if (const MergeTable::Slot* nm = bpe.merges.find(left.id, symbols[left.next].id)) {
        heap.push_back({nm->rank, top.pos, nm->merged_id, left.id, symbols[left.next].id});
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
  }
  for (const Symbol& s : symbols)
    if (s.len != 0) ids.push_back(s.id);
}

// Words seen before on this thread, for the tokenizer with serial `serial`.
struct WordCache {
  uint64_t serial = 0;
  std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, StringHash, std::equal_to<>> words;
  std::vector<int32_t> ids;  // words[w] = (offset, count) into ids
};

constexpr size_t cache_max_word = 256;       // longer words are rare; caching them buys nothing
constexpr size_t cache_max_words = 1 << 18;  // then start over, bounding memory per thread

}  // namespace

void bpe_encode_word(std::vector<int32_t>& ids, const TokenizerSpec& spec, std::string_view word) {
  thread_local WordCache cache;
  if (cache.serial != spec.serial || cache.words.size() >= cache_max_words) {
    cache.words.clear();
    cache.ids.clear();
    cache.serial = spec.serial;
  }
  bool cacheable = word.size() <= cache_max_word;
  if (cacheable) {
    auto it = cache.words.find(word);
    if (it != cache.words.end()) {
      const int32_t* p = cache.ids.data() + it->second.first;
      ids.insert(ids.end(), p, p + it->second.second);
      return;
    }
  }
  size_t start = ids.size();
  encode_uncached(ids, spec.bpe, word);
  if (cacheable) {
    cache.words.emplace(word,
                        std::pair<uint32_t, uint32_t>(static_cast<uint32_t>(cache.ids.size()),
                                                      static_cast<uint32_t>(ids.size() - start)));
    cache.ids.insert(cache.ids.end(), ids.begin() + static_cast<ptrdiff_t>(start), ids.end());
  }
}

}  // namespace hibari
