"""Benchmark: SQuAD preprocessing speed (questions/s) with 1 worker and with all workers.

    python bench/bench_squad_prepro.py [--data ../shared/data/squad/dev-v1.1.json]
        [--spiece_model tests/fixtures/spiece_test.model] [--reference_paragraphs 30]

Prints the wall time and questions/s of ``read_squad_examples`` +
``convert_examples_to_features`` (max_seq_length 512, doc_stride 128, max_query_length 64,
prediction mode). With ``--reference_paragraphs N`` it also times a literal transcription of
the original per-cell alignment (from tests/test_squad_data.py) on N paragraphs and prints the
estimated questions/s of the original approach (one alignment per question).
"""
import argparse
import logging
import os
import pathlib
import random
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from xlnet_tf import squad  # noqa: E402
from xlnet_tf.tokenization.tokenizer import Tokenizer  # noqa: E402


def run(data, tokenizer, num_workers, is_training):
    """Returns (questions, features, wall seconds, CPU seconds of this process + workers)."""
    t0, c0 = time.time(), os.times()
    examples = squad.read_squad_examples(data, is_training=is_training)
    feats = squad.convert_examples_to_features(examples, tokenizer, 512, 128, 64, is_training=is_training,
                                            num_workers=num_workers)
    dt, c1 = time.time() - t0, os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system) + (c1.children_user - c0.children_user) \
        + (c1.children_system - c0.children_system)
    return len(examples), len(feats), dt, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "squad" / "dev-v1.1.json"))
    parser.add_argument("--spiece_model", default=str(REPO / "tests" / "fixtures" / "spiece_test.model"))
    parser.add_argument("--training", action="store_true", help="build training labels too")
    parser.add_argument("--reference_paragraphs", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tokenizer = Tokenizer(args.spiece_model)
    ncpu = os.cpu_count() or 1
    print(f"data={args.data} spm={args.spiece_model} cpus={ncpu} training={args.training}")
    for workers in sorted({1, ncpu}):
        n_q, n_f, dt, cpu = run(args.data, tokenizer, workers, args.training)
        print(f"workers={workers}: {n_q} questions -> {n_f} features in {dt:.2f}s wall = "
              f"{n_q / dt:.0f} questions/s ({cpu:.2f} CPU-s, {n_q / cpu:.0f} questions per CPU-s); "
              f"load average {os.getloadavg()[0]:.1f}")
    if args.reference_paragraphs:
        sys.path.insert(0, str(REPO / "tests"))
        from test_squad_data import reference_align  # literal per-cell transcription of the spec
        examples = squad.read_squad_examples(args.data, is_training=False)
        paragraphs = sorted({ex.paragraph_text for ex in examples})
        sample = random.Random(0).sample(paragraphs, args.reference_paragraphs)
        q_per_par = len(examples) / len(paragraphs)
        pairs = [(p, "".join(tokenizer.encode_pieces(p)).replace("\u2581", " ")) for p in sample]
        t0 = time.time()
        for raw, tok in pairs:
            reference_align(raw, tok)
        t_ref = (time.time() - t0) / len(pairs)
        t0 = time.time()
        for raw, tok in pairs:
            squad.align_chars(raw, tok)
        t_new = (time.time() - t0) / len(pairs)
        print(f"alignment per paragraph: literal original-style {1000 * t_ref:.1f} ms, "
              f"align_chars {1000 * t_new:.2f} ms ({t_ref / t_new:.0f}x); the original aligned once "
              f"per question ({q_per_par:.1f} questions/paragraph) -> alignment alone caps it at "
              f"~{1 / t_ref:.0f} questions/s on 1 core")


if __name__ == "__main__":
    main()
