"""Side-by-side speed and memory of XLNet implementations on this CPU (issue 7).

One run measures, for the XLNet-base shape with random weights, alternating the contenders
task by task (each contender and task in its own subprocess, so peak RSS is per contender):

  tasks       infer128   inference, batch 8 x 128 tokens (backbone, seg ids + input_mask)
              infer512   inference, batch 8 x 512 tokens
              pretrain   two-stream pretraining step: perm_mask / target_mapping, batch 4 x 128,
                         19 predictions, memory of 96 positions carried between steps, LM loss,
                         global-norm clip 1.0, AdamW
              finetune   classification fine-tuning step: batch 8 x 128, input_mask, summary +
                         logit head on the CLS (last) token, dropout 0.1, clip 1.0, AdamW
              (optional: pretrain512 = 4 x 512 tokens, 85 predictions, memory 384;
               pretrain512b8 = the same at batch 8, the original README's largest XLNet-Base
               batch at 512 tokens on a 16 GB GPU; not hf_torch: it needs ~26 GB there)
  contenders  ours_fp32      xlnet_tf, float32
              ours_bf16      xlnet_tf, keras mixed_bfloat16 policy
              ours_xla       xlnet_tf, float32, tf.function(jit_compile=True)
              hf_torch       Hugging Face transformers XLNet, PyTorch CPU, 2 threads (side venv)
              kerashub_fp32  keras-hub XLNetBackbone, float32 (side venv; inference only)
              kerashub_bf16  keras-hub XLNetBackbone, mixed_bfloat16 (inference only)
              (optional: ours_recompute = ours_fp32 with XLNetConfig(recompute=True))

It also measures the 4096^3 tf.matmul peak in float32 and bfloat16 (at the start of each
round) and reports each forward's achieved fraction of it, and checks that our
mixed_bfloat16 logits stay within 2e-2 (relative to their scale) of our float32 logits on the
same weights and inputs.

    python bench/bench_compare.py --json bench_compare.json   # all: ~7 min idle, 25+ busy
    python bench/bench_compare.py --tasks infer128 --contenders ours_fp32,hf_torch --runs 3

Side environments: see bench/README.md (never project dependencies).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import workloads  # noqa: E402  (NumPy only: every worker environment can import it)
from workloads import BASE, log  # noqa: E402

TASKS = {
    "infer128": dict(kind="infer", batch=8, seq_len=128),
    "infer512": dict(kind="infer", batch=8, seq_len=512),
    "pretrain": dict(kind="pretrain", batch=4, seq_len=128, num_predict=19, mem_len=96,
                     reuse_len=64),
    "finetune": dict(kind="finetune", batch=8, seq_len=128),
    "pretrain512": dict(kind="pretrain", batch=4, seq_len=512, num_predict=85, mem_len=384,
                        reuse_len=256),
    "pretrain512b8": dict(kind="pretrain", batch=8, seq_len=512, num_predict=85, mem_len=384,
                          reuse_len=256),
}
DEFAULT_TASKS = ("infer128", "infer512", "pretrain", "finetune")
INFER = ("infer128", "infer512")
TRAIN = ("pretrain", "finetune", "pretrain512", "pretrain512b8")

CONTENDERS = {
    "ours_fp32": dict(env="ours", precision="float32", jit=False, tasks=INFER + TRAIN),
    "ours_bf16": dict(env="ours", precision="mixed_bfloat16", jit=False, tasks=INFER + TRAIN),
    "ours_xla": dict(env="ours", precision="float32", jit=True, tasks=INFER + TRAIN),
    # 8 x 512 is left out: Hugging Face's step needs 13.2 GB at 4 x 512, ~26 GB at 8 x 512
    "hf_torch": dict(env="hf", precision="float32", jit=False,
                     tasks=INFER + ("pretrain", "finetune", "pretrain512")),
    "kerashub_fp32": dict(env="kh", precision="float32", jit=False, tasks=INFER),
    "kerashub_bf16": dict(env="kh", precision="mixed_bfloat16", jit=False, tasks=INFER),
    "ours_recompute": dict(env="ours", precision="float32", jit=False, recompute=True,
                           tasks=TRAIN),
}
DEFAULT_CONTENDERS = ("ours_fp32", "ours_bf16", "ours_xla", "hf_torch", "kerashub_fp32",
                      "kerashub_bf16")
BASELINE = "hf_torch"
LR = 1e-5  # tiny: the step's cost does not depend on it, and random weights stay sane

NOISE = ("I0000 ", "W0000 ", "WARNING: All log messages", "E0000 ")


# ==================================================================================== workers
# Run as `python bench_compare.py --worker '<json spec>'` in the contender's environment;
# log lines go to stderr, the result is printed as one line `BENCH_RESULT {json}`.

def _emit(result):
    result["peak_rss_mb"] = result.get("peak_rss_mb") or workloads.peak_rss_mb()
    print("BENCH_RESULT " + json.dumps(result), flush=True)


def _finish(spec, times, flops, tokens, extra=None):
    res = dict(spec=spec, **workloads.summarize(times), times_s=times, flops=flops,
               tokens=tokens, peak_rss_mb=workloads.peak_rss_mb(),
               load_average=workloads.load_average())
    res.update(extra or {})
    return res


def worker_matmul(spec):
    import tensorflow as tf
    n = spec["n"]
    out = {}
    for name, dtype in (("float32", tf.float32), ("bfloat16", tf.bfloat16)):
        a = tf.cast(tf.random.normal([n, n], seed=1), dtype)
        b = tf.cast(tf.random.normal([n, n], seed=2), dtype)
        mm = tf.function(lambda a, b: tf.matmul(a, b))
        times = workloads.time_calls(lambda: mm(a, b).numpy(), spec["warmup"] + 1, spec["runs"])
        flop = 2.0 * n ** 3
        out[name] = dict(gflop_per_s_median=flop / statistics.median(times) / 1e9,
                         gflop_per_s_best=flop / min(times) / 1e9, times_s=times)
        log("matmul", f"{name} {n}^3: median {out[name]['gflop_per_s_median']:.0f} GFLOP/s, "
            f"best {out[name]['gflop_per_s_best']:.0f}")
    return dict(spec=spec, matmul=out, tensorflow=tf.__version__,
                load_average=workloads.load_average())


def _bf16_logit_check(seed):
    """Our LM logits under mixed_bfloat16 vs float32, same weights and inputs (8 x 128)."""
    import tensorflow as tf
    import xlnet_tf
    import bench_model
    config = bench_model.base_config()
    m16 = xlnet_tf.XLNetLMModel(config)                      # global policy: mixed_bfloat16
    m32 = xlnet_tf.XLNetLMModel(config, dtype="float32")
    src = m16.original_name_map()
    for name, var in m32.original_name_map().items():
        var.assign(src[name])
    data = workloads.classification_batch(seed, 8, 128)
    inputs = bench_model.to_tensors(data, ("input_ids", "seg_ids", "input_mask"))
    l16 = tf.function(lambda x: m16(x, training=False)["logits"])(inputs).numpy()
    l32 = tf.function(lambda x: m32(x, training=False)["logits"])(inputs).numpy()
    import numpy as np
    diff = np.abs(l16.astype(np.float64) - l32)
    scale = float(np.abs(l32).max())
    return dict(max_abs_diff=float(diff.max()), logit_scale=scale,
                max_rel_to_scale=float(diff.max() / scale),
                rms_rel=float(np.sqrt((diff ** 2).mean() / (l32.astype(np.float64) ** 2).mean())),
                policy=m16.dtype_policy.name, reference_policy=m32.dtype_policy.name)


def worker_ours(spec):
    sys.path.insert(0, REPO)
    import bench_model
    bench_model.set_precision(spec["precision"])
    import tensorflow as tf
    t, jit, tag = spec["task"], spec["jit"], f"{spec['contender']} {spec['task_name']}"
    log(tag, f"TensorFlow {tf.__version__}, policy {spec['precision']}, jit {jit}")
    if t["kind"] == "infer":
        fn, info = bench_model.make_forward(t["batch"], t["seq_len"], jit_compile=jit,
                                            seed=spec["seed"])
    elif t["kind"] == "finetune":
        fn, info = bench_model.make_finetune_step(t["batch"], t["seq_len"], jit_compile=jit,
                                                  optimizer="adamw", seed=spec["seed"])
    else:
        fn, info = bench_model.make_pretrain_step(
            t["batch"], t["seq_len"], t["num_predict"], t["mem_len"], t["reuse_len"],
            jit_compile=jit, optimizer="adamw", seed=spec["seed"],
            recompute=spec.get("recompute", False))
    log(tag, f"first call (trace{'+XLA compile' if jit else ''}) {info['first_call_s']:.1f} s")
    times, rss = workloads.time_steady(fn, spec["warmup"], spec["runs"], tag=tag)
    res = _finish(spec, times, info["flops"], info["tokens"],
                  dict(rss, first_call_s=info["first_call_s"],
                       optimizer_class=info.get("optimizer_class"),
                       tensorflow=tf.__version__))
    if spec.get("bf16_check"):
        info.clear()
        res["bf16_check"] = _bf16_logit_check(spec["seed"])
        log(tag, f"mixed_bfloat16 vs float32 logits: max |diff| / max |logit| = "
            f"{res['bf16_check']['max_rel_to_scale']:.2e}")
    return res


def worker_kerashub(spec):
    import keras
    keras.mixed_precision.set_global_policy(spec["precision"])
    import keras_hub
    import tensorflow as tf
    from keras_hub.models import XLNetBackbone
    t, tag = spec["task"], f"{spec['contender']} {spec['task_name']}"
    log(tag, f"keras-hub {keras_hub.__version__}, TensorFlow {tf.__version__}, policy "
        f"{spec['precision']}")
    model = XLNetBackbone(vocabulary_size=BASE["n_token"], num_layers=BASE["n_layer"],
                          num_heads=BASE["n_head"], hidden_dim=BASE["d_model"],
                          intermediate_dim=BASE["d_inner"], dropout=0.0)
    data = workloads.classification_batch(spec["seed"], t["batch"], t["seq_len"])
    inputs = {"token_ids": tf.constant(data["input_ids"]),
              "segment_ids": tf.constant(data["seg_ids"]),
              "padding_mask": tf.constant((1.0 - data["input_mask"]).astype("int32"))}
    forward = tf.function(lambda x: model(x, training=False))
    t0 = time.perf_counter()
    forward(inputs).numpy()
    first = time.perf_counter() - t0
    times, rss = workloads.time_steady(lambda: forward(inputs).numpy(), spec["warmup"],
                                       spec["runs"], tag=tag)
    return _finish(spec, times, workloads.forward_flops(t["batch"], t["seq_len"]),
                   t["batch"] * t["seq_len"],
                   dict(rss, first_call_s=first, keras_hub=keras_hub.__version__,
                        parameters=int(model.count_params())))


def worker_hf(spec):
    import numpy as np
    import torch
    import transformers
    from transformers import (XLNetConfig, XLNetForSequenceClassification, XLNetLMHeadModel,
                              XLNetModel)
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    t, tag = spec["task"], f"{spec['contender']} {spec['task_name']}"
    log(tag, f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers "
        f"{transformers.__version__}")
    train = t["kind"] != "infer"
    common = dict(vocab_size=BASE["n_token"], d_model=BASE["d_model"], n_layer=BASE["n_layer"],
                  n_head=BASE["n_head"], d_inner=BASE["d_inner"], ff_activation="gelu_new",
                  dropout=0.1 if train else 0.0)
    long = lambda a: torch.from_numpy(np.asarray(a, np.int64))  # noqa: E731
    flt = lambda a: torch.from_numpy(np.asarray(a, np.float32))  # noqa: E731

    if t["kind"] == "infer":
        model = XLNetModel(XLNetConfig(**common, mem_len=None)).eval()
        data = workloads.classification_batch(spec["seed"], t["batch"], t["seq_len"])
        kwargs = dict(input_ids=long(data["input_ids"]), token_type_ids=long(data["seg_ids"]),
                      input_mask=flt(data["input_mask"]), use_mems=False)

        def fn():
            with torch.inference_mode():
                model(**kwargs).last_hidden_state.numpy()
        flops = workloads.forward_flops(t["batch"], t["seq_len"])
    elif t["kind"] == "finetune":
        model = XLNetForSequenceClassification(
            XLNetConfig(**common, mem_len=None, num_labels=2, summary_type="last",
                        summary_use_proj=True, summary_activation="tanh",
                        summary_last_dropout=0.1)).train()
        data = workloads.classification_batch(spec["seed"], t["batch"], t["seq_len"])
        kwargs = dict(input_ids=long(data["input_ids"]), token_type_ids=long(data["seg_ids"]),
                      input_mask=flt(data["input_mask"]), labels=long(data["labels"]),
                      use_mems=False)
        opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01, eps=1e-6)

        def fn():
            loss = model(**kwargs).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss.item()
        flops = workloads.train_step_flops(workloads.forward_flops(t["batch"], t["seq_len"]))
    else:
        model = XLNetLMHeadModel(XLNetConfig(**common, mem_len=t["mem_len"],
                                             reuse_len=t["reuse_len"])).train()
        data = workloads.pretrain_batch(spec["seed"], t["batch"], t["seq_len"], t["num_predict"])
        mems = [torch.from_numpy(np.ascontiguousarray(m.transpose(1, 0, 2)))   # [M, B, d]
                for m in workloads.random_mems(spec["seed"] + 1, BASE["n_layer"], t["batch"],
                                               t["mem_len"], BASE["d_model"])]
        state = {"mems": mems}
        kwargs = dict(input_ids=long(data["input_ids"]), token_type_ids=long(data["seg_ids"]),
                      perm_mask=flt(data["perm_mask"]),
                      target_mapping=flt(data["target_mapping"]), labels=long(data["target"]),
                      use_mems=True)
        opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01, eps=1e-6)

        def fn():
            out = model(**kwargs, mems=state["mems"])
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            out.loss.item()
            state["mems"] = [m.detach() for m in out.mems]
        flops = workloads.train_step_flops(workloads.forward_flops(
            t["batch"], t["seq_len"], mem_len=t["mem_len"], num_predict=t["num_predict"],
            lm_head=True))
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times, rss = workloads.time_steady(fn, spec["warmup"], spec["runs"], tag=tag)
    return _finish(spec, times, flops, t["batch"] * t["seq_len"],
                   dict(rss, first_call_s=first, torch=torch.__version__,
                        transformers=transformers.__version__,
                        threads=torch.get_num_threads()))


def run_worker(spec_json):
    spec = json.loads(spec_json)
    env = spec["env"]
    if env == "matmul":
        result = worker_matmul(spec)
    elif env == "ours":
        result = worker_ours(spec)
    elif env == "kh":
        result = worker_kerashub(spec)
    elif env == "hf":
        result = worker_hf(spec)
    else:
        raise ValueError(f"unknown worker environment {env!r}")
    _emit(result)
    return 0


# ==================================================================================== driver

def launch(python, spec, timeout):
    """Run one worker subprocess; relay its log lines; return its result dict (or an error)."""
    cmd = [python, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    t0 = time.time()
    result, tail = None, []
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, cwd=REPO)
    except OSError as e:
        return dict(spec=spec, error=f"cannot start {python}: {e}")
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("BENCH_RESULT "):
                result = json.loads(line[len("BENCH_RESULT "):])
            elif line.startswith("["):
                print("    " + line, flush=True)
            elif line and not line.startswith(NOISE):
                tail = (tail + [line])[-30:]
            if time.time() - t0 > timeout:
                proc.kill()
                return dict(spec=spec, error=f"timed out after {timeout} s")
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode != 0 or result is None:
        return dict(spec=spec, error=f"worker exited with {proc.returncode}: " +
                    " | ".join(tail[-8:]))
    result["wall_s"] = time.time() - t0
    return result


def derive(result, peaks):
    """Add throughput, GFLOP/s and fraction-of-peak numbers to a worker result."""
    if "error" in result:
        return result
    t = result["spec"]["task"]
    med = result["median_s"]
    result["tokens_per_s"] = result["tokens"] / med
    result["steps_per_s"] = 1.0 / med
    result["gflop_per_s"] = result["flops"] / med / 1e9
    if peaks:
        own = "bfloat16" if result["spec"]["precision"] == "mixed_bfloat16" else "float32"
        result["fraction_of_fp32_peak"] = result["gflop_per_s"] / peaks["float32"]
        result["fraction_of_own_peak"] = result["gflop_per_s"] / peaks[own]
    result["kind"] = t["kind"]
    return result


def aggregate(rounds):
    """Median over rounds of each (contender, task)'s median time; max of peak RSS."""
    out = {}
    for key, results in rounds.items():
        ok = [r for r in results if "error" not in r]
        if not ok:
            out[key] = results[-1]
            continue
        best = dict(ok[0])
        best["median_s"] = statistics.median(r["median_s"] for r in ok)
        best["min_s"] = min(r["min_s"] for r in ok)
        best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ok)
        steady = [r.get("steady_peak_rss_mb") for r in ok]
        best["steady_peak_rss_mb"] = None if None in steady else max(steady)
        best["round_medians_s"] = [r["median_s"] for r in ok]
        checks = [r["bf16_check"] for r in ok if "bf16_check" in r]
        if checks:
            best["bf16_check"] = checks[-1]
        out[key] = best
    return out


