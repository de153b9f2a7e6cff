"""Framework-free pieces shared by the benchmarks: the XLNet-base shape, seeded NumPy inputs,
FLOP counts, timing and peak-memory helpers.

NumPy only, so the same inputs can be fed to our TensorFlow model and to the PyTorch /
keras-hub workers that bench_compare.py runs in their own side environments.
"""
import json
import os
import resource
import statistics
import tempfile
import time

import numpy as np

# XLNet-base (xlnet_cased_L-12_H-768_A-12/xlnet_config.json).
BASE = dict(n_layer=12, d_model=768, n_head=12, d_head=64, d_inner=3072, n_token=32000)

# Special ids / segment ids of the original data layout (docs/CONTRACTS.md).
CLS_ID, SEP_ID, PAD_ID = 3, 4, 5
SEG_A, SEG_B, SEG_CLS, SEG_PAD = 0, 1, 2, 4


def log(tag, msg):
    print(f"[{tag}] {msg}", flush=True)


# ---------------------------------------------------------------------------------- inputs

def classification_batch(seed, batch, seq_len, n_token=BASE["n_token"], num_labels=2):
    """A SEP B SEP CLS rows as the original classifier builds them: left padding on every
    other row (0, T/8, 0, T/4, ...), segment ids A=0 B=1 CLS=2 PAD=4, input_mask 1 = pad.

    Returns {input_ids [B, T] int32, seg_ids [B, T] int32, input_mask [B, T] float32,
    labels [B] int32}."""
    rng = np.random.default_rng(seed)
    ids = np.full((batch, seq_len), PAD_ID, np.int32)
    seg = np.full((batch, seq_len), SEG_PAD, np.int32)
    mask = np.ones((batch, seq_len), np.float32)
    for b in range(batch):
        pad = 0 if b % 2 == 0 else (seq_len // 8) * (1 + (b // 2) % 2)
        n = seq_len - pad - 3
        len_a = n // 2
        words = rng.integers(9, n_token, size=n)
        ids[b, pad:] = np.concatenate([words[:len_a], [SEP_ID], words[len_a:], [SEP_ID, CLS_ID]])
        seg[b, pad:] = [SEG_A] * (len_a + 1) + [SEG_B] * (n - len_a + 1) + [SEG_CLS]
        mask[b, pad:] = 0.0
    labels = rng.integers(0, num_labels, size=batch).astype(np.int32)
    return dict(input_ids=ids, seg_ids=seg, input_mask=mask, labels=labels)


def pretrain_batch(seed, batch, seq_len, num_predict, n_token=BASE["n_token"]):
    """Two-stream pretraining inputs: segments A (first half) and B, no padding, `num_predict`
    targets per row with a random factorisation order (the original's _local_perm rule:
    non-targets see no target, a target sees the targets before it in the order).

    Returns {input_ids, seg_ids [B, T] int32, perm_mask [B, T, T] float32,
    target_mapping [B, P, T] float32, target [B, P] int32}."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(9, n_token, size=(batch, seq_len)).astype(np.int32)
    seg = np.zeros((batch, seq_len), np.int32)
    seg[:, seq_len // 2:] = SEG_B
    perm = np.zeros((batch, seq_len, seq_len), np.float32)
    tmap = np.zeros((batch, num_predict, seq_len), np.float32)
    target = np.zeros((batch, num_predict), np.int32)
    for b in range(batch):
        pos = np.sort(rng.choice(seq_len, size=num_predict, replace=False))
        rank = np.full(seq_len, -1)
        rank[pos] = rng.permutation(num_predict)
        perm[b] = (rank[None, :] >= rank[:, None]) & (rank >= 0)[None, :]
        tmap[b, np.arange(num_predict), pos] = 1.0
        target[b] = ids[b, pos]
    return dict(input_ids=ids, seg_ids=seg, perm_mask=perm, target_mapping=tmap, target=target)


def random_mems(seed, n_layer, batch, mem_len, d_model):
    """n_layer x [B, M, d] float32 memory (batch-major, as our model takes it)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch, mem_len, d_model)).astype(np.float32)
            for _ in range(n_layer)]


