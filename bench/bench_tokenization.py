"""Speed and agreement of the Python and in-graph XLNet tokenizers on the shared corpora.

    python bench/bench_tokenization.py [--data_dir ../shared/data] [--spiece_model PATH]
                                       [--batch 1024] [--lower]

Prints, per corpus: lines, Python lines/s, in-graph (tf.function, batched) lines/s, and how
many lines get different ids. Remaining differences are exact score ties inside
SentencePiece's Viterbi search broken differently by tensorflow-text's bundled
SentencePiece (same pieces in another order, e.g. ``0 00`` vs ``00 0``); the script
checks and reports whether every difference is such a permutation.
"""
import argparse
import glob
import json
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from xlnet_tf.tokenization import Tokenizer, XLNetTokenizerLayer  # noqa: E402


def _lines(path):
    # errors="replace": two Gutenberg files hold a few Latin-1 lines.
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def corpora(data_dir):
    d = pathlib.Path(data_dir)
    squad = json.loads((d / "squad/dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    return {
        "wikitext2 valid+test": _lines(d / "pretrain_text/wikitext2_valid.tokens.txt")
        + _lines(d / "pretrain_text/wikitext2_test.tokens.txt"),
        "gutenberg (13 books)": [l for f in sorted(glob.glob(str(d / "pretrain_text/gutenberg/*.txt")))
                                 for l in _lines(f)],
        "tinyshakespeare": _lines(d / "pretrain_text/tinyshakespeare.txt"),
        "squad dev contexts+questions": [p["context"] for a in squad for p in a["paragraphs"]]
        + [q["question"] for a in squad for p in a["paragraphs"] for q in p["qas"]],
        "imdb train sample": [l.split("\t", 2)[-1] for l in _lines(d / "imdb/train_sample.tsv")[1:]],
        "glue tsv lines": [l for f in sorted(glob.glob(str(d / "glue/*/*.tsv"))) for l in _lines(f)],
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared/data"))
    parser.add_argument("--spiece_model", default=str(REPO / "tests/fixtures/spiece_test.model"))
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--lower", action="store_true")
    args = parser.parse_args()

    tok = Tokenizer(args.spiece_model, lower=args.lower)
    layer = XLNetTokenizerLayer(args.spiece_model, lower=args.lower)
    fn = tf.function(layer.call, input_signature=[tf.TensorSpec([None], tf.string)])
    fn(tf.constant(["warm up"]))
    print(f"model {args.spiece_model} ({tok.vocab_size} pieces), lower={args.lower}, batch={args.batch}")
    print(f"{'corpus':30s} {'lines':>8s} {'py lines/s':>11s} {'tf lines/s':>11s} {'diff':>6s} {'ties':>6s}")
    tot_n = tot_diff = 0
    for name, lines in corpora(args.data_dir).items():
        t0 = time.perf_counter()
        py = [tok.encode_ids(l) for l in lines]
        t_py = time.perf_counter() - t0
        t0 = time.perf_counter()
        tf_ids = []
        for i in range(0, len(lines), args.batch):
            tf_ids.extend(fn(tf.constant(lines[i:i + args.batch])).to_list())
        t_tf = time.perf_counter() - t0
        diff = [(a, b) for a, b in zip(py, tf_ids) if a != b]
        ties = sum(1 for a, b in diff if sorted(a) == sorted(b))
        tot_n += len(lines)
        tot_diff += len(diff)
        print(f"{name:30s} {len(lines):8d} {len(lines) / t_py:11.0f} {len(lines) / t_tf:11.0f} "
              f"{len(diff):6d} {ties:6d}", flush=True)
    print(f"TOTAL {tot_n} lines, {tot_diff} with different ids "
          f"({100.0 * (tot_n - tot_diff) / tot_n:.4f}% identical)")


if __name__ == "__main__":
    main()
