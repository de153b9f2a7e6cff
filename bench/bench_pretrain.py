"""Pretraining throughput through the real training loop (xlnet_tf.training.train): the
XLNet-base shape (12 x 768, 12 heads, 3072, 32000 tokens), two-stream permutation LM with
perm_mask / target_mapping and memory carried across steps, AdamW, on this CPU.

    python bench/bench_pretrain.py                       # float32 and mixed_bfloat16
    python bench/bench_pretrain.py --precision mixed_bfloat16 --steps 6 --json out.json

Each precision runs in its own process (Keras' dtype policy is global).  The first loop
(tracing + compilation) is excluded; steps/s and tokens/s are over the timed loops.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def worker(args):
    import numpy as np
    import tensorflow as tf

    from xlnet_tf import training
    from xlnet_tf.modeling.config import XLNET_BASE, XLNetConfig
    from xlnet_tf.pretraining import PretrainTask

    training.set_precision(args.precision)
    T, P, B, R = args.seq_len, args.num_predict, args.batch, args.seq_len // 2
    config = XLNetConfig(**XLNET_BASE, mem_len=args.mem_len, reuse_len=R, dropout=0.1,
                         dropatt=0.1, recompute=args.recompute)
    rng = np.random.default_rng(0)
    perm = (rng.random((B, T, T)) < 0.5).astype(np.float32)
    tm = np.zeros((B, P, T), np.float32)
    for b in range(B):
        for p, j in enumerate(rng.choice(T, P, replace=False)):
            tm[b, p, j] = 1
    batch = {"input_k": rng.integers(9, 32000, (B, T)).astype(np.int32),
             "seg_ids": rng.integers(0, 2, (B, T)).astype(np.int32), "perm_mask": perm,
             "target_mapping": tm, "target": rng.integers(9, 32000, (B, P)).astype(np.int32),
             "target_mask": np.ones((B, P), np.float32), "input_q": tm.sum(1)}

    class SyntheticPretrain(PretrainTask):
        def dataset(self, ctx, per_replica_batch, skip):
            return tf.data.Dataset.from_tensors(batch).repeat()

        def export(self, model, model_dir):
            pass

    task = SyntheticPretrain(config, None, seq_len=T, reuse_len=R, perm_size=R,
                             num_predict=P, bi_data=False)
    times = []

    def callback(step, metrics, model):
        times.append((step, time.time()))

    with tempfile.TemporaryDirectory() as d:
        conf = training.TrainConfig(model_dir=d, train_steps=args.steps * (args.loops + 1),
                                    learning_rate=1e-4, weight_decay=0.01, iterations=args.steps,
                                    save_steps=10 ** 9, global_batch_size=B,
                                    tokens_per_example=T, precision=args.precision)
        t0 = time.time()
        training.train(task, conf, training.make_strategy("one_device"), callback=callback)
    first = times[0][1] - t0
    dt = times[-1][1] - times[0][1]
    steps = times[-1][0] - times[0][0]
    peak = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                peak = int(line.split()[1]) / 1024
    print("RESULT " + json.dumps({
        "precision": args.precision, "recompute": args.recompute, "batch": B, "seq_len": T,
        "mem_len": args.mem_len, "num_predict": P, "steps_per_s": steps / dt,
        "s_per_step": dt / steps, "tokens_per_s": steps * B * T / dt,
        "first_loop_s": first, "peak_rss_mb": peak}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--precision", nargs="*", default=["float32", "mixed_bfloat16"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq_len", type=int, default=128)
    ap.add_argument("--mem_len", type=int, default=96)
    ap.add_argument("--num_predict", type=int, default=21)
    ap.add_argument("--steps", type=int, default=4, help="steps per timed loop")
    ap.add_argument("--loops", type=int, default=2, help="timed loops after the first")
    ap.add_argument("--recompute", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.precision = args.precision[0]
        return worker(args)
    results = []
    for prec in args.precision:
        cmd = [sys.executable, __file__, "--worker", "--precision", prec] + [
            f"--{k}={getattr(args, k)}" for k in ("batch", "seq_len", "mem_len", "num_predict",
                                                  "steps", "loops")]
        if args.recompute:
            cmd.append("--recompute")
        out = subprocess.run(cmd, capture_output=True, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if not line:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"worker for {prec} failed")
        results.append(json.loads(line[0][7:]))
    print(f"{'precision':16s} {'s/step':>8s} {'steps/s':>8s} {'tokens/s':>9s} {'peak RSS':>9s}")
    for r in results:
        print(f"{r['precision']:16s} {r['s_per_step']:8.3f} {r['steps_per_s']:8.3f} "
              f"{r['tokens_per_s']:9.0f} {r['peak_rss_mb']:7.0f}MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