# ---------------------------------------------------------------------------------- FLOPs

def forward_flops(batch, seq_len, mem_len=0, num_predict=None, lm_head=False, shape=None,
                  attn_type="bi"):
    """Multiply-add FLOPs (2 per MAC) of the matrix products of one forward pass.

    Per layer, with N = B*T queries, K = M + T keys, R = K + T relative positions ('bi'),
    A = H*Dh: projections q (N), k, v (B*K), o (N) each 2*rows*d*A; the r projection of the
    positional encoding 2*R*d*A (computed once, not per example); attention scores ac
    2*N*K*A and bd 2*N*R*A (before the relative shift), the segment term 2*N*2*A,
    prob x v 2*N*K*A; feed-forward 2*2*N*d*d_inner. The query stream (num_predict = P slots)
    adds the same per-query terms for B*P queries with the same K and R. The LM head adds
    2*rows*d*V. Element-wise work (softmax, LayerNorm, GELU, masks) is not counted.
    """
    s = shape or BASE
    d, A, di, L, V = s["d_model"], s["n_head"] * s["d_head"], s["d_inner"], s["n_layer"], \
        s["n_token"]
    K = mem_len + seq_len
    R = K + (seq_len if attn_type == "bi" else 1)

    def per_stream(rows):
        return (2 * rows * d * A          # q
                + 2 * rows * K * A * 2    # ac, prob x v
                + 2 * rows * R * A        # bd
                + 2 * rows * 2 * A        # ef (segment term)
                + 2 * rows * A * d        # o
                + 4 * rows * d * di)      # feed-forward

    per_layer = (2 * 2 * batch * K * d * A  # k, v
                 + 2 * R * d * A            # r
                 + per_stream(batch * seq_len))
    out_rows = batch * seq_len
    if num_predict:
        per_layer += per_stream(batch * num_predict)
        out_rows = batch * num_predict
    total = L * per_layer
    if lm_head:
        total += 2 * out_rows * d * V
    return float(total)


def train_step_flops(forward):
    """Forward + backward ~ 3x the forward's matrix-product FLOPs (backward = 2 products
    per forward product)."""
    return 3.0 * forward


# ---------------------------------------------------------------------------------- timing

def time_calls(fn, warmup, runs, tag=None):
    """Call fn() warmup times untimed, then `runs` times timed; returns the list of seconds.
    fn must return only after its work is finished (convert a result to NumPy)."""
    for i in range(warmup):
        t0 = time.perf_counter()
        fn()
        if tag:
            log(tag, f"warm-up {i + 1}/{warmup}: {time.perf_counter() - t0:.3f} s")
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if tag:
            log(tag, f"run {i + 1}/{runs}: {times[-1]:.3f} s")
    return times


def summarize(times):
    return dict(median_s=statistics.median(times), min_s=min(times), max_s=max(times),
                runs=len(times))


def peak_rss_mb():
    """Peak resident set size of this process in MiB (VmHWM, else ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss():
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux: write 5 to
    /proc/self/clear_refs); True if it worked.  Lets a worker report the peak of its
    steady-state calls apart from the peak of its first (tracing, compiling) call."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def release_heap():
    """Return freed heap pages to the OS (glibc malloc_trim); False where unavailable."""
    try:
        import ctypes
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def time_steady(fn, warmup, runs, tag=None):
    """`time_calls` after a first call already made: records the peak RSS so far (the
    first call's included), returns freed heap to the OS, resets the peak and times the
    calls.  Returns (times, {"peak_rss_mb": whole-process peak, "steady_peak_rss_mb":
    peak over the timed calls only, or None where the peak cannot be reset})."""
    first_peak = peak_rss_mb()
    release_heap()
    reset = reset_peak_rss()
    times = time_calls(fn, warmup, runs, tag=tag)
    steady = peak_rss_mb()
    return times, dict(peak_rss_mb=max(first_peak, steady),
                       steady_peak_rss_mb=steady if reset else None)


def load_average():
    try:
        return os.getloadavg()
    except OSError:
        return None


def write_json(path, payload):
    """Write JSON to a temporary name beside `path`, then rename (no partial file)."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_bench_", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