def print_tables(agg, tasks, contenders, peaks):
    for task in tasks:
        rows = [(c, agg.get((c, task))) for c in contenders if (c, task) in agg]
        if not rows:
            continue
        t = TASKS[task]
        shape = f"{t['batch']}x{t['seq_len']}"
        if t["kind"] == "pretrain":
            shape += f", P={t['num_predict']}, M={t['mem_len']}"
        base = agg.get((BASELINE, task))
        base_ok = base is not None and "error" not in base
        print(f"\n{task} ({t['kind']}, batch {shape})")
        print(f"  {'contender':<15} {'median s':>9} {'best s':>8} {'tokens/s':>9} "
              f"{'steps/s':>8} {'x ' + BASELINE:>11} {'(best)':>7} {'GFLOP/s':>8} "
              f"{'%fp32pk':>8} {'%ownpk':>7} {'RSS MiB':>8} {'steady':>7} {'load':>5}")
        for c, r in rows:
            if "error" in r:
                print(f"  {c:<15} ERROR: {r['error'][:150]}")
                continue
            nan = float("nan")
            ratio = r["tokens_per_s"] / base["tokens_per_s"] if base_ok else nan
            ratio_best = base["min_s"] / r["min_s"] if base_ok else nan
            f32 = 100 * r.get("fraction_of_fp32_peak", nan)
            own = 100 * r.get("fraction_of_own_peak", nan)
            load = (r.get("load_average") or [nan])[0]
            steady = r.get("steady_peak_rss_mb") or nan
            print(f"  {c:<15} {r['median_s']:>9.3f} {r['min_s']:>8.3f} "
                  f"{r['tokens_per_s']:>9.0f} {r['steps_per_s']:>8.3f} {ratio:>11.2f} "
                  f"{ratio_best:>7.2f} {r['gflop_per_s']:>8.1f} {f32:>7.1f}% {own:>6.1f}% "
                  f"{r['peak_rss_mb']:>8.0f} {steady:>7.0f} {load:>5.1f}")
    print("\n  x hf_torch: median-based throughput ratio; (best): ratio of the fastest calls; "
          "RSS MiB: peak RSS of the worker process, first (tracing) call included; steady: "
          "peak over the timed calls only; load: 1-min load average when the worker "
          "finished (2 CPUs)")
    if peaks:
        print(f"\nmatmul 4096^3 peak: float32 {peaks['float32']:.0f} GFLOP/s, bfloat16 "
              f"{peaks['bfloat16']:.0f} GFLOP/s (best round median)")


