"""Speed of the xlnet_tf model core on the XLNet-base shape, on this CPU (issue 2).

Measures, with random weights (12 layers, d_model 768, 12 heads, d_inner 3072, 32000 tokens):
  * forward tokens/s (inference, inside a tf.function, first call and warm-up excluded,
    median of --runs): the backbone (content stream, input_mask + seg_ids) and the LM model
    (backbone + tied LM head);
  * one fine-tuning step: forward + backward + optimizer apply, classification-style
    content stream with input_mask, a summary + logit head on the last (CLS) token;
  * one pretraining step: two-stream with perm_mask / target_mapping (--num_predict
    predictions), memory of --mem_len positions carried from step to step, LM loss.

    python bench/bench_model.py                                 # float32, batch 8 x 128
    python bench/bench_model.py --precision mixed_bfloat16 --json out.json
    python bench/bench_model.py --jit_compile --runs 3

Prints a table (and writes JSON with --json). Takes about 2-4 minutes on 2 cores.
"""
import argparse
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # the repository root, for xlnet_tf
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import workloads  # noqa: E402
from workloads import BASE, log  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16")


# ---------------------------------------------------------------------------------- building

def set_precision(precision):
    """Set the global Keras dtype policy; call BEFORE building a model."""
    import keras
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {PRECISIONS}, got {precision!r}")
    keras.mixed_precision.set_global_policy(precision)


def base_config(dropout=0.0, **run_options):
    """XLNet-base XLNetConfig (ff_activation gelu, untie_r) with run options."""
    import xlnet_tf
    return xlnet_tf.XLNetConfig(**BASE, ff_activation="gelu", untie_r=True, dropout=dropout,
                                dropatt=dropout, **run_options)


def to_tensors(batch, keys):
    import tensorflow as tf
    return {k: tf.constant(batch[k]) for k in keys if k in batch}


class ClassificationHead:
    """The original's classification head on the last (CLS) position: summary dense
    (d_model, tanh), dropout, logit dense (num_labels). Keras layers, built eagerly."""

    def __init__(self, d_model, num_labels=2, dropout=0.1):
        import keras
        self.summary = keras.layers.Dense(d_model, activation="tanh", name="summary")
        self.dropout = keras.layers.Dropout(dropout)
        self.logit = keras.layers.Dense(num_labels, name="logit")
        self.summary.build((None, d_model))
        self.logit.build((None, d_model))

    @property
    def trainable_variables(self):
        return self.summary.trainable_variables + self.logit.trainable_variables

    def __call__(self, hidden, training):
        import tensorflow as tf
        x = self.summary(hidden[:, -1])                                      # [B, d]
        x = self.dropout(x, training=training)
        return tf.cast(self.logit(x), tf.float32)                            # [B, C]


def make_optimizer(kind, variables, names):
    """'adam': keras Adam (the original's weight_decay=0 path); 'adamw': the project's
    AdamWeightDecay (BERT-style, the original's weight_decay>0 path, decay by original
    name). Built on `variables` right away (slots excluded from the timed step)."""
    import keras
    if kind == "adam":
        opt = keras.optimizers.Adam(learning_rate=1e-5, epsilon=1e-6)
        opt.build(variables)
        return opt, "keras.optimizers.Adam"
    if kind == "adamw":
        try:
            from xlnet_tf.training.optimization import AdamWeightDecay
        except ImportError:  # the optimization module is not there: Keras' AdamW
            opt = keras.optimizers.AdamW(learning_rate=1e-5, weight_decay=0.01, epsilon=1e-6)
            opt.build(variables)
            return opt, "keras.optimizers.AdamW"
        opt = AdamWeightDecay(learning_rate=1e-5, weight_decay_rate=0.01, epsilon=1e-6)
        opt.build(variables, names=names)
        return opt, "xlnet_tf.training.optimization.AdamWeightDecay"
    raise ValueError(f"optimizer must be 'adam' or 'adamw', got {kind!r}")


def release_host_memory():
    from xlnet_tf.training import release_host_memory as release
    release()


def variable_names(model, variables, extra):
    """Original checkpoint names parallel to `variables` (of model) + `extra` head vars."""
    by_id = {id(v): n for n, v in model.original_name_map().items()}
    names = [by_id.get(id(v), v.path) for v in variables]
    names += [f"model/classification_bench/{v.path}" for v in extra]
    return names


