#!/usr/bin/env python3
"""fuzz/check_registry.py SOURCE_DIR — fails when a parser has no fuzz target.

Finds the entry points that read outside input in the library headers (by name: load_*, read_*,
parse_*, open_*, *_read, *_open, *_from_json; static open*() members; constructors taking a path) and
checks each against fuzz/parsers.txt: listed with a target whose fuzz/<target>_fuzz.cpp calls it,
or listed with "-" and a reason.  Stale lines (an entry point no longer declared) fail too, so the
list stays true."""
import pathlib
import re
import sys

LAYERS = ["core", "kernels", "parallel", "checkpoint", "model", "optim", "data", "infer", "eval",
          "train", "cli"]
NAME = r"((?:load|read|parse|open)_[a-z0-9_]+|[a-z0-9_]+_(?:read|open|from_json))"
# A declaration at namespace level: a return type at column 0, or the name alone on a line after
# the return type.  Calls inside inline bodies are indented and do not match.
FUNCTION = re.compile(r"^(?:[A-Za-z][\w:<>,*& ]*[ *&])?" + NAME + r"\(")
STATIC_OPEN = re.compile(r"^\s+static\s+(\w+)\s+((?:open|load|read|parse)\w*)\(")
PATH_CONSTRUCTOR = re.compile(r"^\s+(?:explicit\s+)?([A-Z]\w*)\((?:const\s+)?std::string&?\s+\w+")


def declared(root):
    found = {}
    for layer in LAYERS:
        for header in sorted((root / layer).rglob("*.h")):
            for number, line in enumerate(header.read_text(errors="replace").splitlines(), 1):
                if line.lstrip().startswith("//"):
                    continue
                names = []
                m = FUNCTION.match(line)
                if m and not line.startswith(("return", "using", "#")):
                    names.append(m.group(1))
                m = STATIC_OPEN.match(line)
                if m:
                    names.append(m.group(1) + "::" + m.group(2))
                m = PATH_CONSTRUCTOR.match(line)
                if m:
                    names.append(m.group(1) + "::" + m.group(1))
                for name in names:
                    found.setdefault(name, f"{header.relative_to(root)}:{number}")
    return found


def main():
    root = pathlib.Path(sys.argv[1]).resolve()
    registry = {}
    for line in (root / "fuzz/parsers.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            fields = line.split()
            registry[fields[0]] = fields[1:]
    problems = []
    entry_points = declared(root)
    for name, where in sorted(entry_points.items()):
        if name not in registry:
            problems.append(f"{where}: {name} reads outside input but has no line in "
                            "fuzz/parsers.txt: write fuzz/<target>_fuzz.cpp for it and list it")
    headers = "\n".join(h.read_text(errors="replace") for layer in LAYERS
                         for h in (root / layer).rglob("*.h"))
    for name, fields in sorted(registry.items()):
        # Listed names outside the patterns (checkpoint_restore) count while a header declares them.
        if name not in entry_points and not re.search(r"\b" + name.split("::")[-1] + r"\(",
                                                      headers):
            problems.append(f"fuzz/parsers.txt: {name} is no longer declared in a header")
            continue
        if not fields:
            problems.append(f"fuzz/parsers.txt: {name} has neither a target nor \"-\" and a reason")
        elif fields[0] == "-":
            if len(fields) < 2:
                problems.append(f"fuzz/parsers.txt: {name} has no target and no reason")
        else:
            target = root / "fuzz" / f"{fields[0]}_fuzz.cpp"
            # A member is called by its last part (Class::open -> open, a constructor by its
            # class name).
            call = name.split("::")[-1]
            if not target.exists():
                problems.append(f"fuzz/parsers.txt: {name}: no {target.relative_to(root)}")
            elif not re.search(r"\b" + re.escape(call) + r"\b", target.read_text()):
                problems.append(f"{target.relative_to(root)} does not call {name}")
    for p in problems:
        print("fuzz registry:", p, file=sys.stderr)
    print(f"fuzz registry: {len(entry_points)} entry points, "
          f"{sum(1 for f in registry.values() if f and f[0] != '-')} with a target, "
          f"{len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