def targets(agg, peaks):
    """The issue-7 targets as (description, measured, goal, met) rows."""
    def get(c, t):
        r = agg.get((c, t))
        return r if r is not None and "error" not in r else None

    rows = []

    def ratio(desc, c, ref, t, goal, higher=True, key="tokens_per_s"):
        a, b = get(c, t), get(ref, t)
        if a and b and a.get(key) and b.get(key):
            v = a[key] / b[key]
            rows.append((desc, v, goal, v >= goal if higher else v <= goal))

    for t in INFER:
        ratio(f"{t}: ours_fp32 / hf_torch", "ours_fp32", "hf_torch", t, 1.25)
        ratio(f"{t}: ours_fp32 / kerashub_fp32", "ours_fp32", "kerashub_fp32", t, 1.0)
        ratio(f"{t}: ours_bf16 / hf_torch", "ours_bf16", "hf_torch", t, 3.0)
        ratio(f"{t}: ours_bf16 / kerashub_bf16", "ours_bf16", "kerashub_bf16", t, 1.3)
    ratio("pretrain: ours_fp32 / hf_torch steps/s", "ours_fp32", "hf_torch", "pretrain", 1.2)
    ratio("pretrain: ours_bf16 / hf_torch steps/s", "ours_bf16", "hf_torch", "pretrain", 2.5)
    for c in ("ours_fp32", "ours_bf16"):
        ratio(f"pretrain: peak RSS {c} / hf_torch", c, "hf_torch", "pretrain", 1.0,
              higher=False, key="peak_rss_mb")
        ratio(f"pretrain: steady peak RSS {c} / hf_torch", c, "hf_torch", "pretrain", 1.0,
              higher=False, key="steady_peak_rss_mb")
    for t in ("pretrain512", "pretrain512b8"):
        ratio(f"{t}: peak RSS ours_recompute / ours_fp32", "ours_recompute", "ours_fp32",
              t, 0.5, higher=False, key="peak_rss_mb")
        ratio(f"{t}: steady peak RSS ours_recompute / ours_fp32", "ours_recompute",
              "ours_fp32", t, 0.5, higher=False, key="steady_peak_rss_mb")
    r = get("ours_fp32", "infer128")
    if r and peaks:
        rows.append(("infer128: ours_fp32 fraction of fp32 matmul peak",
                     r["fraction_of_fp32_peak"], 0.6, r["fraction_of_fp32_peak"] >= 0.6))
    r = get("ours_bf16", "infer128")
    if r and "bf16_check" in r:
        v = r["bf16_check"]["max_rel_to_scale"]
        rows.append(("bf16 logits: max|diff| / max|fp32 logit|", v, 0.02, v <= 0.02))
    return rows



