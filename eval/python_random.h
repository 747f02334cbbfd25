// eval/python_random.h — CPython's random.Random, bit for bit, as far as the JP LM Evaluation
// Harness uses it to pick documents, so that hibari's evaluation sees the same documents in the
// same order with the same few-shot examples.
//
// Ports (from CPython 3.11; what was checked against later versions is listed in
// tests/reference/python_random.py):
//   Modules/_randommodule.c  MT19937: seeding a non-negative int (init_by_array over its 32-bit
//                            words, least significant first; 0 gives the key [0]), genrand_uint32,
//                            getrandbits, random()
//   Lib/random.py            _randbelow_with_getrandbits, shuffle, sample (both its branches)
// and from the harness (Stability-AI/lm-evaluation-harness, branch jp-stable, commit
// effdbeaf742e74ea1787871e99272c12146ba346), lm_eval/base.py:
//   Task._stratified_fewshot_examples and the few-shot draw of Task.fewshot_context.
//
// How the harness drives it (lm_eval/evaluator.py): per task one generator,
//   rnd = Random(); rnd.seed(42); rnd.shuffle(eval_docs)
// then for each of the first `limit` shuffled docs, in that order, fewshot_context draws from the
// same rnd: nothing when num_fewshot is 0, else sample(training_docs, k), or the stratified draw
// for tasks marked stratified (JNLI).  Tests: tests/eval/python_random_test.cpp against
// tests/fixtures/eval/python_random.json (tests/reference/python_random.py writes it).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace hibari {

// The MT19937 state of a random.Random.  Seed it (python_random_seed) before use.
struct PythonRandom {
  std::array<uint32_t, 624> mt{};
  size_t index = 624;  // next word of mt to temper; 624 regenerates the block first
};

// random.Random(seed) / rnd.seed(seed) for an int seed >= 0.
void python_random_seed(PythonRandom& rnd, uint64_t seed);
PythonRandom python_random_with_seed(uint64_t seed);

// The next 32 bits of the generator (genrand_uint32).
uint32_t python_random_u32(PythonRandom& rnd);

// rnd.getrandbits(k) for 0 <= k <= 64.
uint64_t python_getrandbits(PythonRandom& rnd, int k);

// rnd.random(): 53 random bits in [0, 1).
double python_random(PythonRandom& rnd);

// rnd._randbelow(n): uniform in [0, n) by rejection over getrandbits(n.bit_length()).  0 for n = 0
// (3.11's loops forever there; shuffle and sample never ask for it).
uint64_t python_randbelow(PythonRandom& rnd, uint64_t n);

// rnd.shuffle(x) (Fisher-Yates from the back).
template <typename T>
void python_shuffle(PythonRandom& rnd, std::vector<T>& x) {
  for (size_t i = x.size(); i-- > 1;) {
    size_t j = python_randbelow(rnd, i + 1);
    std::swap(x[i], x[j]);
  }
}
void python_shuffle_indices(PythonRandom& rnd, std::vector<size_t>& x);

// The positions rnd.sample(population, k) picks from a population of n, in the order it returns
// them.  Throws Error when k > n, as Python raises ValueError.
std::vector<size_t> python_sample_indices(PythonRandom& rnd, size_t n, size_t k);

// The harness's _stratified_fewshot_examples(docs, k, rnd) where docs[i] has target targets[i]:
// the positions in docs of the documents it returns, in its order.
std::vector<size_t> harness_stratified_sample(PythonRandom& rnd,
                                              const std::vector<std::string>& targets, size_t k);

// fewshot_context's draw for a task with training docs: positions in a pool of pool_size
// training docs; none when num_fewshot is 0.  stratify_by (the targets of the pool) selects the
// stratified draw.
std::vector<size_t> harness_fewshot_indices(PythonRandom& rnd, size_t pool_size, size_t num_fewshot,
                                            const std::vector<std::string>* stratify_by = nullptr);

// The same for a task without training docs, whose pool is its evaluation docs: it draws
// num_fewshot + 1 and drops every drawn document equal (by value, as Python's !=) to the one being
// evaluated, then keeps the first num_fewshot.  equals_current(i) says whether pool document i
// equals it.
std::vector<size_t> harness_fewshot_indices_without_training(
    PythonRandom& rnd, size_t pool_size, size_t num_fewshot,
    const std::function<bool(size_t)>& equals_current,
    const std::vector<std::string>* stratify_by = nullptr);

}  // namespace hibari
