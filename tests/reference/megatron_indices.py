"""Reference for hibari's Megatron-compatible sample order (data/numpy_random, data/gpt_indices,
data/blend_indices).

A plain re-implementation, with numpy, of Megatron-LM core's index building, written from
megatron/core/datasets/gpt_dataset.py (_build_document_sample_shuffle_indices, _get_num_epochs,
_build_document_index, _build_shuffle_index), helpers.cpp (build_sample_idx,
build_blending_indices, build_exhaustive_blending_indices), utils.py (normalize) and
blended_megatron_dataset_builder.py (_get_size_per_split_per_dataset, _build_megatron_dataset_splits),
blended_megatron_dataset_config.py (parse_and_normalize_split, convert_split_vector_to_split_matrix)
and num_microbatches_calculator.py / training.py (batch-size ramp-up, train and eval sample counts),
as they are at Megatron-LM commit 0b9bc2088b6d6c858275d02638064cc7e0bf8b70.  The random draws come from
numpy's own RandomState, so the C++ side is checked against the real thing.

Modes (each writes .npy files into --out):
  rng     raw draws, intervals and shuffles of RandomState for several seeds and sizes
  gpt     document_index, sample_index, shuffle_index (+ meta: num_epochs, separate_final_epoch)
  blend   weights, target/build sizes per dataset, dataset_index, dataset_sample_index
  split   [begin, end) document bounds of train/valid/test for every count in --counts
  ramp    the global batch size of every step of a ramp-up run, and Megatron's train_iters
  persplit  blend_per_split (--train-data-path, --valid-data-path, --test-data-path): for each
          split with data, the tokens of every sample of its dataset or blend, read from the
          datasets' .bin/.idx files as GPTDataset and BlendedDataset read them
  resave  numpy.load a file and numpy.save it again (the C++ .npy writer is readable by numpy)
  batch   every line of --input is the arguments of one of the modes above (one Python start-up
          for many cases keeps the tests fast)
"""

import argparse
import functools
import math
import re
import os
import shlex

import numpy


def ints(text):
    return [int(t) for t in text.split(",") if t]


def floats(text):
    return [float(t) for t in text.split(",") if t]


# ---------------------------------------------------------------------------------------------
# numpy.random.RandomState


def run_rng(args):
    for seed in ints(args.seeds):
        rs = numpy.random.RandomState(seed)
        numpy.save(os.path.join(args.out, f"u32_{seed}.npy"),
                   rs.randint(0, 2**32, size=1000, dtype=numpy.uint32))
        # randint on the legacy path is masked rejection sampling, the same as random_interval.
        rs = numpy.random.RandomState(seed)
        draws = [rs.randint(0, m + 1, dtype=numpy.int64) for m in ints(args.maxes)]
        numpy.save(os.path.join(args.out, f"interval_{seed}.npy"), numpy.array(draws, numpy.int64))
        for n in ints(args.sizes):
            x = numpy.arange(n, dtype=numpy.int64)
            numpy.random.RandomState(seed).shuffle(x)
            numpy.save(os.path.join(args.out, f"shuffle_{seed}_{n}.npy"), x)
        numpy.save(os.path.join(args.out, f"permutation_{seed}.npy"),
                   numpy.random.RandomState(seed).permutation(1000))
        # One state through shuffles of several dtypes in a row, as Megatron does.
        rs = numpy.random.RandomState(seed)
        parts = []
        for n, dtype in ((100, numpy.int32), (257, numpy.uint32), (64, numpy.int64)):
            x = numpy.arange(n, dtype=dtype)
            rs.shuffle(x)
            parts.append(x.astype(numpy.int64))
        numpy.save(os.path.join(args.out, f"chain_{seed}.npy"), numpy.concatenate(parts))


# ---------------------------------------------------------------------------------------------
# GPTDataset


def get_num_epochs(num_tokens_per_epoch, num_samples, seq_length, add_extra):
    # gpt_dataset.py: GPTDataset._get_num_epochs
    num_epochs = 1
    num_tokens = num_tokens_per_epoch
    if num_samples is None:
        return num_epochs
    requested = num_samples * seq_length + add_extra
    while num_tokens < requested:
        num_epochs += 1
        num_tokens += num_tokens_per_epoch
    return num_epochs


