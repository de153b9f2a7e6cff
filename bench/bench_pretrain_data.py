"""Speed of the pretraining data path: record creation and the tf.data input pipeline.

    python bench/bench_pretrain_data.py                      # defaults below
    python bench/bench_pretrain_data.py --corpus_glob "text/*.txt" --spiece_model spiece.model

Prints:
  * tokenisation tokens/s with 1 and with --num_workers processes (corpus tokens);
  * end-to-end record creation (tokenise + mask + write) in corpus tokens/s and records/s;
  * pipeline examples/s of ``pretrain_dataset`` at seq_len=512, reuse_len=256,
    num_predict=85, perm_size=256, per-replica batch 16 (bi_data, one replica).

Defaults: the UTF-8 files of ../shared/data/pretrain_text (files that are not valid UTF-8 are
listed and left out) and the test SentencePiece model tests/fixtures/spiece_test.model.
Records go to a temporary folder that is deleted at the end (--work_dir keeps them).
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from xlnet_tf.pretraining import records as cpr  # noqa: E402
from xlnet_tf.pretraining import input_pipeline as pi  # noqa: E402

DEFAULT_CORPUS = os.path.join(REPO, "..", "shared", "data", "pretrain_text")


def utf8_files(pattern):
    good, bad = [], []
    for path in cpr.resolve_input_files(pattern):
        try:
            with open(path, "rb") as f:
                f.read().decode("utf-8")
            good.append(path)
        except UnicodeDecodeError as e:
            bad.append((path, e.reason))
    return good, bad


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus_glob", default=",".join(
        [os.path.join(DEFAULT_CORPUS, "*.txt"),
         os.path.join(DEFAULT_CORPUS, "gutenberg", "*.txt")]))
    parser.add_argument("--spiece_model",
                        default=os.path.join(REPO, "tests", "fixtures", "spiece_test.model"))
    parser.add_argument("--num_workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--work_dir", default=None, help="keep the records here")
    parser.add_argument("--batches", type=int, default=150, help="pipeline batches to time")
    parser.add_argument("--batch_size", type=int, default=16)
    args = parser.parse_args()

    files, bad = utf8_files(args.corpus_glob)
    for path, reason in bad:
        print(f"skipped (not UTF-8: {reason}): {path}")
    if not files:
        sys.exit("no UTF-8 input file found; pass --corpus_glob")
    size = sum(os.path.getsize(f) for f in files)
    print(f"corpus: {len(files)} files, {size / 1e6:.1f} MB; spiece model: {args.spiece_model}")

    # 1. tokenisation alone
    for workers in sorted({1, args.num_workers}):
        t0 = time.time()
        shards, _ = cpr.tokenize_files(files, args.spiece_model, num_workers=workers,
                                       log_every_s=1e9)
        dt = time.time() - t0
        tokens = sum(len(ids) for _, ids, _ in shards)
        print(f"tokenise, {workers} worker(s): {tokens} tokens in {dt:.1f} s = "
              f"{tokens / dt:,.0f} tokens/s")

    work = args.work_dir or tempfile.mkdtemp(prefix="bench_pretrain_")
    save_dir = os.path.join(work, "records")
    try:
        # 2. end-to-end record creation
        t0 = time.time()
        part = cpr.create_pretrain_records(
            ",".join(files), save_dir, args.spiece_model, seq_len=512, reuse_len=256,
            bi_data=True, num_predict=85, bsz_per_host=args.batch_size, num_core_per_host=1,
            num_workers=args.num_workers, overwrite=True, log_every_s=1e9)
        dt = time.time() - t0
        print(f"create records ({args.num_workers} workers): {part['num_tokens']} corpus tokens, "
              f"{part['num_records']} records of 512 in {dt:.1f} s = "
              f"{part['num_tokens'] / dt:,.0f} corpus tokens/s, {part['num_records'] / dt:,.0f} "
              f"records/s")

        # 3. tf.data pipeline
        for calls in ("AUTOTUNE", 1):
            ds = pi.pretrain_dataset(
                save_dir, args.batch_size, 512, 256, 256, 85, True, seed=0,
                num_parallel_calls=pi.tf.data.AUTOTUNE if calls == "AUTOTUNE" else calls)
            it = iter(ds)
            for _ in range(10):
                next(it)
            t0 = time.time()
            for _ in range(args.batches):
                batch = next(it)
            dt = time.time() - t0
            n = args.batches * args.batch_size
            print(f"pipeline (num_parallel_calls={calls}): {n} examples in {dt:.2f} s = "
                  f"{n / dt:,.0f} examples/s  (perm_mask {tuple(batch['perm_mask'].shape)})")
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
