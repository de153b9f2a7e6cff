"""Benchmark: SQuAD inference speed (questions/s) on this CPU, two ways.

    python bench/bench_squad_infer.py [--shape base|tiny] [--n_questions 32] [--batch 8]
        [--data ../shared/data/squad/dev-v1.1.json]
        [--spiece_model tests/fixtures/spiece_test.model]
        [--max_seq_length 512 --doc_stride 128 --max_query_length 64] [--check_alignment]

1. The run_squad.py path: features built by ``xlnet_tf.squad.data`` (timed apart,
   as "preprocessing"), the model's beam heads over the cached TFRecords
   (``squad_model.predict_raw_results``, one ``tf.function``), then
   ``squad_postprocess.write_predictions``.
2. The exported SavedModel: ``serving_default`` on raw (question, context) strings in
   batches of ``--batch`` - tokenization, context alignment, windows, model and answer
   selection all in-graph; loaded with ``tf.saved_model.load`` after
   ``import tensorflow_text``.

Both use the first ``--n_questions`` questions of ``--data`` and random weights of the
chosen shape (``base`` = XLNet-base: 12 layers, d_model 768, 12 heads, d_inner 3072, 32000
tokens; ``tiny`` = 2 layers, d_model 64).  The first call (tracing) is excluded; the load
average is printed because the machine is shared.  The alignment step alone is timed too
(contexts/s).  ``--check_alignment`` compares the in-graph alignment with the Python
pipeline's on every context of ``--data`` (piece ids and both piece -> raw character maps).
"""
import argparse
import logging
import os
import pathlib
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401 - registers the ops the SavedModel needs

from xlnet_tf.tokenization import tokenizer as tok_lib  # noqa: E402
from xlnet_tf.modeling.config import XLNetConfig  # noqa: E402
from xlnet_tf import squad  # noqa: E402
from xlnet_tf.squad import (ContextAligner, XLNetSquadModel, export_squad,  # noqa: E402
                            predict_raw_results, write_predictions)

SHAPES = {
    "base": dict(n_layer=12, d_model=768, n_head=12, d_head=64, d_inner=3072, n_token=32000),
    "tiny": dict(n_layer=2, d_model=64, n_head=2, d_head=32, d_inner=128, n_token=32000),
}


def check_alignment(data, spiece_model, batch=64):
    tokenizer = tok_lib.Tokenizer(spiece_model)
    examples = squad.read_squad_examples(data, is_training=False)
    contexts = list(dict.fromkeys(ex.paragraph_text for ex in examples))
    aligner = ContextAligner(spiece_model)
    fn = tf.function(aligner.align, input_signature=[tf.TensorSpec([None], tf.string)])
    bad = {"ids": [], "start": [], "end": []}
    t0 = time.time()
    for i in range(0, len(contexts), batch):
        chunk = contexts[i:i + batch]
        got = fn(tf.constant(chunk))
        for j, context in enumerate(chunk):
            info = squad.prepare_paragraph(tokenizer.sp_model, context, False, False)
            want = (info.para_ids, info.tok_start_to_orig, info.tok_end_to_orig)
            for name, g, w in zip(("ids", "start", "end"), got, want):
                if [int(x) for x in g[j].numpy()] != [int(x) for x in w]:
                    bad[name].append(i + j)
    print(f"alignment check on {len(contexts)} contexts of {data} ({time.time() - t0:.0f}s): "
          f"piece ids differ in {len(bad['ids'])}, tok_start_to_orig in {len(bad['start'])}, "
          f"tok_end_to_orig in {len(bad['end'])} (context indices: {bad})", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "squad" /
                                              "dev-v1.1.json"))
    parser.add_argument("--spiece_model", default=str(REPO / "tests" / "fixtures" /
                                                      "spiece_test.model"))
    parser.add_argument("--shape", choices=sorted(SHAPES), default="base")
    parser.add_argument("--n_questions", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max_seq_length", type=int, default=512)
    parser.add_argument("--doc_stride", type=int, default=128)
    parser.add_argument("--max_query_length", type=int, default=64)
    parser.add_argument("--check_alignment", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.check_alignment:
        check_alignment(args.data, args.spiece_model)

    shape = SHAPES[args.shape]
    T = args.max_seq_length
    print(f"model {args.shape}: {shape}, max_seq_length {T}, doc_stride {args.doc_stride}, "
          f"max_query_length {args.max_query_length}, batch {args.batch}, float32, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    tf.keras.utils.set_random_seed(0)
    model = XLNetSquadModel(XLNetConfig(**shape, dropout=0.0, dropatt=0.0))
    tokenizer = tok_lib.Tokenizer(args.spiece_model)
    examples = squad.read_squad_examples(args.data, is_training=False)[:args.n_questions]
    n = len(examples)

    # ---- 1. the run_squad.py path
    t0 = time.time()
    feats = squad.convert_examples_to_features(examples, tokenizer, T, args.doc_stride,
                                            args.max_query_length, False, num_workers=1)
    t_pre = time.time() - t0
    with tempfile.TemporaryDirectory() as tmp:
        record = os.path.join(tmp, "eval.tf_record")
        squad.write_squad_features(feats, record, False)
        predict_raw_results(model, record, args.batch, T, log_every=0)       # trace
        t0 = time.time()
        results = predict_raw_results(model, record, args.batch, T, log_every=0)
        t_model = time.time() - t0
        t0 = time.time()
        write_predictions(examples, feats, results, 5, 64, 5, 5)
        t_post = time.time() - t0
    total = t_pre + t_model + t_post
    print(f"python pipeline: {n} questions -> {len(feats)} windows; preprocessing "
          f"{t_pre:.2f}s, model {t_model:.2f}s ({len(feats) / t_model:.2f} windows/s), "
          f"post-processing {t_post:.3f}s -> {n / total:.2f} questions/s end to end "
          f"({n / t_model:.2f} questions/s model only); load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)

    # ---- 2. the SavedModel on raw strings
    questions = [ex.question_text for ex in examples]
    contexts = [ex.paragraph_text for ex in examples]
    aligner = ContextAligner(args.spiece_model)
    align = tf.function(aligner.align, input_signature=[tf.TensorSpec([None], tf.string)])
    align(tf.constant(contexts[:args.batch]))
    t0 = time.time()
    for i in range(0, n, args.batch):
        align(tf.constant(contexts[i:i + args.batch]))
    t_align = time.time() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = export_squad(model, os.path.join(tmp, "export"), args.spiece_model,
                            max_seq_length=T, doc_stride=args.doc_stride,
                            max_query_length=args.max_query_length, max_answer_length=64)
        serve = tf.saved_model.load(path).signatures["serving_default"]
        serve(question=tf.constant(questions[:args.batch]),
              context=tf.constant(contexts[:args.batch]))                     # warm-up
        t0 = time.time()
        answers = []
        for i in range(0, n, args.batch):
            out = serve(question=tf.constant(questions[i:i + args.batch]),
                        context=tf.constant(contexts[i:i + args.batch]))
            answers.extend(out["answer"].numpy())
        t_serve = time.time() - t0
    print(f"SavedModel serving_default: {n} questions in {t_serve:.2f}s -> "
          f"{n / t_serve:.2f} questions/s (raw strings in, answers out); in-graph alignment "
          f"alone {n / t_align:.1f} contexts/s; load average {os.getloadavg()[0]:.1f}",
          flush=True)
    assert len(answers) == n and np.all([isinstance(a, bytes) for a in answers])


if __name__ == "__main__":
    main()