def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS),
                        help=f"comma-separated, from {list(TASKS)}")
    parser.add_argument("--contenders", default=",".join(DEFAULT_CONTENDERS),
                        help=f"comma-separated, from {list(CONTENDERS)}")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the whole alternation (the median over rounds is reported)")
    parser.add_argument("--runs", type=int, default=3, help="timed calls per worker (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls after the first")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for hf_torch")
    parser.add_argument("--matmul_n", type=int, default=4096)
    parser.add_argument("--python_hf", default="/work/venvs/hf/bin/python",
                        help="python of the Hugging Face side environment")
    parser.add_argument("--python_kh", default="/work/venvs/kh/bin/python",
                        help="python of the keras-hub side environment")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per worker")
    parser.add_argument("--no_bf16_check", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write everything to this file")
    args = parser.parse_args(argv)
    if args.worker is not None:
        return run_worker(args.worker)

    tasks = [s for s in args.tasks.split(",") if s]
    contenders = [s for s in args.contenders.split(",") if s]
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        parser.error(f"--tasks: unknown {bad}; known: {list(TASKS)}")
    bad = [c for c in contenders if c not in CONTENDERS]
    if bad:
        parser.error(f"--contenders: unknown {bad}; known: {list(CONTENDERS)}")
    for flag in ("rounds", "runs", "threads", "matmul_n", "timeout"):
        if getattr(args, flag) <= 0:
            parser.error(f"--{flag} must be positive")
    pythons = {"ours": sys.executable, "matmul": sys.executable, "hf": args.python_hf,
               "kh": args.python_kh}
    for c in list(contenders):
        py = pythons[CONTENDERS[c]["env"]]
        if not os.path.exists(py):
            flag = "--python_hf" if CONTENDERS[c]["env"] == "hf" else "--python_kh"
            log("bench_compare", f"skipping {c}: {py} does not exist (create the side "
                f"environment as bench/README.md says, or pass {flag})")
            contenders.remove(c)

    start = time.time()
    log("bench_compare", f"python {platform.python_version()}, {os.cpu_count()} CPUs, load "
        f"average {workloads.load_average()}; tasks {tasks}; contenders {contenders}")
    rounds, peaks_runs = {}, []
    for rnd in range(args.rounds):
        log("bench_compare", f"round {rnd + 1}/{args.rounds}: matmul peak")
        mm = launch(sys.executable, dict(env="matmul", n=args.matmul_n, runs=args.runs + 2,
                                         warmup=args.warmup), args.timeout)
        if "error" in mm:
            log("bench_compare", f"matmul peak failed: {mm['error']}")
        else:
            peaks_runs.append(mm)
        for task in tasks:
            order = [c for c in contenders if task in CONTENDERS[c]["tasks"]]
            if rnd % 2:
                order.reverse()  # alternate who goes first
            for c in order:
                spec = dict(CONTENDERS[c], contender=c, task_name=task, task=TASKS[task],
                            runs=args.runs, warmup=args.warmup, seed=args.seed,
                            threads=args.threads)
                spec["bf16_check"] = (c == "ours_bf16" and task == "infer128"
                                      and not args.no_bf16_check)
                log("bench_compare", f"round {rnd + 1}: {task} / {c} (load average "
                    f"{workloads.load_average()})")
                res = launch(pythons[spec["env"]], spec, args.timeout)
                if "error" in res:
                    log("bench_compare", f"{task} / {c} FAILED: {res['error'][:300]}")
                else:
                    log("bench_compare", f"{task} / {c}: median {res['median_s']:.3f} s, peak "
                        f"RSS {res['peak_rss_mb']:.0f} MiB, worker wall {res['wall_s']:.0f} s")
                rounds.setdefault((c, task), []).append(res)

    peaks = None
    if peaks_runs:
        peaks = {k: max(r["matmul"][k]["gflop_per_s_median"] for r in peaks_runs)
                 for k in ("float32", "bfloat16")}
    agg = aggregate(rounds)
    for key in agg:
        derive(agg[key], peaks)
    load_end = workloads.load_average()
    print(f"\n==== XLNet-base shape, random weights; {os.cpu_count()} CPUs; runs {args.runs}, "
          f"rounds {args.rounds}; load average at end {load_end} ====")
    print_tables(agg, tasks, contenders, peaks)
    target_rows = targets(agg, peaks)
    if target_rows:
        print("\nissue-7 targets (measured in this run):")
        for desc, v, goal, met in target_rows:
            print(f"  {'MET ' if met else 'MISS'} {desc:<52} {v:8.3f}  (goal {goal})")
    per_contender_rss = {}
    for (c, t), r in agg.items():
        if "error" not in r:
            per_contender_rss[c] = max(per_contender_rss.get(c, 0), r["peak_rss_mb"])
    print("\npeak RSS per contender (max over its tasks, MiB): " +
          ", ".join(f"{c} {v:.0f}" for c, v in per_contender_rss.items()))
    print(f"total {time.time() - start:.0f} s")
    if args.json:
        workloads.write_json(args.json, dict(
            benchmark="bench_compare", python=platform.python_version(), cpus=os.cpu_count(),
            load_average_end=load_end, args=vars(args), matmul_peak_gflop_per_s=peaks,
            matmul_runs=peaks_runs, tasks={t: TASKS[t] for t in tasks},
            results=[dict(contender=c, task=t, **r) for (c, t), r in agg.items()],
            all_rounds=[dict(contender=c, task=t, results=v) for (c, t), v in rounds.items()],
            targets=[dict(target=d, measured=v, goal=g, met=m) for d, v, g, m in target_rows],
            peak_rss_per_contender_mb=per_contender_rss))
        log("bench_compare", f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
