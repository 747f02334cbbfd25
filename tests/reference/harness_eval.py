#!/usr/bin/env python3
"""The JP LM Evaluation Harness's document order, few-shot draws and rolling windows, for hibari's
eval tests to compare with.  The functions below are the harness's own logic
(Stability-AI/lm-evaluation-harness, branch jp-stable, commit
effdbeaf742e74ea1787871e99272c12146ba346: lm_eval/evaluator.py evaluate(), lm_eval/base.py
Task.fewshot_context / fewshot_examples / _stratified_fewshot_examples, lm_eval/utils.py
get_rolling_token_windows / make_disjoint_window), restated over plain lists and driven by
CPython's own random.Random, so the outputs are what the harness computes.

  harness_eval.py windows N MAX_LEN
      Prints [[context, predicted], ...] for the tokens 0..N-1 with prefix token -1
      (context_len 1), after make_disjoint_window.

  harness_eval.py fewshot --valid FILE --train FILE --k K [--limit L] [--seed 42] [--stratified]
      FILE: JSON Lines with a "label" field.  Prints {"order": [...], "shots": [[...], ...]}: the
      1-based lines of the evaluated documents in the harness's order (after --limit) and, per
      document, the 1-based train lines of its shots in the harness's order.  Stratified draws use
      the label as doc_to_target (a bijection of JNLI's targets, so the same strata in the same
      first-seen order).

Run with /usr/bin/python3 (no packages needed).
"""

import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from python_random import fewshot_examples  # noqa: E402  (the harness's draw, restated once)


def get_rolling_token_windows(token_list, prefix_token, max_seq_len, context_len):
    assert 1 <= context_len <= max_seq_len
    if not token_list:
        return
    pred_len = max_seq_len - context_len + 1
    predicted = 0
    first_seq_len = min(max_seq_len, len(token_list))
    yield ([prefix_token] + token_list[: first_seq_len - 1], token_list[:first_seq_len])
    predicted += first_seq_len
    while predicted < len(token_list):
        window_pred_len = min(len(token_list) - predicted, pred_len)
        window_end = predicted + window_pred_len
        yield (
            token_list[window_end - max_seq_len - 1 : window_end - 1],
            token_list[window_end - window_pred_len : window_end],
        )
        predicted += window_pred_len


def make_disjoint_window(pair):
    a, b = pair
    return a[: len(a) - (len(b) - 1)], b


def read_lines(path):
    docs = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                d = json.loads(line)
                d["_line"] = i
                docs.append(d)
    return docs


def cmd_fewshot(args):
    valid = read_lines(args.valid)
    train = read_lines(args.train)
    # evaluator.evaluate: one generator per task shuffles the docs; limit keeps the first N.
    task_docs = list(valid)
    rnd = random.Random()
    rnd.seed(args.seed)
    rnd.shuffle(task_docs)
    if args.limit:
        task_docs = task_docs[: args.limit]
    shots = []
    for _ in task_docs:
        ex = fewshot_examples(train, args.k, rnd, args.stratified, lambda d: d["label"])
        shots.append([d["_line"] for d in ex])
    json.dump({"order": [d["_line"] for d in task_docs], "shots": shots}, sys.stdout)


def cmd_windows(args):
    tokens = list(range(args.n))
    out = [
        list(map(list, make_disjoint_window(w)))
        for w in get_rolling_token_windows(tokens, -1, args.max_len, 1)
    ]
    json.dump(out, sys.stdout)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("windows")
    w.add_argument("n", type=int)
    w.add_argument("max_len", type=int)
    f = sub.add_parser("fewshot")
    f.add_argument("--valid", required=True)
    f.add_argument("--train", required=True)
    f.add_argument("--k", type=int, required=True)
    f.add_argument("--limit", type=int, default=0)
    f.add_argument("--seed", type=int, default=42)
    f.add_argument("--stratified", action="store_true")
    args = p.parse_args()
    {"windows": cmd_windows, "fewshot": cmd_fewshot}[args.cmd](args)


if __name__ == "__main__":
    main()