# ---------------------------------------------------------------------------------- workloads
# Each make_* returns (fn, info): fn() runs one forward / step and returns only when done.

def make_forward(batch, seq_len, jit_compile=False, lm_head=False, seed=0):
    import tensorflow as tf
    import xlnet_tf
    config = base_config()
    model = xlnet_tf.XLNetLMModel(config) if lm_head else xlnet_tf.XLNetModel(config)
    data = workloads.classification_batch(seed, batch, seq_len)
    inputs = to_tensors(data, ("input_ids", "seg_ids", "input_mask"))
    key = "logits" if lm_head else "hidden"

    @tf.function(jit_compile=jit_compile)
    def forward(inputs):
        return model(inputs, training=False)[key]

    t0 = time.perf_counter()
    forward(inputs).numpy()
    first = time.perf_counter() - t0
    flops = workloads.forward_flops(batch, seq_len, lm_head=lm_head)
    return (lambda: forward(inputs).numpy()), dict(
        model=type(model).__name__, first_call_s=first, flops=flops,
        tokens=batch * seq_len)


def make_finetune_step(batch, seq_len, jit_compile=False, optimizer="adam", dropout=0.1,
                       seed=0):
    import tensorflow as tf
    import xlnet_tf
    model = xlnet_tf.XLNetModel(base_config(dropout=dropout))
    head = ClassificationHead(BASE["d_model"], dropout=dropout)
    # mask_emb only feeds the query stream: no gradient in fine-tuning
    backbone_vars = [v for v in model.trainable_variables if v is not model.mask_emb]
    variables = backbone_vars + head.trainable_variables
    opt, opt_name = make_optimizer(optimizer, variables,
                                   variable_names(model, backbone_vars,
                                                  head.trainable_variables))
    data = workloads.classification_batch(seed, batch, seq_len)
    inputs = to_tensors(data, ("input_ids", "seg_ids", "input_mask"))
    labels = tf.constant(data["labels"])

    @tf.function(jit_compile=jit_compile)
    def step(inputs, labels):
        with tf.GradientTape() as tape:
            hidden = model(inputs, training=True)["hidden"]                  # [B, T, d]
            logits = head(hidden, training=True)                             # [B, C]
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tape.gradient(loss, variables)
        grads, _ = tf.clip_by_global_norm(grads, 1.0)
        opt.apply_gradients(zip(grads, variables))
        return loss

    t0 = time.perf_counter()
    step(inputs, labels).numpy()
    first = time.perf_counter() - t0
    release_host_memory()  # as xlnet_tf.training.loop.train does after its first step
    flops = workloads.train_step_flops(workloads.forward_flops(batch, seq_len))
    return (lambda: step(inputs, labels).numpy()), dict(
        optimizer_class=opt_name, first_call_s=first, flops=flops, tokens=batch * seq_len)


def make_pretrain_step(batch, seq_len, num_predict, mem_len, reuse_len=None,
                       jit_compile=False, optimizer="adam", dropout=0.1, seed=0,
                       recompute=False):
    """Two-stream LM step; new_mems of step k are fed to step k+1 (as a training loop does)."""
    import tensorflow as tf
    import xlnet_tf
    run = dict(mem_len=mem_len or None, reuse_len=reuse_len)
    if recompute:
        run["recompute"] = True
    model = xlnet_tf.XLNetLMModel(base_config(dropout=dropout, **run))
    variables = model.trainable_variables
    opt, opt_name = make_optimizer(optimizer, variables, variable_names(model, variables, []))
    data = workloads.pretrain_batch(seed, batch, seq_len, num_predict)
    inputs = to_tensors(data, ("input_ids", "seg_ids", "perm_mask", "target_mapping"))
    target = tf.constant(data["target"])
    state = {"mems": None}
    if mem_len:
        state["mems"] = [tf.constant(m) for m in workloads.random_mems(
            seed + 1, BASE["n_layer"], batch, mem_len, BASE["d_model"])]

    @tf.function(jit_compile=jit_compile)
    def step(inputs, target, mems):
        if mems is not None:
            inputs = dict(inputs, mems=mems)
        with tf.GradientTape() as tape:
            out = model(inputs, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                target, out["logits"]))                                      # [B, P] -> []
        grads = tape.gradient(loss, variables)
        grads, _ = tf.clip_by_global_norm(grads, 1.0)
        opt.apply_gradients(zip(grads, variables))
        return loss, out["new_mems"]

    def run_once():
        loss, new_mems = step(inputs, target, state["mems"])
        loss.numpy()
        if mem_len:
            state["mems"] = new_mems

    t0 = time.perf_counter()
    run_once()
    first = time.perf_counter() - t0
    release_host_memory()  # as xlnet_tf.training.loop.train does after its first step
    flops = workloads.train_step_flops(workloads.forward_flops(
        batch, seq_len, mem_len=mem_len or 0, num_predict=num_predict, lm_head=True))
    return run_once, dict(optimizer_class=opt_name, first_call_s=first, flops=flops,
                          tokens=batch * seq_len)


