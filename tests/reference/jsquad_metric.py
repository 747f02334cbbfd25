#!/usr/bin/python3
"""Writes tests/fixtures/eval/jsquad_metric.json: JSQuAD exact_match / F1 from the real tools.

The scoring functions below are lm_eval/jasquad/evaluate.py of the JP LM Evaluation Harness
(Stability-AI/lm-evaluation-harness, jp-stable, commit effdbeaf742e74ea1787871e99272c12146ba346),
copied as they are, except for the tokenizer: fugashi's Tagger("-Owakati") with unidic-lite becomes
Debian's python3-mecab on Debian's unidic-mecab -- the same MeCab library and arguments that
eval/jsquad_metric.cpp opens.  emoji is Debian's python3-emoji (2.2.0).

neologdn has no Debian package and there is no PyPI here, so build the real one (v0.5.6) from the
Cython output its repository commits, then point NEOLOGDN_DIR at it:

  git clone https://github.com/ikegami-yukino/neologdn && cd neologdn && git checkout v0.5.6
  g++ -O1 -shared -fPIC $(python3-config --includes) neologdn.cpp \
      -o neologdn$(python3-config --extension-suffix)
  NEOLOGDN_DIR=$PWD /usr/bin/python3 tests/reference/jsquad_metric.py \
      > tests/fixtures/eval/jsquad_metric.json
"""
import json
import os
import random
import re
import string
import sys
from collections import Counter

sys.path.insert(0, os.environ.get("NEOLOGDN_DIR", "."))
import emoji  # noqa: E402
import MeCab  # noqa: E402
import neologdn  # noqa: E402

assert neologdn.__version__ == "0.5.6", neologdn.__version__

TAGGER = MeCab.Tagger("-Owakati -r /dev/null -d /var/lib/mecab/dic/unidic")


# ---- lm_eval/jasquad/evaluate.py (tagger swapped, see above) ----
def remove_punc(tokens):
    exclude = (
        "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."
    )
    exclude += string.punctuation
    exclude = [*exclude]
    return [tok for tok in tokens if tok not in exclude]


def normalize_answer(s):
    def white_space_fix(text):
        return " ".join(text.split())

    def remove_emoji(text):
        text = "".join(["" if emoji.is_emoji(c) else c for c in text])
        emoji_pattern = re.compile(
            "["
            "\U0001F600-\U0001F64F"  # emoticons
            "\U0001F300-\U0001F5FF"  # symbols & pictographs
            "\U0001F680-\U0001F6FF"  # transport & map symbols
            "\U0001F1E0-\U0001F1FF"  # flags (iOS)
            "\U00002702-\U000027B0"
            "]+",
            flags=re.UNICODE,
        )
        return emoji_pattern.sub(r"", text)

    return white_space_fix((neologdn.normalize(remove_emoji(s))))


def f1_score(prediction, ground_truth):
    tagger = TAGGER
    prediction_tokens = remove_punc(tagger.parse(normalize_answer(prediction)).split())
    ground_truth_tokens = remove_punc(
        tagger.parse(normalize_answer(ground_truth)).split()
    )
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


def evaluate(dataset, predictions):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                ground_truths = [x["text"] for x in qa["answers"]]
                prediction = predictions[qa["id"]]
                exact_match += metric_max_over_ground_truths(
                    exact_match_score, prediction, ground_truths
                )
                f1 += metric_max_over_ground_truths(f1_score, prediction, ground_truths)
    exact_match = 100.0 * exact_match / total
    f1 = 100.0 * f1 / total
    return {"exact_match": exact_match, "f1": f1}


