#!/usr/bin/python3
# Regenerate the fixture with:
#   /usr/bin/python3 tests/reference/python_random.py > tests/fixtures/eval/python_random.json
#
# Reference values for eval/python_random.{h,cpp}, the C++ port of CPython's random.Random as the
# JP LM Evaluation Harness (Stability-AI/lm-evaluation-harness, branch jp-stable, commit
# effdbeaf742e74ea1787871e99272c12146ba346) uses it to shuffle the evaluation documents and draw
# few-shot examples.  Generated with CPython 3.11.  Later versions, as far as checked from source:
# _randbelow_with_getrandbits, shuffle and sample read the same in a CPython-main-derived copy of
# Lib/random.py of the 3.12+ era (it has binomialvariate; only sample's `counts` handling, unused
# by the harness, differs), and getrandbits in a later Modules/_randommodule.c (k became uint64_t;
# the same word loop).  Seeding (init_by_array) and random() were not re-read there.
import json
import random
import struct
import sys
from collections import defaultdict

SEEDS = [0, 1, 42, 1234, 2**32 + 5, 2**63 - 1]


def stratified_fewshot_examples(docs, k, rnd, doc_to_target):
    """lm_eval/base.py Task._stratified_fewshot_examples at the commit above, minus the caching
    (which only saves recomputing the same two dicts)."""
    target_to_docs = defaultdict(list)
    for doc in docs:
        target = doc_to_target(doc)
        target_to_docs[target].append(doc)
    target_to_ratio = {target: len(_docs) / len(docs) for target, _docs in target_to_docs.items()}

    target_to_num_samples = {target: int(ratio * k) for target, ratio in target_to_ratio.items()}
    remaining_samples = k - sum(target_to_num_samples.values())
    if remaining_samples > 0:
        for _ in range(remaining_samples):
            target = min(target_to_num_samples, key=target_to_num_samples.get)
            target_to_num_samples[target] += 1

    samples = []
    for target, num_samples in target_to_num_samples.items():
        samples.extend(rnd.sample(target_to_docs[target], num_samples))
    rnd.shuffle(samples)
    return samples


def fewshot_examples(training_docs, num_fewshot, rnd, stratified, doc_to_target):
    """The few-shot draw of lm_eval/base.py Task.fewshot_context for a task with training docs."""
    if num_fewshot == 0:
        return []
    if stratified:
        return stratified_fewshot_examples(training_docs, num_fewshot, rnd, doc_to_target)
    return rnd.sample(training_docs, num_fewshot)


def fewshot_examples_without_training(fewshot_docs, doc, num_fewshot, rnd, stratified,
                                      doc_to_target):
    """The same for a task without training docs: draws one more from the evaluation docs and
    drops every example equal to the current doc."""
    if num_fewshot == 0:
        return []
    if stratified:
        fewshotex = stratified_fewshot_examples(fewshot_docs, num_fewshot + 1, rnd, doc_to_target)
    else:
        fewshotex = rnd.sample(fewshot_docs, num_fewshot + 1)
    return [x for x in fewshotex if x != doc][:num_fewshot]


def float_bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def generators():
    out = []
    for seed in SEEDS:
        rnd = random.Random(seed)
        u32 = [rnd.getrandbits(32) for _ in range(8)]
        rnd = random.Random()
        rnd.seed(seed)
        bits = []
        for k in [1, 5, 31, 32, 33, 48, 63, 64, 7, 64]:
            bits.append([k, rnd.getrandbits(k)])
        floats = [rnd.random() for _ in range(6)]
        below = []
        for n in [1, 2, 3, 10, 17, 1000, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**53 + 3, 2**64 - 1]:
            below.append([n, rnd._randbelow(n)])
        out.append({
            "seed": seed,
            "u32": u32,
            "getrandbits": bits,
            "random": floats,
            "random_bits": [float_bits(x) for x in floats],
            "randbelow": below,
        })
    return out


def shuffles():
    out = []
    for seed in [42, 7]:
        for n in [0, 1, 2, 10, 100, 4442, 1119]:
            rnd = random.Random(seed)
            x = list(range(n))
            rnd.shuffle(x)
            out.append({"seed": seed, "n": n, "perm": x, "after": rnd.getrandbits(32)})
    return out


