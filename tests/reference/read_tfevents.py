#!/usr/bin/env python3
"""An independent TensorBoard event-file reader, standard library only (struct + a hand CRC32C).

Usage: read_tfevents.py EVENT_FILE

Checks the TFRecord framing (uint64 LE length, masked CRC32C of the length bytes, data, masked
CRC32C of the data) and that the first Event carries file_version "brain.Event:2", then prints one
line per scalar summary value: "tag step value" (value with %.9g, which round-trips a float32).
Any problem (CRC mismatch, truncated record, malformed protobuf) goes to stderr with exit status 1.
"""

import struct
import sys


def _make_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


class FormatError(Exception):
    pass


def read_varint(buf, pos):
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise FormatError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise FormatError("varint too long")


def parse_fields(buf):
    """Yields (field number, wire type, value) for every field of one protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise FormatError("field number 0")
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise FormatError("truncated 64-bit field")
            value = buf[pos:pos + 8]
            pos += 8
        elif wire == 2:
            n, pos = read_varint(buf, pos)
            if pos + n > len(buf):
                raise FormatError("truncated length-delimited field")
            value = buf[pos:pos + n]
            pos += n
        elif wire == 5:
            if pos + 4 > len(buf):
                raise FormatError("truncated 32-bit field")
            value = buf[pos:pos + 4]
            pos += 4
        else:
            raise FormatError("unsupported wire type %d" % wire)
        yield field, wire, value


def expect_wire(field, wire, want, what):
    if wire != want:
        raise FormatError("%s (field %d) has wire type %d, expected %d" % (what, field, wire, want))


def decode_event(data):
    event = {"wall_time": None, "step": 0, "file_version": None, "values": []}
    for field, wire, value in parse_fields(data):
        if field == 1:
            expect_wire(field, wire, 1, "Event.wall_time")
            event["wall_time"] = struct.unpack("<d", value)[0]
        elif field == 2:
            expect_wire(field, wire, 0, "Event.step")
            event["step"] = value - (1 << 64) if value >= (1 << 63) else value
        elif field == 3:
            expect_wire(field, wire, 2, "Event.file_version")
            event["file_version"] = value.decode("utf-8")
        elif field == 5:
            expect_wire(field, wire, 2, "Event.summary")
            for sfield, swire, svalue in parse_fields(value):
                if sfield != 1:
                    continue
                expect_wire(sfield, swire, 2, "Summary.value")
                tag, simple = None, None
                for vfield, vwire, vvalue in parse_fields(svalue):
                    if vfield == 1:
                        expect_wire(vfield, vwire, 2, "Value.tag")
                        tag = vvalue.decode("utf-8")
                    elif vfield == 2:
                        expect_wire(vfield, vwire, 5, "Value.simple_value")
                        simple = struct.unpack("<f", vvalue)[0]
                if tag is not None and simple is not None:
                    event["values"].append((tag, simple))
    return event


def read_records(blob):
    pos = 0
    index = 0
    while pos < len(blob):
        if pos + 12 > len(blob):
            raise FormatError("record %d: truncated header" % index)
        length_bytes = blob[pos:pos + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        (length_crc,) = struct.unpack("<I", blob[pos + 8:pos + 12])
        if masked_crc32c(length_bytes) != length_crc:
            raise FormatError("record %d at byte %d: CRC mismatch in the length" % (index, pos))
        pos += 12
        if pos + length + 4 > len(blob):
            raise FormatError("record %d: truncated data" % index)
        data = blob[pos:pos + length]
        (data_crc,) = struct.unpack("<I", blob[pos + length:pos + length + 4])
        if masked_crc32c(data) != data_crc:
            raise FormatError("record %d at byte %d: CRC mismatch in the data" % (index, pos - 12))
        pos += length + 4
        index += 1
        yield data


def main(argv):
    if len(argv) != 2:
        print("usage: read_tfevents.py EVENT_FILE", file=sys.stderr)
        return 2
    path = argv[1]
    try:
        with open(path, "rb") as f:
            blob = f.read()
        lines = []
        for i, data in enumerate(read_records(blob)):
            event = decode_event(data)
            if event["wall_time"] is None:
                raise FormatError("record %d: Event without wall_time" % i)
            if i == 0:
                if event["file_version"] != "brain.Event:2":
                    raise FormatError("record 0: file_version is %r, expected 'brain.Event:2'" %
                                      event["file_version"])
                continue
            for tag, value in event["values"]:
                lines.append("%s %d %.9g" % (tag, event["step"], value))
        if not blob:
            raise FormatError("empty file")
    except (OSError, FormatError, UnicodeDecodeError) as e:
        print("%s: %s" % (path, e), file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