def build_document_index(documents, num_epochs, rs, separate_final_epoch):
    # gpt_dataset.py: _build_document_index
    if not separate_final_epoch or num_epochs == 1:
        document_index = numpy.mgrid[0:num_epochs, 0:len(documents)][1]
        document_index[:] = documents
        document_index = document_index.reshape(-1).astype(numpy.int32)
        rs.shuffle(document_index)
        return document_index
    first = build_document_index(documents, num_epochs - 1, rs, False)
    last = build_document_index(documents, 1, rs, False)
    return numpy.concatenate((first, last))


def build_sample_idx(sizes, document_idx, seq_length, num_epochs, tokens_per_epoch,
                     drop_last_partial_sequence, add_extra):
    # helpers.cpp: build_sample_idx (a Python transcription of the loop)
    if drop_last_partial_sequence:
        num_samples = (num_epochs * tokens_per_epoch - add_extra) // seq_length
    else:
        # helpers.cpp divides a 32-bit float here.
        num_samples = math.ceil(numpy.float32(num_epochs * tokens_per_epoch - add_extra) /
                                numpy.float32(seq_length))
    sizes = [int(s) for s in sizes]
    document_idx = [int(d) for d in document_idx]
    out = numpy.zeros((num_samples + 1, 2), dtype=numpy.int64)
    index = 0
    offset = 0
    out[0] = (0, 0)
    k = 1
    while k <= num_samples:
        remaining = seq_length + add_extra
        while remaining != 0:
            length = sizes[document_idx[index]] - offset
            remaining -= length
            if remaining <= 0:
                offset += remaining + length - add_extra
                remaining = 0
            else:
                if index == len(document_idx) - 1:
                    assert k == num_samples
                    offset = sizes[document_idx[index]] - add_extra
                    break
                index += 1
                offset = 0
        out[k] = (index, offset)
        k += 1
    return out


def build_shuffle_index(num_samples, total_size, rs):
    # gpt_dataset.py: _build_shuffle_index
    dtype = numpy.uint32
    if total_size >= (numpy.iinfo(numpy.uint32).max - 1):
        dtype = numpy.int64
    first = numpy.arange(0, num_samples, 1, dtype=dtype)
    rs.shuffle(first)
    if num_samples == total_size:
        return first
    last = numpy.arange(num_samples, total_size, 1, dtype=dtype)
    rs.shuffle(last)
    return numpy.concatenate((first, last))


def build_gpt_indices(sizes, documents, num_samples, seq_length, seed, add_extra, drop_last):
    # gpt_dataset.py: GPTDataset._build_document_sample_shuffle_indices
    tokens_per_epoch = int(numpy.sum(sizes[documents]))
    num_epochs = get_num_epochs(tokens_per_epoch, num_samples, seq_length, add_extra)
    if num_epochs == 1:
        separate_final_epoch = False
    else:
        sans_final = ((num_epochs - 1) * tokens_per_epoch - add_extra) // seq_length
        from_final = num_samples - sans_final
        per_epoch = (tokens_per_epoch - add_extra) // seq_length
        assert 0 <= from_final <= per_epoch + 1
        separate_final_epoch = from_final < int(0.80 * per_epoch)
    rs = numpy.random.RandomState(seed)
    document_index = build_document_index(documents, num_epochs, rs, separate_final_epoch)
    sample_index = build_sample_idx(sizes, document_index, seq_length, num_epochs,
                                    tokens_per_epoch, drop_last, add_extra)
    total = sample_index.shape[0] - 1
    if separate_final_epoch:
        shuffle_index = build_shuffle_index(sans_final, total, rs)
    else:
        shuffle_index = build_shuffle_index(total, total, rs)
    return document_index, sample_index, shuffle_index, num_epochs, separate_final_epoch


def run_gpt(args):
    sizes = numpy.load(args.lengths).astype(numpy.int32)
    documents = numpy.load(args.documents).astype(numpy.int32)
    num_samples = None if args.num_samples < 0 else args.num_samples
    doc, sample, shuffle, epochs, separate = build_gpt_indices(
        sizes, documents, num_samples, args.seq_length, args.seed, args.add_extra, args.drop_last)
    numpy.save(os.path.join(args.out, "document_index.npy"), doc)
    numpy.save(os.path.join(args.out, "sample_index.npy"), sample)
    numpy.save(os.path.join(args.out, "shuffle_index.npy"), shuffle)
    numpy.save(os.path.join(args.out, "meta.npy"), numpy.array([epochs, int(separate)], numpy.int64))


# ---------------------------------------------------------------------------------------------
# BlendedDataset


def normalize(weights):
    # utils.py: normalize
    w = numpy.array(weights, dtype=numpy.float64)
    return (w / numpy.sum(w)).tolist()


