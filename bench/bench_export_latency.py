"""Latency of the exported classifier SavedModel on this CPU (issue 5).

Builds an XLNet classifier with random weights (default: the XLNet-base shape, 12 layers,
d_model 768, 12 heads, d_inner 3072, 32000 tokens; 2 labels, summary 'last' + projection),
exports it with ``xlnet_tf.classification.export_classifier`` (max_seq_length 128), loads the
SavedModel back with ``tf.saved_model.load`` (tensorflow_text imported first, as a server
would) and times its signatures:

  * ``serving_default`` - raw text in: in-graph cleanup + SentencePiece tokenization +
    packing + model; texts long enough that every row fills all 128 positions;
  * ``predict_ids`` - already-packed [B, 128] ids: the model alone.

for batch 1 and batch 32 (median of --runs calls after --warmup calls; one call = one request
of B texts).  The tokenizer is the repository's test SentencePiece model (2,000 pieces): the
tokenization cost per text hardly depends on the vocabulary size, and the ids it produces are
valid inputs of a 32,000-token embedding.

    python bench/bench_export_latency.py                      # XLNet-base, batch 1 and 32
    python bench/bench_export_latency.py --runs 20 --json out.json
    python bench/bench_export_latency.py --saved_model export/3   # an existing export

Prints a table (and writes JSON with --json).
"""
import argparse
import json
import os
import platform
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # the repository root, for xlnet_tf
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import workloads  # noqa: E402
from workloads import BASE, log  # noqa: E402

SPM = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "spiece_test.model")
WORDS = ("the film is a quietly moving and often very funny portrait of a family that "
         "refuses to give up on itself , even when nothing goes right").split()


def make_texts(batch, seed):
    """``batch`` review-like texts of ~300 words (well over 128 pieces: truncated)."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=300)) for _ in range(batch)]


def export_random_model(args, out_dir):
    import tensorflow as tf

    from xlnet_tf.classification import XLNetClassifier, export_classifier
    from xlnet_tf.modeling.config import XLNetConfig
    config = XLNetConfig(n_layer=args.n_layer, d_model=args.d_model, n_head=args.n_head,
                         d_head=args.d_model // args.n_head, d_inner=args.d_inner,
                         n_token=args.n_token, dropout=0.0, dropatt=0.0)
    tf.keras.utils.set_random_seed(0)
    model = XLNetClassifier(config, n_class=2, task_name="bench")
    log("export", f"{config.n_layer} layers, d_model {config.d_model}, {config.n_token} tokens, "
                  f"{model.count_params():,} parameters")
    return export_classifier(model, out_dir, SPM, max_seq_length=args.seq_len,
                             label_list=["0", "1"], task_name="bench")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--saved_model", help="time this export (a version folder) instead")
    p.add_argument("--n_layer", type=int, default=BASE["n_layer"])
    p.add_argument("--d_model", type=int, default=BASE["d_model"])
    p.add_argument("--n_head", type=int, default=BASE["n_head"])
    p.add_argument("--d_inner", type=int, default=BASE["d_inner"])
    p.add_argument("--n_token", type=int, default=BASE["n_token"])
    p.add_argument("--seq_len", type=int, default=128)
    p.add_argument("--batch_sizes", default="1,32")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()

    import tensorflow_text  # noqa: F401 - the SavedModel's ops, registered before loading
    import tensorflow as tf

    from xlnet_tf.classification import pack_ids
    from xlnet_tf.tokenization.tokenizer import Tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        path = args.saved_model or export_random_model(args, os.path.join(tmp, "export"))
        loaded = tf.saved_model.load(path)
        serve = loaded.signatures["serving_default"]
        ids_fn = loaded.signatures["predict_ids"]
        seq_len = ids_fn.structured_input_signature[1]["input_ids"].shape[1]
        tok = Tokenizer(SPM)
        rows = []
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            texts = make_texts(batch, seed=batch)
            packed = [pack_ids(tok.encode_ids(t), None, seq_len) for t in texts]
            assert all(sum(m) == 0 for _, m, _ in packed), "texts must fill every position"
            feats = {"input_ids": tf.constant([x[0] for x in packed], tf.int32),
                     "input_mask": tf.constant([x[1] for x in packed], tf.float32),
                     "seg_ids": tf.constant([x[2] for x in packed], tf.int32)}
            text_t = tf.constant(texts)
            a = serve(text_a=text_t)["probabilities"].numpy()
            b = ids_fn(**feats)["probabilities"].numpy()
            np.testing.assert_allclose(a, b, atol=1e-5)   # the two paths agree
            for name, fn in (("serving_default (text)",
                              lambda: serve(text_a=text_t)["probabilities"].numpy()),
                             ("predict_ids (packed ids)",
                              lambda: ids_fn(**feats)["probabilities"].numpy())):
                times = workloads.time_calls(fn, args.warmup, args.runs)
                s = workloads.summarize(times)
                rows.append({"signature": name, "batch": batch, "seq_len": seq_len, **s,
                             "examples_per_s": batch / s["median_s"]})
                log("bench", f"{name} batch {batch}: median {1000 * s['median_s']:.1f} ms")

    what = (f"export {args.saved_model}" if args.saved_model else
            f"{args.n_layer} layers, d_model {args.d_model}, random weights")
    print(f"\nExported XLNet classifier latency on {platform.processor() or platform.machine()}"
          f" ({os.cpu_count()} CPU threads, TF {tf.__version__}); {what}, {seq_len} tokens "
          f"per text; load average {workloads.load_average()}")
    print(f"{'signature':<26} {'batch':>5} {'median ms':>10} {'min ms':>8} {'max ms':>8} "
          f"{'examples/s':>11}")
    for r in rows:
        print(f"{r['signature']:<26} {r['batch']:>5} {1000 * r['median_s']:>10.1f} "
              f"{1000 * r['min_s']:>8.1f} {1000 * r['max_s']:>8.1f} {r['examples_per_s']:>11.1f}")
    print(f"peak RSS {workloads.peak_rss_mb():,.0f} MiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "args": vars(args)}, f, indent=2)


if __name__ == "__main__":
    main()