# ---------------------------------------------------------------------------------- profile

def profile_ops(fn, logdir, calls=2, top=15):
    """Trace `calls` calls of fn with the TF profiler and sum op time by op type and by op
    name (layer index and numeric suffixes folded, so all 12 layers add up).

    Times are per op on TensorFlow's inter-op threads (an op's wall time, its intra-op
    parallel work included); ops that overlap are each counted, so shares are approximate.
    Returns {"total_ms", "by_type": [(type, ms)], "by_name": [(name, ms, count)]}."""
    import collections
    import glob
    import re
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    tf.profiler.experimental.start(logdir)
    try:
        for _ in range(calls):
            fn()
    finally:
        tf.profiler.experimental.stop()
    paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True),
                   key=os.path.getmtime)
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    by_type, by_name, count = (collections.Counter(), collections.Counter(),
                               collections.Counter())
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                full = plane.event_metadata[event.metadata_id].name
                if ":" not in full or "::" in full:  # executor bookkeeping, not an op
                    continue
                name, op_type = full.rsplit(":", 1)
                ms = event.duration_ps / 1e9 / calls
                by_type[op_type] += ms
                name = re.sub(r"layer_\d+", "layer_N", name)
                name = re.sub(r"_\d+(?=/|$)", "", name)
                by_name[f"{name}:{op_type}"] += ms
                count[f"{name}:{op_type}"] += 1
    return dict(total_ms=sum(by_type.values()), by_type=by_type.most_common(top),
                by_name=[(n, ms, count[n] // calls) for n, ms in by_name.most_common(top)])


def print_profile(name, prof):
    total = prof["total_ms"]
    print(f"\nprofile of {name}: {total:.0f} ms of op time per call")
    for op_type, ms in prof["by_type"]:
        print(f"  {op_type:<40} {ms:9.1f} ms {100 * ms / total:5.1f}%")
    print("  by op name (layers folded):")
    for op, ms, n in prof["by_name"]:
        print(f"  {op[:96]:<96} {ms:9.1f} ms {100 * ms / total:5.1f}% x{n}")


# ---------------------------------------------------------------------------------- main

def bench(name, maker, warmup, runs, profile_dir=None, **kwargs):
    log("bench_model", f"{name}: building and tracing ...")
    fn, info = maker(**kwargs)
    log("bench_model", f"{name}: first call (trace/compile) {info['first_call_s']:.1f} s")
    times = workloads.time_calls(fn, warmup, runs, tag=f"bench_model {name}")
    prof = None
    if profile_dir:
        slug = "".join(ch if ch.isalnum() else "_" for ch in name)
        prof = profile_ops(fn, os.path.join(profile_dir, slug))
        print_profile(name, prof)
    res = dict(name=name, **kwargs, **workloads.summarize(times), times_s=times, **info)
    res["tokens_per_s"] = info["tokens"] / res["median_s"]
    res["steps_per_s"] = 1.0 / res["median_s"]
    res["gflop_per_s"] = info["flops"] / res["median_s"] / 1e9
    if prof:
        res["profile"] = prof
    return res


def print_table(rows, header):
    print(header)
    print(f"{'benchmark':<34} {'median s':>9} {'min s':>8} {'tokens/s':>9} {'steps/s':>8} "
          f"{'GFLOP/s':>8} {'1st call s':>10}")
    for r in rows:
        print(f"{r['name']:<34} {r['median_s']:>9.3f} {r['min_s']:>8.3f} "
              f"{r['tokens_per_s']:>9.0f} {r['steps_per_s']:>8.3f} {r['gflop_per_s']:>8.1f} "
              f"{r['first_call_s']:>10.1f}")



def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--num_predict", type=int, default=21,
                        help="predictions per row in the pretraining step (85/512 of seq_len)")
    parser.add_argument("--mem_len", type=int, default=96,
                        help="memory length of the pretraining step (384/512 of seq_len)")
    parser.add_argument("--reuse_len", type=int, default=64)
    parser.add_argument("--precision", default="float32", choices=PRECISIONS)
    parser.add_argument("--jit_compile", action="store_true",
                        help="compile the forward / steps with XLA")
    parser.add_argument("--optimizer", default="adam", choices=("adam", "adamw"))
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls after the first")
    parser.add_argument("--runs", type=int, default=5, help="timed calls (median reported)")
    parser.add_argument("--only", default="forward,forward_lm,finetune,pretrain",
                        help="comma-separated subset of forward,forward_lm,finetune,pretrain")
    parser.add_argument("--profile", default=None, metavar="DIR",
                        help="after timing, trace 2 calls of each benchmark with the TF "
                             "profiler into DIR and print where the op time goes")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    for flag in ("batch", "seq_len", "num_predict", "runs"):
        if getattr(args, flag) <= 0:
            parser.error(f"--{flag} must be positive, got {getattr(args, flag)}")
    if args.warmup < 0 or args.mem_len < 0:
        parser.error("--warmup and --mem_len must be >= 0")
    if args.num_predict > args.seq_len:
        parser.error(f"--num_predict {args.num_predict} exceeds --seq_len {args.seq_len}")
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - {"forward", "forward_lm", "finetune", "pretrain"}
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {sorted(unknown)}")

    set_precision(args.precision)
    import tensorflow as tf
    start = time.time()
    log("bench_model", f"TensorFlow {tf.__version__}, precision {args.precision}, jit_compile "
        f"{args.jit_compile}, load average {workloads.load_average()}")
    B, T, jit = args.batch, args.seq_len, args.jit_compile
    rows = []
    if "forward" in only:
        rows.append(bench(f"forward backbone {B}x{T}", make_forward, args.warmup, args.runs,
                          profile_dir=args.profile,
                          batch=B, seq_len=T, jit_compile=jit))
    if "forward_lm" in only:
        rows.append(bench(f"forward +LM head {B}x{T}", make_forward, args.warmup, args.runs,
                          profile_dir=args.profile,
                          batch=B, seq_len=T, jit_compile=jit, lm_head=True))
    steps = max(1, args.runs // 2 + 1)
    warm = min(args.warmup, 1)
    if "finetune" in only:
        rows.append(bench(f"finetune step {B}x{T}", make_finetune_step, warm, steps,
                          profile_dir=args.profile,
                          batch=B, seq_len=T, jit_compile=jit, optimizer=args.optimizer))
    if "pretrain" in only:
        rows.append(bench(f"pretrain step {B}x{T} P={args.num_predict} M={args.mem_len}",
                          make_pretrain_step, warm, steps, profile_dir=args.profile,
                          batch=B, seq_len=T,
                          num_predict=args.num_predict, mem_len=args.mem_len,
                          reuse_len=args.reuse_len or None, jit_compile=jit,
                          optimizer=args.optimizer))
    load = workloads.load_average()
    header = (f"XLNet-base shape, random weights, {args.precision}, jit_compile={jit}, "
              f"TF {tf.__version__}, {os.cpu_count()} CPUs, load average at end {load}")
    print()
    print_table(rows, header)
    print(f"peak RSS {workloads.peak_rss_mb():.0f} MiB, total {time.time() - start:.0f} s")
    if args.json:
        workloads.write_json(args.json, dict(
            benchmark="bench_model", precision=args.precision, jit_compile=jit,
            tensorflow=tf.__version__, python=platform.python_version(),
            cpus=os.cpu_count(), load_average_end=load,
            peak_rss_mb=workloads.peak_rss_mb(), results=rows))
        log("bench_model", f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