def samples():
    # One rnd through all the draws: each must consume exactly what CPython's does.
    rnd = random.Random(42)
    draws = []
    # The branch flips where n passes setsize: 21 for k <= 5, 21 + 4**3 for k in 6..21,
    # 21 + 4**4 for k in 22..85 (ceil(log(3k, 4)) in floats).  The two branches often agree on a
    # small draw, so each boundary is drawn several times.
    boundaries = [(21, 5), (22, 5), (85, 6), (86, 6), (85, 21), (86, 21), (277, 22), (278, 22)]
    for n, k in [(20, 5), (1000, 3), (100, 50), (10000, 10), (5, 0), (0, 0), (20073, 0),
                 *boundaries * 6, (20, 20), (1, 1), (20073, 3), (300, 100)]:
        draws.append({"n": n, "k": k, "indices": rnd.sample(range(n), k)})
    return {"seed": 42, "draws": draws, "after": rnd.getrandbits(32)}


def stratified():
    labels = ["entailment"] * 11 + ["contradiction"] * 4 + ["neutral"] * 7
    rnd = random.Random(3)
    rnd.shuffle(labels)
    docs = [{"i": i, "label": label} for i, label in enumerate(labels)]
    cases = []
    rnd = random.Random(42)
    for k in [0, 1, 2, 3, 5, 7, 3, 1, 22]:
        picked = stratified_fewshot_examples(docs, k, rnd, lambda d: d["label"])
        cases.append({"k": k, "indices": [d["i"] for d in picked]})
    # Two labels of 2 and 1 docs: int(ratio * k) rounds 2/3*3 and 1/3*3 the float way.
    small = [{"i": i, "label": label} for i, label in enumerate(["b", "a", "b"])]
    small_cases = []
    for k in [1, 2, 3]:
        picked = stratified_fewshot_examples(small, k, rnd, lambda d: d["label"])
        small_cases.append({"k": k, "indices": [d["i"] for d in picked]})
    return {"labels": labels, "seed": 42, "cases": cases,
            "small_labels": ["b", "a", "b"], "small_cases": small_cases,
            "after": rnd.getrandbits(32)}


def harness_sequence():
    # evaluator.py: one rnd per task seeded 42 shuffles the documents, then fewshot_context draws
    # for each document in the shuffled order from the same rnd.
    task_docs = list(range(1119))
    rnd = random.Random()
    rnd.seed(42)
    rnd.shuffle(task_docs)
    training = list(range(20073))
    shots = []
    for doc in task_docs[:20]:
        shots.append(fewshot_examples(training, 3, rnd, False, None))
    return {"n_docs": 1119, "n_train": 20073, "k": 3, "order": task_docs, "shots": shots,
            "after": rnd.getrandbits(32)}


def harness_stratified_sequence():
    # JNLI-like: stratified draws of 3 from 300 labelled training docs.
    names = ["entailment", "contradiction", "neutral"]
    label_rnd = random.Random(5)
    labels = [names[label_rnd.getrandbits(32) % 7 % 3] for _ in range(300)]
    training = [{"i": i, "label": label} for i, label in enumerate(labels)]
    task_docs = list(range(50))
    rnd = random.Random()
    rnd.seed(42)
    rnd.shuffle(task_docs)
    shots = []
    for doc in task_docs[:10]:
        picked = fewshot_examples(training, 3, rnd, True, lambda d: d["label"])
        shots.append([d["i"] for d in picked])
    return {"labels": labels, "n_docs": 50, "k": 3, "order": task_docs, "shots": shots,
            "after": rnd.getrandbits(32)}


def without_training():
    # Evaluation docs as their own few-shot pool; docs 3 and 8 equal doc 0 ("x"), so drawing any
    # of them for doc 0 drops it too (the harness compares documents by value).
    values = ["x", "y", "z", "x", "w", "v", "u", "t", "x", "s", "r", "q"]
    docs = [{"text": v} for v in values]
    rnd = random.Random(42)
    draws = []
    for doc_index in [0, 1, 0, 5, 0, 3, 11, 0]:
        for k in [2, 0]:
            picked_docs = fewshot_examples_without_training(docs, docs[doc_index], k, rnd, False,
                                                            None)
            # Report positions in the pool: the first unused position holding an equal doc is
            # enough here because sample never returns one position twice.
            picked = []
            for d in picked_docs:
                picked.append(next(i for i, x in enumerate(docs) if x is d))
            draws.append({"doc": doc_index, "k": k, "indices": picked})
    return {"values": values, "seed": 42, "draws": draws, "after": rnd.getrandbits(32)}


def main():
    fixture = {
        "python": sys.version.split()[0],
        "generators": generators(),
        "shuffles": shuffles(),
        "samples": samples(),
        "stratified": stratified(),
        "harness_sequence": harness_sequence(),
        "harness_stratified_sequence": harness_stratified_sequence(),
        "without_training": without_training(),
    }
    # One top-level key a line keeps the committed file diffable.
    lines = [json.dumps(key) + ":" + json.dumps(value, separators=(",", ":"))
             for key, value in fixture.items()]
    print("{\n" + ",\n".join(lines) + "\n}")


if __name__ == "__main__":
    main()
