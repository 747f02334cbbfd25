// data/tokenize_job.cpp — see tokenize_job.h.
#include "data/tokenize_job.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "core/error.h"
#include "data/indexed_dataset.h"
#include "data/text_tokenizer.h"

namespace hibari {

namespace {

struct Batch {
  size_t index = 0;                // position in input order
  std::vector<std::string> texts;  // documents
  std::string file;                // the input file they come from
  std::vector<size_t> lines;       // each document's line in it, named when it cannot be encoded
};

struct TokenizedBatch {
  std::vector<int32_t> tokens;  // all documents back to back
  std::vector<size_t> lengths;  // tokens per document
};

// Batches go to the workers through `todo`; results come back keyed by batch index, so the
// writer can take them in order whatever order the workers finish in.
class WorkerPool {
 public:
  WorkerPool(const TextTokenizer& tokenizer, SpecialTokensInText in_text, size_t workers,
             std::optional<int32_t> bos, std::optional<int32_t> eod)
      : tokenizer_(tokenizer), in_text_(in_text), bos_(bos), eod_(eod) {
    for (size_t i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
  }

  // Stops the workers, dropping batches not started (there are none unless the job failed).
  ~WorkerPool() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
      todo_.clear();  // empty unless an error ends the job early
    }
    todo_ready_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  void submit(Batch batch) {
    {
      std::lock_guard lock(mutex_);
      todo_.push_back(std::move(batch));
    }
    todo_ready_.notify_one();
  }

  // Blocks until batch `index` is tokenized, then hands it over (or rethrows a worker's error).
  TokenizedBatch take(size_t index) {
    std::unique_lock lock(mutex_);
    done_ready_.wait(lock, [&] { return error_ || done_.count(index) > 0; });
    if (error_) std::rethrow_exception(error_);
    auto it = done_.find(index);
    TokenizedBatch result = std::move(it->second);
    done_.erase(it);
    return result;
  }

 private:
  void work() {
    for (;;) {
      Batch batch;
      {
        std::unique_lock lock(mutex_);
        todo_ready_.wait(lock, [&] { return closed_ || !todo_.empty(); });
        if (todo_.empty() || error_) return;
        batch = std::move(todo_.front());
        todo_.pop_front();
      }
      try {
        TokenizedBatch out = tokenize(batch);
        std::lock_guard lock(mutex_);
        done_.emplace(batch.index, std::move(out));
      } catch (...) {
        std::lock_guard lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      done_ready_.notify_all();
    }
  }

  TokenizedBatch tokenize(const Batch& batch) const {
    TokenizedBatch out;
    out.lengths.reserve(batch.texts.size());
    for (size_t i = 0; i < batch.texts.size(); ++i) {
      size_t before = out.tokens.size();
      if (bos_) out.tokens.push_back(*bos_);
      std::vector<int32_t> ids;
      try {
        ids = tokenizer_.encode(batch.texts[i], /*add_special_tokens=*/false, in_text_);
      } catch (const Error& e) {
        fail_file(batch.file + ":" + std::to_string(batch.lines[i]),
                  std::string("cannot tokenize this document: ") + e.what());
      }
      out.tokens.insert(out.tokens.end(), ids.begin(), ids.end());
      if (eod_) out.tokens.push_back(*eod_);
      out.lengths.push_back(out.tokens.size() - before);
    }
    return out;
  }

  const TextTokenizer& tokenizer_;
  SpecialTokensInText in_text_;
  std::optional<int32_t> bos_, eod_;
  std::mutex mutex_;
  std::condition_variable todo_ready_, done_ready_;
  std::deque<Batch> todo_;
  std::map<size_t, TokenizedBatch> done_;
  std::exception_ptr error_;
  bool closed_ = false;
  std::vector<std::thread> threads_;  // last: started after everything above exists
};

}  // namespace

TokenizeSummary tokenize_to_indexed_dataset(
    const TextTokenizer& tokenizer, const TokenizeOptions& options,
    const std::function<void(const TokenizeProgress&)>& progress) {
  auto start = std::chrono::steady_clock::now();
  check(!options.inputs.empty(), "tokenize: no input files");
  check(options.workers > 0, "tokenize: workers must be at least 1");
  check(!options.output_prefix.empty(), "tokenize: the output prefix is empty");
  std::optional<int32_t> bos, eod;
  if (options.add_bos) {
    bos = tokenizer.bos_id();
    if (!bos) fail_file(tokenizer.path(), "the tokenizer has no BOS token, so BOS cannot be added");
  }
  if (options.append_eod) {
    eod = tokenizer.eos_id();
    if (!eod) {
      fail_file(tokenizer.path(), "the tokenizer has no EOS token to use as end of document");
    }
  }

  TokenizeSummary summary;
  IndexedDatasetWriter writer(options.output_prefix, token_dtype_for_vocab(tokenizer.vocab_size()));
  uint64_t bytes_before = 0;  // of the files finished
  auto report = [&](uint64_t bytes_now) {
    summary.totals.bytes_read = bytes_before + bytes_now;
    summary.totals.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (progress) progress(summary.totals);
  };
  const size_t max_in_flight = 2 * options.workers + 1;
  size_t submitted = 0, written = 0;
  {
    // Declared after the writer and destroyed first: workers stop before the writer goes away.
    WorkerPool pool(tokenizer, options.special_tokens_in_text, options.workers, bos, eod);
    auto write_next = [&] {
      TokenizedBatch result = pool.take(written++);
      size_t at = 0;
      for (size_t n : result.lengths) {
        writer.add_document(result.tokens.data() + at, n);
        at += n;
      }
      summary.totals.documents += result.lengths.size();
      summary.totals.tokens += result.tokens.size();
    };

    for (const std::string& path : options.inputs) {
      JsonlReader reader(path, {.key = options.json_key, .bad_lines = options.bad_lines});
      JsonlDocument doc;
      bool more = true;
      while (more) {
        Batch batch{.index = submitted, .texts = {}, .file = path, .lines = {}};
        size_t bytes = 0;
        while (batch.texts.size() < options.batch_documents && bytes < options.batch_bytes) {
          more = reader.next(doc);
          if (!more) break;
          bytes += doc.text.size();
          batch.texts.push_back(std::move(doc.text));
          batch.lines.push_back(doc.line);
        }
        if (batch.texts.empty()) break;
        if (submitted - written >= max_in_flight) {
          write_next();
          report(reader.bytes_read());
        }
        pool.submit(std::move(batch));
        ++submitted;
      }
      summary.skipped += reader.skipped();
      summary.blank_lines += reader.blank_lines();
      bytes_before += reader.bytes_read();
    }
    while (written < submitted) {
      write_next();
      report(0);
    }
  }
  writer.finish();
  report(0);
  return summary;
}

}  // namespace hibari