def size_per_dataset(normalized_weights, target_size, surplus=0.0):
    # blended_megatron_dataset_builder.py: _get_size_per_split_per_dataset, one split
    return [int(math.ceil(math.ceil(target_size * w) * (1 + surplus))) for w in normalized_weights]


def build_blending_indices(weights, size):
    # helpers.cpp: build_blending_indices
    dataset_index = numpy.zeros(size, dtype=numpy.int16)
    dataset_sample_index = numpy.zeros(size, dtype=numpy.int64)
    current = [0] * len(weights)
    for i in range(size):
        x = max(float(i), 1.0)
        best = 0
        best_error = weights[0] * x - current[0]
        for d in range(1, len(weights)):
            error = weights[d] * x - current[d]
            if error > best_error:
                best_error = error
                best = d
        dataset_index[i] = best
        dataset_sample_index[i] = current[best]
        current[best] += 1
    return dataset_index, dataset_sample_index


def build_exhaustive_blending_indices(sizes):
    # helpers.cpp: build_exhaustive_blending_indices
    total = sum(sizes)
    weights = [s / float(total) for s in sizes]
    counts = [0] * len(sizes)
    unspent = sorted(d for d in range(len(sizes)) if sizes[d] > 0)
    dataset_index = numpy.zeros(total, dtype=numpy.int16)
    dataset_sample_index = numpy.zeros(total, dtype=numpy.int64)
    i = 0
    while unspent:
        x = max(float(i), 1.0)
        best, best_error = -1, -math.inf
        for d in unspent:
            error = weights[d] * x - counts[d]
            if error > best_error:
                best, best_error = d, error
        dataset_index[i] = best
        dataset_sample_index[i] = counts[best]
        counts[best] += 1
        if sizes[best] - counts[best] == 0:
            unspent.remove(best)
        i += 1
    return dataset_index, dataset_sample_index


def run_blend(args):
    # blended_megatron_dataset_builder.py normalizes the blend weights, derives the sizes, and
    # BlendedDataset normalizes the (already normalized) weights once more.
    weights = normalize(floats(args.weights))
    target = size_per_dataset(weights, args.size)
    build = size_per_dataset(weights, args.size, args.surplus)
    blend_weights = normalize(weights)
    dataset_index, dataset_sample_index = build_blending_indices(blend_weights, sum(target))
    numpy.save(os.path.join(args.out, "weights.npy"), numpy.array(blend_weights, numpy.float64))
    numpy.save(os.path.join(args.out, "target.npy"), numpy.array(target, numpy.int64))
    numpy.save(os.path.join(args.out, "build.npy"), numpy.array(build, numpy.int64))
    numpy.save(os.path.join(args.out, "dataset_index.npy"), dataset_index)
    numpy.save(os.path.join(args.out, "dataset_sample_index.npy"), dataset_sample_index)
    if args.exhaustive:
        dataset_index, dataset_sample_index = build_exhaustive_blending_indices(ints(args.exhaustive))
        numpy.save(os.path.join(args.out, "exhaustive_dataset_index.npy"), dataset_index)
        numpy.save(os.path.join(args.out, "exhaustive_dataset_sample_index.npy"),
                   dataset_sample_index)


# ---------------------------------------------------------------------------------------------
# Splits


def parse_and_normalize_split(split):
    # blended_megatron_dataset_config.py: parse_and_normalize_split
    split = list(map(float, re.findall(r"[.0-9]+", split)))
    split = split + [0.0 for _ in range(3 - len(split))]
    return normalize(split)


def split_matrix(vector):
    # blended_megatron_dataset_config.py: convert_split_vector_to_split_matrix (one vector)
    expansion = functools.reduce(lambda a, b: a + [a[len(a) - 1] + b], [[0], *vector])
    bookends = list(zip(expansion[:-1], expansion[1:]))
    return [None if end <= begin else (begin, end) for begin, end in bookends]


def split_bounds(split, num_elements):
    # blended_megatron_dataset_builder.py: _build_megatron_dataset_splits.  A split that is None
    # (no share) is written as the empty range at the previous split's end.
    bounds = [0]
    for bookend in split_matrix(parse_and_normalize_split(split)):
        if bookend is None:
            bounds.append(bounds[-1])
            continue
        beg = int(round(bookend[0] * float(num_elements)))
        end = int(round(bookend[1] * float(num_elements)))
        assert beg == bounds[-1]
        bounds.append(end)
    return bounds


def run_split(args):
    rows = [split_bounds(args.split, n) for n in ints(args.counts)]
    numpy.save(args.out, numpy.array(rows, numpy.int64))


