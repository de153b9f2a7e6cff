"""Peak memory of a training step with and without gradient accumulation (issue 15).

Through the real training loop (``xlnet_tf.training.train``, AdamW, clip 1.0), random
weights and one fixed random batch, each configuration in its own process:

  whole    --train_batch_size=B                      (no accumulation)
  accum    --train_batch_size=B --grad_accum_steps=N (N micro-batches of B/N rows)
  micro    --train_batch_size=B/N                    (the micro-batch alone, no accumulation)

for a fine-tuning step (classifier, long sequences: the RACE use case) and a two-stream
pretraining step (perm_mask / target_mapping, memory carried across steps, bi_data).  It
reports the process's peak RSS with the first (tracing) step, the RSS between steps after
it (weights, Adam slots, runtime) and the peak over the later steps; "step peak" = that
peak above the RSS between steps: what the step's activations and gradients add.
Accumulation should bring the step peak of "accum" down to about that of "micro" (plus one
gradient-sized accumulator and the whole batch's inputs), not that of "whole".

    python bench/bench_grad_accum.py                       # both workloads, ~5-10 min busy
    python bench/bench_grad_accum.py --workloads finetune --batch 8 --accum 4 --steps 2
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

import workloads  # noqa: E402

MODEL = dict(n_layer=4, d_model=256, n_head=4, d_head=64, d_inner=1024, n_token=32000,
             dropout=0.1, dropatt=0.1)
WORKLOADS = {
    "finetune": dict(seq_len=512),
    "pretrain": dict(seq_len=256, reuse_len=128, mem_len=128, num_predict=40),
}


def resident_mb():
    """Current resident set size of this process in MiB (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _fixed_batch(kind, batch, spec, rng):
    """One random batch of ``batch`` rows with the task's keys (NumPy)."""
    import numpy as np
    T = spec["seq_len"]
    if kind == "finetune":
        return {"input_ids": rng.integers(0, MODEL["n_token"], (batch, T)).astype(np.int32),
                "seg_ids": np.zeros((batch, T), np.int32),
                "input_mask": np.zeros((batch, T), np.float32),
                "label": rng.integers(0, 2, batch).astype(np.int32)}
    P = spec["num_predict"]
    tm = np.zeros((batch, P, T), np.float32)
    for r in range(batch):
        tm[r, np.arange(P), rng.choice(T, P, replace=False)] = 1
    return {"input_k": rng.integers(0, MODEL["n_token"], (batch, T)).astype(np.int32),
            "seg_ids": np.zeros((batch, T), np.int32),
            "perm_mask": (rng.random((batch, T, T)) < 0.5).astype(np.float32),
            "target_mapping": tm,
            "target": rng.integers(0, MODEL["n_token"], (batch, P)).astype(np.int32),
            "target_mask": np.ones((batch, P), np.float32), "input_q": tm.sum(1)}


def worker(spec):
    import numpy as np
    import tensorflow as tf

    from xlnet_tf import training
    from xlnet_tf.classification.task import ClassifierTask
    from xlnet_tf.modeling.config import XLNetConfig
    from xlnet_tf.pretraining.task import PretrainTask

    kind, shape = spec["kind"], WORKLOADS[spec["kind"]]
    rng = np.random.default_rng(0)

    def fixed_dataset(ctx, per_replica_batch, skip_batches):
        batch = _fixed_batch(kind, per_replica_batch, shape, rng)
        return tf.data.Dataset.from_tensors(batch).repeat()

    if kind == "finetune":
        class Processor:
            name, is_regression, label_list = "bench", False, ["0", "1"]
        task = ClassifierTask(XLNetConfig(**MODEL), Processor(), None, shape["seq_len"])
    else:
        config = XLNetConfig(**MODEL, mem_len=shape["mem_len"], reuse_len=shape["reuse_len"],
                             bi_data=True)
        task = PretrainTask(config, None, seq_len=shape["seq_len"],
                            reuse_len=shape["reuse_len"], perm_size=shape["reuse_len"],
                            num_predict=shape["num_predict"], bi_data=True)
    task.dataset = fixed_dataset
    task.export = lambda model, model_dir: None

    marks = {}

    def callback(step, metrics, model):
        now = time.perf_counter()
        if step == 1:                     # after the first (tracing) step
            marks["first_peak"] = workloads.peak_rss_mb()
            workloads.release_heap()
            marks["reset"] = workloads.reset_peak_rss()
            marks["resident"] = resident_mb()
            marks["times"] = []
        else:
            marks["times"].append(now - marks["t"])
        marks["t"] = now

    conf = training.TrainConfig(
        model_dir=spec["model_dir"], train_steps=1 + spec["steps"], learning_rate=1e-4,
        weight_decay=0.01, clip=1.0, iterations=1, global_batch_size=spec["batch"],
        grad_accum_steps=spec["accum"], tokens_per_example=shape["seq_len"])
    training.train(task, conf, tf.distribute.get_strategy(), callback=callback)
    steady = workloads.peak_rss_mb()
    print("RESULT " + json.dumps(dict(
        spec, peak_rss_mb=max(marks["first_peak"], steady), resident_mb=marks["resident"],
        steady_peak_rss_mb=steady if marks["reset"] else None,
        step_peak_mb=steady - marks["resident"] if marks["reset"] else None,
        step_s=statistics.median(marks["times"]))), flush=True)


def launch(spec, timeout):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"worker {spec} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="finetune,pretrain")
    parser.add_argument("--batch", type=int, default=8, help="B: rows of one optimizer step")
    parser.add_argument("--accum", type=int, default=4, help="N: micro-batches per step")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after the first")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    if args.batch % args.accum:
        parser.error(f"--batch={args.batch} is not divisible by --accum={args.accum}")
    import tempfile
    results = []
    print(f"model {MODEL['n_layer']}x{MODEL['d_model']} (d_inner {MODEL['d_inner']}, "
          f"{MODEL['n_token']} tokens), AdamW, clip 1.0, float32; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'workload':<9} {'config':<7} {'batch':>5} {'N':>2} {'micro':>5} "
          f"{'peak MiB':>9} {'between':>8} {'steady':>7} {'step peak':>10} {'s/step':>7}")
    for kind in args.workloads.split(","):
        for name, batch, accum in (("whole", args.batch, 1), ("accum", args.batch, args.accum),
                                   ("micro", args.batch // args.accum, 1)):
            with tempfile.TemporaryDirectory() as d:
                r = launch(dict(kind=kind, name=name, batch=batch, accum=accum,
                                steps=args.steps, model_dir=d), args.timeout)
            results.append(r)
            nan = float("nan")
            print(f"{kind:<9} {name:<7} {batch:>5} {accum:>2} {batch // accum:>5} "
                  f"{r['peak_rss_mb']:>9.0f} {r['resident_mb']:>8.0f} "
                  f"{r['steady_peak_rss_mb'] or nan:>7.0f} {r['step_peak_mb'] or nan:>10.0f} "
                  f"{r['step_s']:>7.2f}", flush=True)
    print("peak: whole process, first (tracing) step included; between: RSS after the first "
          "step; steady: peak over the later steps; step peak = steady - between")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
