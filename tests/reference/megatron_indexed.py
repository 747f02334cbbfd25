#!/usr/bin/env python3
"""An independent MMIDIDX (Megatron-LM indexed dataset) writer and reader, numpy + struct only.

It follows megatron/core/datasets/indexed_dataset.py: IndexedDatasetBuilder (add_document,
end_document, finalize), _IndexWriter (struct.pack("<Q", 1) ...) and _IndexReader, so that
hibari's bytes can be compared with the bytes Megatron writes without installing Megatron.

Usage:
  megatron_indexed.py write PREFIX DTYPE SPEC [--multimodal]
      SPEC is a text file, one document per line; sequences within a line are separated by "|",
      token ids by spaces ("1 2 3 | 4 5" is a document of two sequences, an empty line a document
      of one empty sequence, "-" a document of no sequences).  DTYPE is a numpy name: uint8 int8
      int16 int32 int64 uint16.
  megatron_indexed.py read PREFIX [--multimodal]
      Prints "dtype NAME", "doc_indices ...", then "seq I: TOKENS" per sequence.
"""

import struct
import sys

import numpy

_INDEX_HEADER = b"MMIDIDX\x00\x00"

# DType enum of indexed_dataset.py: name -> code.
_CODES = {"uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "float64": 6, "float32": 7,
          "uint16": 8}


class _IndexWriter:
    def __init__(self, idx_path, dtype):
        self.idx_path = idx_path
        self.dtype = dtype

    def __enter__(self):
        self.idx_writer = open(self.idx_path, "wb")
        # fixed, vestigial practice
        self.idx_writer.write(_INDEX_HEADER)
        # fixed, vestigial practice
        self.idx_writer.write(struct.pack("<Q", 1))
        # the numeric code for the dtype
        self.idx_writer.write(struct.pack("<B", _CODES[numpy.dtype(self.dtype).name]))
        return self

    def __exit__(self, *exc):
        self.idx_writer.close()
        return None

    def write(self, sequence_lengths, sequence_modes, document_indices):
        sequence_pointers = self._sequence_pointers(sequence_lengths)
        self.idx_writer.write(struct.pack("<Q", len(sequence_lengths)))
        self.idx_writer.write(struct.pack("<Q", len(document_indices)))
        self.idx_writer.write(numpy.array(sequence_lengths, dtype=numpy.int32).tobytes(order="C"))
        self.idx_writer.write(numpy.array(sequence_pointers, dtype=numpy.int64).tobytes(order="C"))
        self.idx_writer.write(numpy.array(document_indices, dtype=numpy.int64).tobytes(order="C"))
        if sequence_modes is not None:
            self.idx_writer.write(numpy.array(sequence_modes, dtype=numpy.int8).tobytes(order="C"))

    def _sequence_pointers(self, sequence_lengths):
        itemsize = numpy.int64(numpy.dtype(self.dtype).itemsize)
        curr_ptr = numpy.int64(0)
        list_ptr = []
        for length in sequence_lengths:
            list_ptr.append(curr_ptr.item())
            curr_ptr += length * itemsize
        return list_ptr


class IndexedDatasetBuilder:
    def __init__(self, bin_path, dtype, multimodal=False):
        self.data_file = open(bin_path, "wb")
        self.dtype = dtype
        self.multimodal = multimodal
        self.sequence_lengths = []
        self.document_indices = [0]
        self.sequence_modes = [] if multimodal else None

    def add_document(self, tokens, lengths, modes=None):
        np_array = numpy.array(tokens, dtype=self.dtype)
        self.data_file.write(np_array.tobytes(order="C"))
        self.sequence_lengths.extend(lengths)
        self.document_indices.append(len(self.sequence_lengths))
        if self.multimodal:
            self.sequence_modes.extend(modes if modes is not None else [0] * len(lengths))

    def finalize(self, idx_path):
        self.data_file.close()
        with _IndexWriter(idx_path, self.dtype) as writer:
            writer.write(self.sequence_lengths, self.sequence_modes, self.document_indices)


def read(prefix, multimodal):
    """_IndexReader + IndexedDataset.get, with Megatron's own asserts."""
    idx_path = prefix + ".idx"
    with open(idx_path, "rb") as stream:
        header = stream.read(9)
        assert header == _INDEX_HEADER, f"bad header, cannot read: {idx_path}"
        version = struct.unpack("<Q", stream.read(8))[0]
        assert version == 1, f"bad version, cannot read: {idx_path}"
        code = struct.unpack("<B", stream.read(1))[0]
        dtype = numpy.dtype({v: k for k, v in _CODES.items()}[code])
        sequence_count = struct.unpack("<Q", stream.read(8))[0]
        document_count = struct.unpack("<Q", stream.read(8))[0]
        offset = stream.tell()
    buf = numpy.memmap(idx_path, mode="r", order="C")
    lengths = numpy.frombuffer(buf, dtype=numpy.int32, count=sequence_count, offset=offset)
    pointers = numpy.frombuffer(buf, dtype=numpy.int64, count=sequence_count,
                                offset=offset + lengths.nbytes)
    documents = numpy.frombuffer(buf, dtype=numpy.int64, count=document_count,
                                 offset=offset + lengths.nbytes + pointers.nbytes)
    assert lengths.shape[0] == documents[-1]
    if multimodal:
        numpy.frombuffer(buf, dtype=numpy.int8, count=sequence_count,
                         offset=offset + lengths.nbytes + pointers.nbytes + documents.nbytes)
    data = numpy.memmap(prefix + ".bin", mode="r", order="C")
    out = [f"dtype {dtype.name}", "doc_indices " + " ".join(str(int(d)) for d in documents)]
    for i in range(sequence_count):
        seq = numpy.frombuffer(data, dtype=dtype, count=int(lengths[i]), offset=int(pointers[i]))
        out.append(f"seq {i}: " + " ".join(str(int(t)) for t in seq))
    print("\n".join(out))


def main(argv):
    multimodal = "--multimodal" in argv
    argv = [a for a in argv if a != "--multimodal"]
    if len(argv) == 5 and argv[1] == "write":
        prefix, dtype, spec = argv[2], numpy.dtype(argv[3]).type, argv[4]
        builder = IndexedDatasetBuilder(prefix + ".bin", dtype, multimodal)
        with open(spec) as f:
            for line in f.read().split("\n")[:-1]:
                sequences = [] if line == "-" else [s.split() for s in line.split("|")]
                tokens = [int(t) for s in sequences for t in s]
                # preprocess_data.py's call: the document's tokens and its sentence lengths.
                builder.add_document(tokens, [len(s) for s in sequences])
        builder.finalize(prefix + ".idx")
    elif len(argv) == 3 and argv[1] == "read":
        read(argv[2], multimodal)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