# ---------------------------------------------------------------------------------------------
# Batch-size ramp-up (megatron/core/num_microbatches_calculator.py,
# RampupBatchsizeNumMicroBatchesCalculator) and megatron/training/training.py update_train_iters


class Rampup:
    def __init__(self, start, increment, samples, global_batch_size):
        self.start, self.increment, self.samples = start, increment, samples
        self.global_batch_size = global_batch_size
        diff = global_batch_size - start
        assert diff >= 0 and diff % increment == 0
        self.rampup_samples_per_increment = samples / (diff // increment)

    def batch_size(self, consumed_samples):
        if consumed_samples > self.samples:
            return self.global_batch_size
        steps = int(consumed_samples / self.rampup_samples_per_increment)
        return self.start + steps * self.increment


def train_iters(ramp, train_samples):
    # training.py: update_train_iters, the ramp-up branch
    iterations = 0
    consumed = 0
    while consumed <= ramp.samples and consumed <= train_samples:
        consumed += ramp.batch_size(consumed)
        iterations += 1
    if train_samples > consumed:
        iterations += (train_samples - consumed) // ramp.global_batch_size
    return iterations


def run_ramp(args):
    start, increment, samples = ints(args.rampup)
    ramp = Rampup(start, increment, samples, args.global_batch_size)
    iters = train_iters(ramp, args.train_samples)
    # training.py train(): update_num_microbatches(consumed_train_samples) before every step, then
    # consumed_train_samples += the step's batch.
    sizes, consumed = [], 0
    for _ in range(iters):
        sizes.append(ramp.batch_size(consumed))
        consumed += sizes[-1]
    numpy.save(args.out, numpy.array([iters] + sizes, numpy.int64))


# ---------------------------------------------------------------------------------------------
# blend_per_split (blended_megatron_dataset_builder.py: _build_blended_dataset_splits, the "each
# split comes from a separate distribution" branch; gpt_dataset.py:
# _query_document_sample_shuffle_indices; indexed_dataset.py: the .idx layout)

DTYPES = {1: numpy.uint8, 2: numpy.int8, 3: numpy.int16, 4: numpy.int32, 5: numpy.int64,
          6: numpy.float64, 7: numpy.float32, 8: numpy.uint16}


class IndexedDataset:
    """indexed_dataset.py's _IndexReader and .bin layout: header, version, dtype code, sequence
    and document counts, sequence lengths (int32), sequence pointers (int64, in bytes)."""

    def __init__(self, prefix):
        with open(prefix + ".idx", "rb") as f:
            assert f.read(9) == b"MMIDIDX\x00\x00"
            assert numpy.frombuffer(f.read(8), "<u8")[0] == 1
            self.dtype = DTYPES[f.read(1)[0]]
            count = int(numpy.frombuffer(f.read(8), "<u8")[0])
            f.read(8)  # document count
            self.lengths = numpy.frombuffer(f.read(4 * count), "<i4").astype(numpy.int32)
            self.pointers = numpy.frombuffer(f.read(8 * count), "<i8")
        self.bin = numpy.fromfile(prefix + ".bin", dtype=numpy.uint8)

    def get(self, i, offset=0, length=None):
        if length is None:
            length = int(self.lengths[i]) - offset
        size = numpy.dtype(self.dtype).itemsize
        begin = int(self.pointers[i]) + offset * size
        return numpy.frombuffer(self.bin[begin:begin + length * size].tobytes(), self.dtype)


class GPTDataset:
    def __init__(self, prefix, split_range, num_samples, split, args):
        # _build_megatron_dataset_splits: documents [round(b * n), round(e * n)) of the dataset.
        self.data = IndexedDataset(prefix)
        n = len(self.data.lengths)
        documents = numpy.arange(int(round(split_range[0] * float(n))),
                                 int(round(split_range[1] * float(n))), dtype=numpy.int32)
        # GPTDataset: only the validation split may keep its last partial sample.
        drop_last = 1 if split != 1 else args.drop_last
        self.add_extra = args.add_extra
        self.seq_length = args.seq_length
        self.doc, self.sample, self.shuffle, _, _ = build_gpt_indices(
            self.data.lengths, documents, num_samples, args.seq_length, args.seed, args.add_extra,
            drop_last)

    def __len__(self):
        return self.sample.shape[0] - 1

    def __getitem__(self, idx):
        # _query_document_sample_shuffle_indices; the pad token is -1 here.
        idx = self.shuffle[idx]
        beg, beg_offset = (int(x) for x in self.sample[idx])
        end, end_offset = (int(x) for x in self.sample[idx + 1])
        if beg == end:
            parts = [self.data.get(self.doc[beg], beg_offset,
                                   end_offset - beg_offset + self.add_extra)]
        else:
            parts = []
            for i in range(beg, end + 1):
                offset = 0 if i > beg else beg_offset
                length = None if i < end else end_offset + self.add_extra
                parts.append(self.data.get(self.doc[i], offset, length))
        tokens = numpy.concatenate(parts).astype(numpy.int64)
        pad = self.seq_length + self.add_extra - len(tokens)
        return numpy.concatenate((tokens, numpy.full(pad, -1, numpy.int64)))


def get_blend_from_list(blend):
    # utils.py: get_blend_from_list (weights and prefixes alternate, or prefixes alone)
    if blend is None:
        return None
    if len(blend) % 2 == 1:
        return blend, None
    weights = []
    for text in blend[0::2]:
        try:
            weights.append(float(text))
        except ValueError:
            return blend, None
    return [p.strip() for p in blend[1::2]], weights


def run_persplit(args):
    blends = [get_blend_from_list(None if b is None else b.split())
              for b in (args.train, args.valid, args.test)]
    sizes = ints(args.split_sizes)
    for i, name in enumerate(("train", "valid", "test")):
        blend = blends[i]
        if blend is None:
            continue
        prefixes, weights = blend
        # Every dataset of the split is read whole: split_spoof[i] = (0.0, 1.0).
        whole = (0.0, 1.0)
        if len(prefixes) == 1:
            # A lone prefix is the split's dataset, sized by the split, its weight unused.
            dataset = GPTDataset(prefixes[0], whole, sizes[i], i, args)
            samples = [dataset[k] for k in range(sizes[i])]
            dataset_index = numpy.zeros(sizes[i], numpy.int16)
        else:
            assert weights is not None, "hibari needs weights for 2 or more datasets"
            weights = normalize(weights)
            target = size_per_dataset(weights, sizes[i])
            build = size_per_dataset(weights, sizes[i], args.surplus)
            datasets = [GPTDataset(p, whole, build[d], i, args) for d, p in enumerate(prefixes)]
            # BlendedDataset: normalizes the weights once more, size = sum(target).
            dataset_index, dataset_sample_index = build_blending_indices(normalize(weights),
                                                                         sum(target))
            samples = [datasets[d][k] for d, k in zip(dataset_index, dataset_sample_index)]
        numpy.save(os.path.join(args.out, f"{name}_samples.npy"), numpy.stack(samples))
        numpy.save(os.path.join(args.out, f"{name}_dataset_index.npy"), dataset_index)


def run_resave(args):
    x = numpy.load(args.input, allow_pickle=False)
    numpy.save(args.out, x)


MODES = {"rng": run_rng, "gpt": run_gpt, "blend": run_blend, "split": run_split, "ramp": run_ramp,
         "persplit": run_persplit, "resave": run_resave}


def run_batch(args):
    parser = make_parser()
    with open(args.input) as lines:
        for line in lines:
            if line.strip():
                sub = parser.parse_args(shlex.split(line))
                MODES[sub.mode](sub)


def make_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=[*MODES, "batch"])
    parser.add_argument("--out")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--maxes", default="1")
    parser.add_argument("--sizes", default="")
    parser.add_argument("--lengths")
    parser.add_argument("--documents")
    parser.add_argument("--num-samples", type=int, default=-1)
    parser.add_argument("--seq-length", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--add-extra", type=int, default=1)
    parser.add_argument("--drop-last", type=int, default=1)
    parser.add_argument("--weights", default="")
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--surplus", type=float, default=0.005)
    parser.add_argument("--exhaustive", default="")
    parser.add_argument("--input")
    parser.add_argument("--split", default="969,30,1")
    parser.add_argument("--counts", default="")
    parser.add_argument("--rampup", default="")
    parser.add_argument("--global-batch-size", type=int, default=0)
    parser.add_argument("--train-samples", type=int, default=0)
    parser.add_argument("--train", help="persplit: Megatron's --train-data-path, one string")
    parser.add_argument("--valid", help="persplit: --valid-data-path")
    parser.add_argument("--test", help="persplit: --test-data-path")
    parser.add_argument("--split-sizes", default="", help="persplit: train,valid,test samples")
    return parser


def main():
    args = make_parser().parse_args()
    if args.mode == "batch":
        run_batch(args)
    else:
        MODES[args.mode](args)


if __name__ == "__main__":
    main()
