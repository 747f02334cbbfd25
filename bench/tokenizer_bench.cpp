// bench/tokenizer_bench.cpp — encoding throughput of hibari::Tokenizer, the C++ side of
// bench/tokenizer_run.sh (bench/tokenizer_peer.js is the Hugging Face `tokenizers` side;
// bench/README.md says what is measured).
//
// Reads the documents (JSON Lines, the string under "text"), loads the tokenizer, then encodes
// every document with add_special_tokens=false on --threads std::threads (each thread takes the
// next document from a shared counter until none is left).  One untimed warm-up pass, then --runs
// timed passes (wall clock, threads started and joined inside the timing); the best pass gives MB/s
// = UTF-8 bytes of the documents / 1e6 / seconds.  Prints one line of JSON.
//
//   tokenizer_bench --tokenizer PATH --docs FILE.jsonl [--threads N] [--runs N] [--name NAME]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "data/tokenizer.h"

namespace {

[[noreturn]] void usage(const std::string& problem) {
  if (!problem.empty()) std::cerr << "tokenizer_bench: " << problem << "\n";
  std::cerr << "usage: tokenizer_bench --tokenizer PATH --docs FILE.jsonl [--threads N] "
               "[--runs N] [--name NAME]\n";
  std::exit(problem.empty() ? 0 : 2);
}

size_t parse_positive(const std::string& flag, const std::string& value) {
  try {
    size_t used = 0;
    long long v = std::stoll(value, &used);
    if (used != value.size() || v <= 0) throw std::invalid_argument(value);
    return size_t(v);
  } catch (const std::exception&) {
    usage(flag + " expects a positive integer, got '" + value + "'");
  }
}

std::vector<std::string> read_docs(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::vector<std::string> docs;
  std::string line;
  size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string()) {
      throw std::runtime_error(path + ":" + std::to_string(number) + ": no \"text\" string");
    }
    docs.push_back(j["text"].get<std::string>());
  }
  if (docs.empty()) throw std::runtime_error(path + ": no documents");
  return docs;
}

// One pass over all documents on `threads` threads; returns the total token count.
size_t encode_all(const hibari::Tokenizer& tok, const std::vector<std::string>& docs,
                  size_t threads) {
  std::atomic<size_t> next{0};
  std::vector<size_t> counts(threads, 0);
  std::vector<std::exception_ptr> errors(threads);
  auto work = [&](size_t t) {
    try {
      size_t count = 0;
      for (size_t i = next.fetch_add(1); i < docs.size(); i = next.fetch_add(1)) {
        count += tok.encode(docs[i], false).size();
      }
      counts[t] = count;
    } catch (...) {
      errors[t] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  size_t total = 0;
  for (size_t c : counts) total += c;
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  std::string tokenizer_path, docs_path, name;
  size_t threads = 2, runs = 3;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") usage("");
    if (i + 1 >= argc) usage(flag + " needs a value");
    std::string value = argv[++i];
    if (flag == "--tokenizer") {
      tokenizer_path = value;
    } else if (flag == "--docs") {
      docs_path = value;
    } else if (flag == "--name") {
      name = value;
    } else if (flag == "--threads") {
      threads = parse_positive(flag, value);
    } else if (flag == "--runs") {
      runs = parse_positive(flag, value);
    } else {
      usage("unknown flag " + flag);
    }
  }
  if (tokenizer_path.empty() || docs_path.empty()) usage("--tokenizer and --docs are required");
  if (name.empty()) name = tokenizer_path;

  try {
    std::vector<std::string> docs = read_docs(docs_path);
    size_t bytes = 0;
    for (const auto& d : docs) bytes += d.size();

    using clock = std::chrono::steady_clock;
    auto load_start = clock::now();
    hibari::Tokenizer tok(tokenizer_path);
    double load_s = std::chrono::duration<double>(clock::now() - load_start).count();

    size_t tokens = encode_all(tok, docs, threads);  // warm-up (word caches, page faults)
    std::vector<double> times;
    for (size_t r = 0; r < runs; ++r) {
      auto start = clock::now();
      size_t n = encode_all(tok, docs, threads);
      times.push_back(std::chrono::duration<double>(clock::now() - start).count());
      if (n != tokens) throw std::runtime_error("token count changed between runs");
    }
    double best = *std::min_element(times.begin(), times.end());
    double mb_per_s = double(bytes) / 1e6 / best;

    nlohmann::json out = {{"impl", "hibari"},
                          {"tokenizer", name},
                          {"threads", threads},
                          {"docs", docs.size()},
                          {"bytes", bytes},
                          {"tokens", tokens},
                          {"load_s", load_s},
                          {"run_s", times},
                          {"best_s", best},
                          {"mb_per_s", mb_per_s},
                          {"mb_per_s_per_thread", mb_per_s / double(threads)}};
    std::cout << out.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "tokenizer_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
