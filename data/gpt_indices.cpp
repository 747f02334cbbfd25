// data/gpt_indices.cpp — Megatron-LM core's GPTDataset index building; see gpt_indices.h.
// Each function names the Megatron function it mirrors; the numbers must match Megatron's
// exactly, so integer arithmetic and the order of random draws follow its code step by step.
#include "data/gpt_indices.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "data/numpy_random.h"

namespace hibari {

static_assert(std::endian::native == std::endian::little, ".npy files here are little-endian");

namespace {

// What the three arrays depend on besides the random draws (the first half of
// GPTDataset._build_document_sample_shuffle_indices).
struct GptPlan {
  int64_t tokens_per_epoch = 0;  // GPTDataset._get_num_tokens_per_epoch
  int32_t num_epochs = 0;
  bool separate_final_epoch = false;
  int64_t num_samples_sans_final_epoch = 0;  // only meaningful with separate_final_epoch
};

GptPlan plan_gpt_indices(std::span<const int32_t> lengths, std::span<const int32_t> documents,
                         const GptIndicesConfig& config) {
  check(config.seq_length > 1, "GPT indices: seq_length must be > 1");
  check(!config.num_samples || *config.num_samples >= 0, "GPT indices: num_samples < 0");
  GptPlan plan;
  for (int32_t d : documents) {
    check(d >= 0 && static_cast<size_t>(d) < lengths.size(),
          "GPT indices: document id " + std::to_string(d) + " outside the dataset's " +
              std::to_string(lengths.size()) + " documents");
    check(lengths[d] >= 0, "GPT indices: negative document length");
    plan.tokens_per_epoch += lengths[d];
  }
  check(plan.tokens_per_epoch > 1, "GPT indices: the split holds fewer than 2 tokens");
  plan.num_epochs = gpt_num_epochs(plan.tokens_per_epoch, config);
  if (plan.num_epochs > 1) {
    // The final epoch is shuffled on its own when less than 80% of it is used, so that the
    // samples drawn from it are not biased towards the few documents shuffled early.
    const int64_t extra = config.add_extra_token ? 1 : 0;
    const int64_t T = config.seq_length;
    plan.num_samples_sans_final_epoch = ((plan.num_epochs - 1) * plan.tokens_per_epoch - extra) / T;
    const int64_t from_final_epoch = *config.num_samples - plan.num_samples_sans_final_epoch;
    const int64_t per_epoch = (plan.tokens_per_epoch - extra) / T;
    check(from_final_epoch >= 0 && from_final_epoch <= per_epoch + 1,
          "GPT indices: inconsistent epoch count");
    // Python's int(0.80 * n): a double product, truncated.
    plan.separate_final_epoch =
        from_final_epoch < static_cast<int64_t>(0.80 * static_cast<double>(per_epoch));
  }
  return plan;
}

// gpt_dataset.py _build_document_index (one call without separate_final_epoch): the split's
// documents repeated `num_epochs` times, then shuffled as one int32 array.
void append_document_epochs(std::vector<int32_t>& doc_idx, std::span<const int32_t> documents,
                            int32_t num_epochs, NumpyRandomState& rs) {
  const size_t begin = doc_idx.size();
  for (int32_t e = 0; e < num_epochs; ++e)
    doc_idx.insert(doc_idx.end(), documents.begin(), documents.end());
  rs.shuffle(std::span<int32_t>(doc_idx).subspan(begin));
}

// gpt_dataset.py _build_shuffle_index: [0, num_samples) shuffled, then [num_samples, total_size)
// shuffled separately when it is not empty.
std::vector<int64_t> build_shuffle_idx(int64_t num_samples, int64_t total_size,
                                       NumpyRandomState& rs) {
  std::vector<int64_t> out(static_cast<size_t>(total_size));
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int64_t>(i);
  std::span<int64_t> all(out);
  rs.shuffle(all.first(static_cast<size_t>(num_samples)));
  if (num_samples != total_size) rs.shuffle(all.subspan(static_cast<size_t>(num_samples)));
  return out;
}

uint64_t fnv1a(const void* data, size_t size, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

int32_t gpt_num_epochs(int64_t tokens_per_epoch, const GptIndicesConfig& config) {
  check(tokens_per_epoch > 0, "GPT indices: no tokens per epoch");
  if (!config.num_samples) return 1;
  const int64_t requested =
      *config.num_samples * config.seq_length + (config.add_extra_token ? 1 : 0);
  int32_t num_epochs = 1;
  for (int64_t tokens = tokens_per_epoch; tokens < requested; tokens += tokens_per_epoch) {
    ++num_epochs;
  }
  return num_epochs;
}

std::vector<int64_t> build_sample_idx(std::span<const int32_t> lengths,
                                      std::span<const int32_t> doc_idx, int32_t seq_length,
                                      int32_t num_epochs, int64_t tokens_per_epoch,
                                      bool drop_last_partial_sequence, bool add_extra_token) {
  check(seq_length > 1 && num_epochs > 0 && tokens_per_epoch > 1 && !doc_idx.empty(),
        "build_sample_idx: bad sizes");
  for (int32_t d : doc_idx) {
    check(d >= 0 && static_cast<size_t>(d) < lengths.size(),
          "build_sample_idx: document id outside the dataset");
  }
  const int64_t extra = add_extra_token ? 1 : 0;
  const int64_t total = num_epochs * tokens_per_epoch - extra;
  // helpers.cpp rounds up in 32-bit float when the last partial sequence is kept.
  const int64_t num_samples =
      drop_last_partial_sequence
          ? total / seq_length
          : static_cast<int64_t>(std::ceil(static_cast<float>(total) / seq_length));
  std::vector<int64_t> out(2 * static_cast<size_t>(num_samples + 1));
  int64_t doc_pos = 0;  // position in doc_idx
  int64_t offset = 0;   // first token of the sample in that document
  out[0] = 0;
  out[1] = 0;
  for (int64_t s = 1; s <= num_samples; ++s) {
    int64_t remaining = seq_length + extra;
    while (remaining != 0) {
      const int64_t doc_length = lengths[doc_idx[doc_pos]] - offset;
      remaining -= doc_length;
      if (remaining <= 0) {
        // The sample ends inside this document; the next one starts at its last (extra) token,
        // which is why `extra` comes off.
        offset += remaining + doc_length - extra;
        remaining = 0;
      } else if (doc_pos == static_cast<int64_t>(doc_idx.size()) - 1) {
        // Out of documents: only the last, partial sample of a kept partial sequence gets here.
        offset = lengths[doc_idx[doc_pos]] - extra;
        break;
      } else {
        ++doc_pos;
        offset = 0;
      }
    }
    out[2 * s] = doc_pos;
    out[2 * s + 1] = offset;
  }
  return out;
}

GptIndices build_gpt_indices(std::span<const int32_t> lengths, std::span<const int32_t> documents,
                             const GptIndicesConfig& config) {
  const GptPlan plan = plan_gpt_indices(lengths, documents, config);
  GptIndices out;
  out.num_epochs = plan.num_epochs;
  out.separate_final_epoch = plan.separate_final_epoch;
  // One RandomState feeds the document shuffle(s), then the sample shuffle(s), in this order.
  NumpyRandomState rs(config.seed);
  out.doc_idx.reserve(documents.size() * static_cast<size_t>(plan.num_epochs));
  if (plan.separate_final_epoch) {
    append_document_epochs(out.doc_idx, documents, plan.num_epochs - 1, rs);
    append_document_epochs(out.doc_idx, documents, 1, rs);
  } else {
    append_document_epochs(out.doc_idx, documents, plan.num_epochs, rs);
  }
  out.sample_idx = build_sample_idx(lengths, out.doc_idx, config.seq_length, plan.num_epochs,
                                    plan.tokens_per_epoch, config.drop_last_partial_sequence,
                                    config.add_extra_token);
  const int64_t total = static_cast<int64_t>(out.sample_idx.size() / 2) - 1;
  out.shuffle_idx = build_shuffle_idx(
      plan.separate_final_epoch ? plan.num_samples_sans_final_epoch : total, total, rs);
  return out;
}

std::string gpt_indices_description(const std::string& dataset_name, const std::string& split_name,
                                    std::span<const int32_t> lengths,
                                    std::span<const int32_t> documents,
                                    const GptIndicesConfig& config) {
  std::ostringstream s;
  s << "class: GPTDataset\n"
    << "format: hibari gpt indices 1\n"
    << "dataset: " << dataset_name << "\n"
    << "split: " << split_name << "\n"
    << "num_samples: "
    << (config.num_samples ? std::to_string(*config.num_samples) : std::string("None")) << "\n"
    << "sequence_length: " << config.seq_length << "\n"
    << "random_seed: " << config.seed << "\n"
    << "add_extra_token_to_sequence: " << config.add_extra_token << "\n"
    << "drop_last_partial_sequence: " << config.drop_last_partial_sequence << "\n"
    << "num_documents: " << lengths.size() << "\n"
    << "num_split_documents: " << documents.size() << "\n"
    << "lengths_fnv1a: " << hex16(fnv1a(lengths.data(), lengths.size_bytes())) << "\n"
    << "documents_fnv1a: " << hex16(fnv1a(documents.data(), documents.size_bytes())) << "\n";
  return s.str();
}

namespace {

std::string read_text(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// Writes next to `path` and renames, so concurrent readers see the old file or the whole new one.
template <typename Write>
void write_atomically(const std::filesystem::path& path, Write write) {
  const std::filesystem::path tmp = path.string() + ".tmp" + std::to_string(getpid());
  write(tmp);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail_file(path.string(), "cannot write: " + ec.message());
}

// Reads a cache written by load_or_build_gpt_indices and checks every value against the arrays
// and the documents it indexes, so read_gpt_sample cannot step outside them: an Error names the
// file and the first bad value.
GptIndices read_cached_gpt_indices(const std::string& doc_path, const std::string& sample_path,
                                   const std::string& shuffle_path,
                                   std::span<const int32_t> lengths,
                                   std::span<const int32_t> documents,
                                   const GptIndicesConfig& config) {
  const GptPlan plan = plan_gpt_indices(lengths, documents, config);
  GptIndices out;
  out.num_epochs = plan.num_epochs;
  out.separate_final_epoch = plan.separate_final_epoch;
  const std::vector<int64_t> docs = npy_as_int64(read_npy(doc_path));
  out.sample_idx = npy_as_int64(read_npy(sample_path));
  out.shuffle_idx = npy_as_int64(read_npy(shuffle_path));
  if (docs.size() != documents.size() * static_cast<size_t>(plan.num_epochs))
    fail_file(doc_path, "cached GPT indices have the wrong sizes");
  if (out.sample_idx.size() < 2 || out.sample_idx.size() != 2 * (out.shuffle_idx.size() + 1))
    fail_file(sample_path, "cached GPT indices have the wrong sizes");
  // Document ids: the dataset's documents.
  out.doc_idx.reserve(docs.size());
  for (size_t i = 0; i < docs.size(); ++i) {
    if (docs[i] < 0 || static_cast<uint64_t>(docs[i]) >= lengths.size())
      fail_file(doc_path, "entry " + std::to_string(i) + " is document " + std::to_string(docs[i]) +
                              ", outside the dataset's " + std::to_string(lengths.size()) +
                              " documents");
    out.doc_idx.push_back(static_cast<int32_t>(docs[i]));
  }
  // Sample boundaries: [position in doc_idx, token offset], in order; a sample's end (every row
  // but the first) leaves room for the extra token in its document.
  const int64_t extra = config.add_extra_token ? 1 : 0;
  const size_t rows = out.sample_idx.size() / 2;
  for (size_t r = 0; r < rows; ++r) {
    const int64_t pos = out.sample_idx[2 * r], offset = out.sample_idx[2 * r + 1];
    auto bad = [&](const std::string& why) {
      fail_file(sample_path, "row " + std::to_string(r) + " [" + std::to_string(pos) + ", " +
                                 std::to_string(offset) + "] " + why);
    };
    if (pos < 0 || static_cast<uint64_t>(pos) >= out.doc_idx.size())
      bad("points outside the document index (" + std::to_string(out.doc_idx.size()) + " entries)");
    const int64_t length = lengths[static_cast<size_t>(out.doc_idx[static_cast<size_t>(pos)])];
    if (offset < 0 || offset + (r > 0 ? extra : 0) > length)
      bad("is outside its document of " + std::to_string(length) + " tokens");
    if (r > 0) {
      const int64_t prev_pos = out.sample_idx[2 * r - 2], prev_offset = out.sample_idx[2 * r - 1];
      if (pos < prev_pos || (pos == prev_pos && offset < prev_offset))
        bad("goes back before the row above it");
    }
  }
  const int64_t samples = static_cast<int64_t>(out.shuffle_idx.size());
  for (size_t i = 0; i < out.shuffle_idx.size(); ++i) {
    if (out.shuffle_idx[i] < 0 || out.shuffle_idx[i] >= samples)
      fail_file(shuffle_path, "entry " + std::to_string(i) + " is sample " +
                                  std::to_string(out.shuffle_idx[i]) + ", outside the " +
                                  std::to_string(samples) + " samples");
  }
  return out;
}

}  // namespace

GptIndices load_or_build_gpt_indices(const std::string& cache_dir, const std::string& dataset_name,
                                     const std::string& split_name,
                                     std::span<const int32_t> lengths,
                                     std::span<const int32_t> documents,
                                     const GptIndicesConfig& config) {
  namespace fs = std::filesystem;
  const std::string description =
      gpt_indices_description(dataset_name, split_name, lengths, documents, config);
  const std::string base =
      hex16(fnv1a(description.data(), description.size())) + "-GPTDataset-" + split_name + "-";
  const fs::path dir(cache_dir);
  const fs::path description_path = dir / (base + "description.txt");
  const fs::path doc_path = dir / (base + "document_index.npy");
  const fs::path sample_path = dir / (base + "sample_index.npy");
  const fs::path shuffle_path = dir / (base + "shuffle_index.npy");

  if (fs::is_regular_file(description_path) && fs::is_regular_file(doc_path) &&
      fs::is_regular_file(sample_path) && fs::is_regular_file(shuffle_path) &&
      read_text(description_path) == description) {
    // A cache that cannot be read or whose values point outside its arrays or the documents
    // (a torn copy, a disk error, an edited file) would be read out of bounds: rebuild it.
    try {
      return read_cached_gpt_indices(doc_path.string(), sample_path.string(), shuffle_path.string(),
                                     lengths, documents, config);
    } catch (const Error& e) {
      std::fprintf(stderr, "hibari: warning: %s; rebuilding the index cache\n", e.what());
    }
  }

  GptIndices out = build_gpt_indices(lengths, documents, config);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail_file(cache_dir, "cannot create the index cache: " + ec.message());
  // Megatron's dtypes: int32 document and sample indices (while they fit), uint32 shuffle index
  // below 2^32 - 2 samples, int64 beyond.
  const int64_t rows = static_cast<int64_t>(out.sample_idx.size() / 2);
  write_atomically(doc_path, [&](const fs::path& p) {
    write_npy(p.string(), npy_from(std::span<const int32_t>(out.doc_idx),
                                   {static_cast<int64_t>(out.doc_idx.size())}));
  });
  write_atomically(sample_path, [&](const fs::path& p) {
    int64_t max_value = 0;
    for (int64_t v : out.sample_idx) max_value = std::max(max_value, v);
    if (max_value <= INT32_MAX) {
      std::vector<int32_t> narrow(out.sample_idx.begin(), out.sample_idx.end());
      write_npy(p.string(), npy_from(std::span<const int32_t>(narrow), {rows, 2}));
    } else {
      write_npy(p.string(), npy_from(std::span<const int64_t>(out.sample_idx), {rows, 2}));
    }
  });
  write_atomically(shuffle_path, [&](const fs::path& p) {
    const int64_t n = static_cast<int64_t>(out.shuffle_idx.size());
    if (rows - 1 < int64_t{UINT32_MAX} - 1) {
      std::vector<uint32_t> narrow(out.shuffle_idx.begin(), out.shuffle_idx.end());
      write_npy(p.string(), npy_from(std::span<const uint32_t>(narrow), {n}));
    } else {
      write_npy(p.string(), npy_from(std::span<const int64_t>(out.shuffle_idx), {n}));
    }
  });
  // The description last: its presence marks a complete cache.
  write_atomically(description_path, [&](const fs::path& p) {
    std::ofstream f(p, std::ios::binary);
    f << description;
    if (!f) fail_file(p.string(), "cannot write");
  });
  return out;
}

// ---- .npy (numpy format 1.0; 2.0 is read too) ------------------------------------------------

namespace {

size_t descr_size(const std::string& descr) {
  if (descr == "<i2") return 2;
  if (descr == "<i4" || descr == "<u4") return 4;
  if (descr == "<i8" || descr == "<u8" || descr == "<f8") return 8;
  return 0;
}

template <typename T>
NpyArray make_npy(std::span<const T> values, std::vector<int64_t> shape, const char* descr) {
  NpyArray a;
  a.descr = descr;
  a.shape = std::move(shape);
  a.data.resize(values.size_bytes());
  if (!values.empty()) std::memcpy(a.data.data(), values.data(), values.size_bytes());
  return a;
}

template <typename T>
T load_le(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

NpyArray npy_from(std::span<const int16_t> v, std::vector<int64_t> shape) {
  return make_npy(v, std::move(shape), "<i2");
}
NpyArray npy_from(std::span<const int32_t> v, std::vector<int64_t> shape) {
  return make_npy(v, std::move(shape), "<i4");
}
NpyArray npy_from(std::span<const uint32_t> v, std::vector<int64_t> shape) {
  return make_npy(v, std::move(shape), "<u4");
}
NpyArray npy_from(std::span<const int64_t> v, std::vector<int64_t> shape) {
  return make_npy(v, std::move(shape), "<i8");
}
NpyArray npy_from(std::span<const double> v, std::vector<int64_t> shape) {
  return make_npy(v, std::move(shape), "<f8");
}

void write_npy(const std::string& path, const NpyArray& array) {
  std::string header = "{'descr': '" + array.descr + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < array.shape.size(); ++i) {
    header += (i ? ", " : "") + std::to_string(array.shape[i]);
  }
  header += array.shape.size() == 1 ? ",), }" : "), }";
  // numpy pads with spaces and ends with '\n' so the data starts on a 64-byte boundary.
  const size_t preamble = 10;  // magic (6) + version (2) + header length (2)
  const size_t total = (preamble + header.size() + 1 + 63) / 64 * 64;
  header.append(total - preamble - header.size() - 1, ' ');
  header += '\n';
  check(header.size() <= 65535, "write_npy: header too long");
  std::ofstream f(path, std::ios::binary);
  if (!f) fail_file(path, "cannot open for writing");
  const unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff),
                                static_cast<unsigned char>(header.size() >> 8)};
  f.write("\x93NUMPY\x01\x00", 8);
  f.write(reinterpret_cast<const char*>(len), 2);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  f.write(array.data.data(), static_cast<std::streamsize>(array.data.size()));
  if (!f) fail_file(path, "cannot write");
}

NpyArray read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail_file(path, "cannot open");
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) {
    fail_file(path, "not a .npy file");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, start = 0;
  if (major == 1) {
    header_len = load_le<uint16_t>(bytes.data() + 8);
    start = 10;
  } else if (major == 2 && bytes.size() >= 12) {
    header_len = load_le<uint32_t>(bytes.data() + 8);
    start = 12;
  } else {
    fail_file(path, ".npy version " + std::to_string(major) + " is not supported");
  }
  if (bytes.size() < start + header_len) fail_file(path, "truncated .npy header");
  const std::string header = bytes.substr(start, header_len);

  NpyArray a;
  const size_t d = header.find("'descr':");
  const size_t q1 = d == std::string::npos ? d : header.find('\'', d + 8);
  const size_t q2 = q1 == std::string::npos ? q1 : header.find('\'', q1 + 1);
  if (q2 == std::string::npos) fail_file(path, "no descr in the .npy header");
  a.descr = header.substr(q1 + 1, q2 - q1 - 1);
  if (descr_size(a.descr) == 0) {
    fail_file(path, "unsupported .npy dtype " + a.descr);
  }
  if (header.find("'fortran_order': False") == std::string::npos) {
    fail_file(path, "only C-order .npy arrays are supported");
  }
  const size_t s = header.find("'shape':");
  const size_t open = s == std::string::npos ? s : header.find('(', s);
  const size_t close = open == std::string::npos ? open : header.find(')', open);
  if (close == std::string::npos) fail_file(path, "no shape in the .npy header");
  std::istringstream dims(header.substr(open + 1, close - open - 1));
  std::string item;
  int64_t count = 1;
  while (std::getline(dims, item, ',')) {
    const size_t first = item.find_first_not_of(' ');
    if (first == std::string::npos) continue;
    const size_t last = item.find_last_not_of(' ');
    int64_t dim = -1;
    auto [end, ec] = std::from_chars(item.data() + first, item.data() + last + 1, dim);
    if (ec != std::errc() || end != item.data() + last + 1 || dim < 0)
      fail_file(path, "bad dimension \"" + item + "\" in the .npy shape");
    a.shape.push_back(dim);
    if (__builtin_mul_overflow(count, dim, &count)) fail_file(path, "the .npy shape is too large");
  }
  size_t nbytes = 0;
  if (__builtin_mul_overflow(static_cast<size_t>(count), descr_size(a.descr), &nbytes) ||
      bytes.size() - start - header_len != nbytes) {
    fail_file(path, "the .npy data size does not match its shape");
  }
  a.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(start + header_len), bytes.end());
  return a;
}

std::vector<int64_t> npy_as_int64(const NpyArray& a) {
  const size_t size = descr_size(a.descr);
  if (size == 0 || a.descr == "<f8") fail("npy_as_int64: not an integer array (" + a.descr + ")");
  std::vector<int64_t> out(a.data.size() / size);
  const char* p = a.data.data();
  for (size_t i = 0; i < out.size(); ++i, p += size) {
    if (a.descr == "<i2")
      out[i] = load_le<int16_t>(p);
    else if (a.descr == "<i4")
      out[i] = load_le<int32_t>(p);
    else if (a.descr == "<u4")
      out[i] = load_le<uint32_t>(p);
    else if (a.descr == "<u8")
      out[i] = static_cast<int64_t>(load_le<uint64_t>(p));
    else
      out[i] = load_le<int64_t>(p);
  }
  return out;
}

std::vector<double> npy_as_double(const NpyArray& a) {
  if (a.descr != "<f8") fail("npy_as_double: not a float64 array (" + a.descr + ")");
  std::vector<double> out(a.data.size() / 8);
  for (size_t i = 0; i < out.size(); ++i) out[i] = load_le<double>(a.data.data() + 8 * i);
  return out;
}

}  // namespace hibari