# ---- the cases ----
CASES = [
    ("東京", ["東京"]),
    ("東京都です。", ["東京都"]),  # trailing text
    ("「東京」", ["東京"]),  # brackets are punctuation tokens
    ("東京。", ["東京"]),
    ("１９４５年", ["1945年"]),  # full-width digits
    ("２０２３年１２月", ["2023年12月"]),
    ("ﾃﾚﾋﾞ", ["テレビ"]),  # half-width katakana with a voicing mark
    ("ｶﾞｲﾄﾞﾌﾞｯｸ", ["ガイドブック"]),
    ("ﾊﾟﾝ", ["パン"]),
    ("ＮＨＫ", ["NHK"]),  # full-width latin
    ("ＵＳＡ　Ｔｏｄａｙ", ["USA Today"]),
    ("nhk", ["NHK"]),  # no case folding
    ("東京 タワー", ["東京タワー"]),  # ASCII space between CJK characters
    ("東京　タワー", ["東京タワー"]),  # U+3000
    ("　東京　", ["東京"]),
    ("東京\u00a0タワー", ["東京タワー"]),  # NBSP: not a neologdn space, but white_space_fix splits
    ("東京\tタワー", ["東京 タワー"]),
    ("東京\n", ["東京"]),
    ("New York", ["ニューヨーク", "New York"]),  # multiple golds
    ("New  York", ["New York"]),
    ("iPhone 15 を", ["iPhone 15を"]),
    ("A B C", ["ABC"]),
    ("東京😀", ["東京"]),  # emoji
    ("😀", [""]),
    ("✂東京", ["東京"]),
    ("東京❤️", ["東京"]),  # U+2764 goes, the variation selector U+FE0F stays
    ("👨‍👩‍👧東京", ["東京"]),  # the ZWJs stay
    ("🇯🇵日本", ["日本"]),  # regional indicators
    ("Google™", ["Google"]),
    ("©2020", ["2020"]),
    ("東京⁉", ["東京"]),
    ("#1", ["1"]),
    ("コンピューター", ["コンピュータ"]),  # katakana with chōon
    ("スーパ―", ["スーパー"]),  # U+2015 horizontal bar is a choonpu
    ("スーパーーーー", ["スーパー"]),
    ("ｺｰﾋｰ", ["コーヒー"]),
    ("Ｗｉ－Ｆｉ", ["Wi-Fi"]),  # full-width hyphen-minus becomes ー
    ("A−B", ["A-B"]),
    ("10〜20", ["1020"]),  # tildes go
    ("1467～1487年", ["1467〜1487年"]),
    ("", ["東京"]),  # empty prediction
    ("", [""]),  # empty both: EM 1, F1 0
    ("   ", [""]),
    ("。", ["。"]),  # punctuation only: EM 1, F1 0
    ("!!!", ["!"]),
    ("大阪", ["東京", "大阪"]),
    ("京都", ["東京", "大阪"]),
    ("東京", ["東京", "東京"]),
    ("京都大学の教授", ["京都大学"]),  # partial overlap
    ("東京東京", ["東京"]),  # repeated tokens
    ("東京と大阪と東京", ["東京と東京", "大阪"]),
    ("第２次世界大戦", ["第二次世界大戦"]),
    ("1,000円", ["１，０００円"]),
    ("＄100", ["$100"]),
    ("“ABC”", ['"ABC"']),
    ("（株）トヨタ", ["トヨタ"]),
    ("『吾輩は猫である』", ["吾輩は猫である"]),
    ("ジョン・レノン", ["ジョンレノン", "レノン"]),
    ("約3万人", ["3万人"]),
    ("……東京", ["東京"]),
    ("e.g. 東京", ["東京"]),
    ("1945年\n\n質問: 次の文章を読んで", ["1945年"]),
    ("徳川家康が江戸幕府を開いた。", ["徳川家康"]),
    ("平安時代の中期に書かれた", ["平安時代中期", "平安時代"]),
    ("ラグビーワールドカップ2019", ["ラグビーワールドカップ２０１９"]),
    ("か゛", ["が"]),  # ゛ becomes ﾞ, which voices katakana and う only
    ("う゛", ["ゔ"]),
]

# Strings for normalize_answer alone: the cases' strings, then random ones from the characters
# each step treats specially.
ALPHABET = (
    list(" \u3000\t\n\u00a0\u2003*-~aZ09é")
    + list("あかうはアカウハヒフ東京ｱｶｳﾊﾋﾌﾞﾟｰ゛゜")
    + list("˗‐−–﹣－ｰ—―─━ー∼〜〰～")
    + list("ＡＺａ０９！＂＇（）＼¥“”‘’｡､･｢｣")
    + ["😀", "🍣", "✂", "❤", "\ufe0f", "\u200d", "🇯", "©", "™", "⁉", "🫠"]
)


def random_strings(n, seed):
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12))) for _ in range(n)]


NEOLOGDN_OPTIONS = [
    {"repeat": 0, "remove_space": False, "tilde": "remove"},
    {"repeat": 0, "remove_space": True, "tilde": "ignore"},
    {"repeat": 0, "remove_space": True, "tilde": "normalize"},
    {"repeat": 0, "remove_space": True, "tilde": "normalize_zenkaku"},
    {"repeat": 1, "remove_space": True, "tilde": "remove"},
    {"repeat": 2, "remove_space": True, "tilde": "remove"},
    {"repeat": 3, "remove_space": False, "tilde": "ignore"},
]


def main():
    cases = []
    for i, (prediction, golds) in enumerate(CASES):
        cases.append(
            {
                "id": f"q{i}",
                "prediction": prediction,
                "golds": golds,
                "prediction_normalized": normalize_answer(prediction),
                "prediction_tokens": TAGGER.parse(normalize_answer(prediction)).split(),
                "exact_match": int(
                    metric_max_over_ground_truths(exact_match_score, prediction, golds)
                ),
                "f1": float(metric_max_over_ground_truths(f1_score, prediction, golds)),
            }
        )
    dataset = [
        {
            "paragraphs": [
                {
                    "qas": [
                        {"id": c["id"], "answers": [{"text": g} for g in c["golds"]]}
                        for c in cases
                    ]
                }
            ]
        }
    ]
    aggregate = evaluate(dataset, {c["id"]: c["prediction"] for c in cases})

    strings = sorted({s for p, g in CASES for s in [p, *g]}) + random_strings(300, 1)
    normalized = [{"input": s, "output": normalize_answer(s)} for s in strings]

    rng = random.Random(2)
    neologdn_cases = []
    for s in random_strings(300, 3):
        options = rng.choice(NEOLOGDN_OPTIONS)
        neologdn_cases.append(
            {"input": s, **options, "output": neologdn.normalize(s, **options)}
        )

    json.dump(
        {
            "source": "tests/reference/jsquad_metric.py: JP harness jasquad/evaluate.py "
            f"(effdbeaf742e), neologdn {neologdn.__version__}, emoji {emoji.__version__}, "
            "MeCab -Owakati on /var/lib/mecab/dic/unidic",
            "cases": cases,
            "aggregate": aggregate,
            "normalize_answer": normalized,
            "neologdn": neologdn_cases,
        },
        sys.stdout,
        ensure_ascii=False,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
