"""Long-document classification speed on this CPU: truncation against Transformer-XL memory.

Real IMDB reviews (``--data_dir``: ``imdb/test_sample.tsv``, cleaned as the IMDB reader
cleans them) tokenized with ``--spiece_model`` and packed as run_classifier.py packs them,
then timed through ``XLNetClassifier`` (random weights, default a small shape: 4 layers,
d_model 256, 4 heads, d_inner 1024) in three modes:

  * ``truncate T``          one segment of --seq_len pieces (run_classifier's default);
  * ``memory T x S``        up to --max_segments segments of T carrying (S-1)*T of memory,
                            the head on the last segment (``--long_doc=memory``);
  * ``truncate S*T``        one segment of all S*T pieces (full attention, for reference).

For each: inference examples/s (forward, batch --batch) and training examples/s (forward +
backward + Adam, batch --train_batch), median of --runs calls after --warmup calls, and how
many reviews each mode cuts.  Accuracy is NOT measured here (training a model from scratch
per mode is too costly on this machine).

    python bench/bench_long_doc.py --data_dir DATA
    python bench/bench_long_doc.py --data_dir DATA --seq_len 128 --max_segments 4 --json out.json
"""
import argparse
import csv
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # the repository root, for xlnet_tf
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import workloads  # noqa: E402
from workloads import summarize, time_calls  # noqa: E402

SPM = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "spiece_test.model")


def read_reviews(data_dir, limit):
    from xlnet_tf.tokenization.text import clean_text
    path = os.path.join(data_dir, "imdb", "test_sample.tsv")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(rows))[:limit]
    return [clean_text(rows[i]["sentence"], "imdb") for i in order], \
        [int(rows[i]["label"]) for i in order]


def packed(id_lists, total):
    from xlnet_tf.classification.features import pack_ids
    rows = [pack_ids(ids, None, total) for ids in id_lists]
    return {"input_ids": np.array([r[0] for r in rows], np.int32),
            "input_mask": np.array([r[1] for r in rows], np.float32),
            "seg_ids": np.array([r[2] for r in rows], np.int32)}


def bench_mode(name, model, feats, labels, args):
    import keras
    import tensorflow as tf
    from xlnet_tf.classification.task import classification_loss
    n = len(labels)
    infer_batch = {k: tf.constant(v[:args.batch]) for k, v in feats.items()}
    train_batch = {k: tf.constant(v[:args.train_batch]) for k, v in feats.items()}
    train_labels = tf.constant(labels[:args.train_batch])
    optimizer = keras.optimizers.Adam(1e-5)

    @tf.function
    def forward(batch):
        return model(batch, training=False)["logits"]

    @tf.function
    def step(batch, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(classification_loss(model(batch, training=True)["logits"], y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    infer = summarize(time_calls(lambda: forward(infer_batch).numpy(), args.warmup, args.runs,
                                 tag=f"{name} infer"))
    train = summarize(time_calls(lambda: step(train_batch, train_labels).numpy(), args.warmup,
                                 args.runs, tag=f"{name} train"))
    return {"mode": name, "positions": int(feats["input_ids"].shape[1]),
            "infer_examples_per_s": args.batch / infer["median_s"], "infer": infer,
            "train_examples_per_s": args.train_batch / train["median_s"], "train": train,
            "examples": n}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_dir", required=True, help="the shared data folder (imdb/ inside)")
    p.add_argument("--spiece_model", default=SPM)
    p.add_argument("--seq_len", type=int, default=128)
    p.add_argument("--max_segments", type=int, default=4)
    p.add_argument("--n_layer", type=int, default=4)
    p.add_argument("--d_model", type=int, default=256)
    p.add_argument("--n_head", type=int, default=4)
    p.add_argument("--d_inner", type=int, default=1024)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--train_batch", type=int, default=8)
    p.add_argument("--reviews", type=int, default=64)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if not os.path.isfile(os.path.join(args.data_dir, "imdb", "test_sample.tsv")):
        sys.exit(f"--data_dir {args.data_dir!r} has no imdb/test_sample.tsv")
    if args.seq_len < 3 or args.max_segments < 1:
        sys.exit("--seq_len must be >= 3 and --max_segments >= 1")

    import tensorflow as tf
    from xlnet_tf.classification import XLNetClassifier
    from xlnet_tf.modeling.config import XLNetConfig
    from xlnet_tf.tokenization.tokenizer import Tokenizer

    T, S = args.seq_len, args.max_segments
    texts, labels = read_reviews(args.data_dir, max(args.reviews, args.batch, args.train_batch))
    tok = Tokenizer(args.spiece_model)
    ids = [tok.encode_ids(t) for t in texts]
    pieces = np.array([len(x) + 2 for x in ids])
    config = XLNetConfig(n_layer=args.n_layer, d_model=args.d_model, n_head=args.n_head,
                         d_head=args.d_model // args.n_head, d_inner=args.d_inner,
                         n_token=max(32000, tok.vocab_size), dropout=0.1, dropatt=0.1)
    tf.keras.utils.set_random_seed(0)
    modes = [("truncate %d" % T, {}, T),
             ("memory %dx%d" % (T, S), dict(long_doc="memory", seq_len=T, max_segments=S,
                                           mem_len=max(1, (S - 1) * T)), S * T),
             ("truncate %d" % (S * T), {}, S * T)]
    results = []
    for name, kw, total in modes:
        model = XLNetClassifier(config, n_class=2, task_name="imdb", **kw)
        r = bench_mode(name, model, packed(ids, total), np.array(labels, np.int32), args)
        r["reviews_cut"] = float(np.mean(pieces > total))
        results.append(r)
    print(f"\n{args.n_layer} layers, d_model {args.d_model}, {args.n_head} heads, d_inner "
          f"{args.d_inner}; {len(ids)} IMDB test reviews, median {int(np.median(pieces))} "
          f"pieces ({os.path.basename(args.spiece_model)}); {platform.processor() or 'cpu'}, "
          f"load {workloads.load_average()}")
    print(f"{'mode':<16}{'positions':>10}{'infer ex/s':>12}{'train ex/s':>12}{'cut':>8}")
    for r in results:
        print(f"{r['mode']:<16}{r['positions']:>10}{r['infer_examples_per_s']:>12.2f}"
              f"{r['train_examples_per_s']:>12.2f}{r['reviews_cut']:>8.0%}")
    if args.json:
        workloads.write_json(args.json, {"args": vars(args), "results": results,
                                         "median_pieces": float(np.median(pieces))})


if __name__ == "__main__":
    main()
