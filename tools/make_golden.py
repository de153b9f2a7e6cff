"""Write the golden reference cases in tests/golden/*.npz from Hugging Face XLNet.

Why: the xlnet_tf model core must reproduce the ORIGINAL XLNet (zihangdai/xlnet) numerically.
The Hugging Face PyTorch port is an independent implementation that agrees with the original
for everything covered here (backbone + LM head; the name mapping is in docs/model.md).
This tool builds tiny randomly initialised `XLNetLMHeadModel`s, runs eval-mode forwards in
float64 and stores, per case, the weights under their ORIGINAL TF1 variable names and layouts,
the batch-major inputs and the outputs. The xlnet_tf tests (and tests/numpy_reference.py)
read these files without torch.

This is a developer tool, not a project dependency. Run it with the side environment:

    /work/venvs/hf/bin/python tools/make_golden.py            # writes tests/golden/*.npz
    /work/venvs/hf/bin/python tools/make_golden.py --out DIR  # somewhere else

NPZ layout (a contract with the tests; shapes batch-major):
  config_json              0-d str: JSON with n_layer, d_model, n_head, d_head, d_inner,
                           ff_activation ('gelu' = tanh approximation, or 'relu'), untie_r, n_token,
                           mem_len, reuse_len (int or null), bi_data, clamp_len, same_length, attn_type
  description              0-d str: what the case covers
  w/<original name>        every weight, float64, original layout (e.g. ff kernels [in, out])
  s{k}/in/input_ids        [B, T] int32
  s{k}/in/seg_ids          [B, T] int32            (absent: no segment ids were given)
  s{k}/in/input_mask       [B, T] float32, 1 = pad (absent: none)
  s{k}/in/perm_mask        [B, T, T] float32, 1 = query i may NOT attend key j (absent: none)
  s{k}/in/target_mapping   [B, P, T] float32 (absent: content stream only)
  s{k}/in/mems_{i}         [B, M, d] float64 (absent: no memory fed)
  s{k}/out/hidden          [B, T, d] final content stream
  s{k}/out/query_hidden    [B, P, d] final query stream (only with target_mapping)
  s{k}/out/logits          [B, P or T, V] from the query stream if present, else content stream
  s{k}/out/new_mems_{i}    [B, <=mem_len, d] (only when mem_len > 0)
Step k+1 of a multi-step case is fed step k's new mems.
"""
import argparse
import contextlib
import json
import os
import sys
import tempfile

import numpy as np
import torch
from transformers import XLNetConfig, XLNetLMHeadModel

BASE_SEED = 20190619  # arXiv 1906.08237

# Special ids and segment ids used to lay out realistic inputs (values only matter through
# equality for segments; the model treats token ids as plain ids).
CLS_ID, SEP_ID, PAD_ID = 3, 4, 5
SEG_A, SEG_B, SEG_CLS, SEG_PAD = 0, 1, 2, 4

SMALL = dict(n_layer=2, d_model=32, n_head=4, d_head=8, d_inner=64, n_token=120)
MID = dict(n_layer=2, d_model=24, n_head=3, d_head=8, d_inner=40, n_token=80)
TINY3 = dict(n_layer=3, d_model=16, n_head=2, d_head=8, d_inner=24, n_token=50)

RUN_DEFAULTS = dict(mem_len=None, reuse_len=None, bi_data=False, clamp_len=-1,
                    same_length=False, attn_type="bi")

# Each case: model config, run options and a list of steps. A step says how to lay out its
# inputs: `seg` in {None, 'cls', 'pretrain'}, `pad` = left-pad count per row, `perm` =
# (num_predict P, number of real targets) for the two-stream pretraining path, `mems0` =
# feed random memory of this length at step 0 (later steps always get the previous new mems).
CASES = [
    dict(name="plain_gelu_untied",
         description="content stream only, B=3, no segment ids, no mask, no memory; gelu, untie_r",
         model=dict(SMALL, ff_activation="gelu", untie_r=True), run={},
         B=3, T=9, steps=[dict(seg=None)]),
    dict(name="cls_padding_gelu_untied",
         description="classification layout A SEP B SEP CLS, different left padding per row "
                     "(input_mask), segment ids A=0 B=1 CLS=2 PAD=4; gelu, untie_r; d_model=24, 3 heads",
         model=dict(MID, ff_activation="gelu", untie_r=True), run={},
         B=3, T=10, steps=[dict(seg="cls", pad=[0, 2, 5])]),
    dict(name="cls_padding_relu_tied",
         description="classification layout with left padding [3, 0, 1, 5] and segment ids; "
                     "relu, untie_r=false (shared r_w/r_r/r_s bias [H, Dh]); d_model=24, 3 heads",
         model=dict(MID, ff_activation="relu", untie_r=False), run={},
         B=4, T=10, steps=[dict(seg="cls", pad=[3, 0, 1, 5])]),
    dict(name="mems_3steps_gelu_untied",
         description="three consecutive segments with memory: mem_len=5, reuse_len=4, T=6; step 0 "
                     "without memory, steps 1 and 2 fed the previous new mems; segment ids",
         model=dict(SMALL, ff_activation="gelu", untie_r=True), run=dict(mem_len=5, reuse_len=4),
         B=3, T=6, steps=[dict(seg="pretrain"), dict(seg="pretrain"), dict(seg="pretrain")]),
    dict(name="pretrain_perm_gelu_untied",
         description="two-stream pretraining forward: perm_mask from a factorization order, "
                     "target_mapping P=4 (3 targets + 1 zero row) < T=10, segment ids, no memory",
         model=dict(SMALL, ff_activation="gelu", untie_r=True), run={},
         B=2, T=10, steps=[dict(seg="pretrain", perm=(4, 3))]),
    dict(name="pretrain_perm_mems_relu_tied",
         description="two-stream pretraining with memory over two steps: random (non-zero) memory "
                     "M=6 at step 0, mem_len=6, reuse_len=4, T=8, P=3; relu, untie_r=false; "
                     "d_model=24, 3 heads",
         model=dict(MID, ff_activation="relu", untie_r=False),
         run=dict(mem_len=6, reuse_len=4),
         B=2, T=8, steps=[dict(seg="pretrain", perm=(3, 3), mems0=6),
                          dict(seg="pretrain", perm=(3, 2))]),
    dict(name="pretrain_bidata_clamp_mems_3layer",
         description="pretraining setting: bi_data (B=4, rows 2,3 backward positions), clamp_len=5, "
                     "two-stream perm/target_mapping, memory (mem_len=4, reuse_len=3) over two steps; "
                     "3 layers, d_model=16, 2 heads, gelu, untie_r",
         model=dict(TINY3, ff_activation="gelu", untie_r=True),
         run=dict(mem_len=4, reuse_len=3, bi_data=True, clamp_len=5),
         B=4, T=7, steps=[dict(seg="pretrain", perm=(3, 2), mems0=4),
                          dict(seg="pretrain", perm=(3, 3))]),
    dict(name="bidata_padding_relu_untied",
         description="bi_data content stream (B=4, second half backward positions) with left "
                     "padding and segment ids; relu, untie_r; d_model=24, 3 heads",
         model=dict(MID, ff_activation="relu", untie_r=True), run=dict(bi_data=True),
         B=4, T=8, steps=[dict(seg="cls", pad=[0, 1, 3, 0])]),
    dict(name="clamp_gelu_tied",
         description="clamp_len=3 (< T) content stream with padding and segment ids; gelu, "
                     "untie_r=false; d_model=24, 3 heads",
         model=dict(MID, ff_activation="gelu", untie_r=False), run=dict(clamp_len=3),
         B=2, T=9, steps=[dict(seg="cls", pad=[2, 0])]),
    dict(name="uni_same_length_mems",
         description="attn_type='uni', same_length=True, memory mem_len=4 over two steps, B=2, "
                     "no padding (HF limitation); 3 layers, d_model=16, relu, untie_r=false",
         model=dict(TINY3, ff_activation="relu", untie_r=False),
         run=dict(attn_type="uni", same_length=True, mem_len=4),
         B=2, T=5, steps=[dict(seg="pretrain"), dict(seg="pretrain")]),
    dict(name="uni_perm_padding_b1",
         description="attn_type='uni' (same_length=False) with input_mask, perm_mask and "
                     "target_mapping, B=1 (HF cannot run uni with masks for B>1); gelu, untie_r; "
                     "d_model=24, 3 heads",
         model=dict(MID, ff_activation="gelu", untie_r=True), run=dict(attn_type="uni"),
         B=1, T=8, steps=[dict(seg="cls", pad=[2], perm=(3, 2))]),
]


def log(msg):
    print(f"[make_golden] {msg}", flush=True)


# ----------------------------------------------------------------------------------------
# Weights: drawn under the ORIGINAL names, then loaded into HF through the mapping.
# ----------------------------------------------------------------------------------------

def make_weights(rng, m):
    """Random, non-trivial float64 weights under the original TF variable names.

    Scales keep activations O(1) so softmaxes are not saturated (a saturated softmax would make
    the goldens insensitive to score errors). No value is exactly 0 or 1.
    """
    L, d, H, Dh, Di, V = (m["n_layer"], m["d_model"], m["n_head"], m["d_head"], m["d_inner"],
                          m["n_token"])
    n = lambda *shape, s=1.0: rng.standard_normal(shape) * s  # noqa: E731
    w = {}
    t = "model/transformer/"
    w[t + "word_embedding/lookup_table"] = n(V, d)
    w[t + "mask_emb/mask_emb"] = n(1, 1, d)
    rshape = (L, H, Dh) if m["untie_r"] else (H, Dh)
    for b in ("r_w_bias", "r_r_bias", "r_s_bias"):
        w[t + b] = n(*rshape, s=0.5)
    w[t + "seg_embed"] = n(L, 2, H, Dh, s=0.5)
    for i in range(L):
        p = f"{t}layer_{i}/"
        for k in ("q", "k", "v", "r"):
            w[p + f"rel_attn/{k}/kernel"] = n(d, H, Dh, s=d ** -0.5)
        w[p + "rel_attn/o/kernel"] = n(d, H, Dh, s=(H * Dh) ** -0.5)
        w[p + "rel_attn/LayerNorm/gamma"] = 1.0 + n(d, s=0.2)
        w[p + "rel_attn/LayerNorm/beta"] = n(d, s=0.2)
        w[p + "ff/layer_1/kernel"] = n(d, Di, s=d ** -0.5)
        w[p + "ff/layer_1/bias"] = n(Di, s=0.2)
        w[p + "ff/layer_2/kernel"] = n(Di, d, s=Di ** -0.5)
        w[p + "ff/layer_2/bias"] = n(d, s=0.2)
        w[p + "ff/LayerNorm/gamma"] = 1.0 + n(d, s=0.2)
        w[p + "ff/LayerNorm/beta"] = n(d, s=0.2)
    w["model/lm_loss/bias"] = n(V, s=0.5)
    return w


def hf_name_map(m):
    """{hf parameter name: (original name, converter original->hf)} (Hugging Face's names -> the original's TF1 names)."""
    L = m["n_layer"]
    t = "model/transformer/"
    same = lambda a: a  # noqa: E731
    out = {
        "transformer.word_embedding.weight": (t + "word_embedding/lookup_table", same),
        "transformer.mask_emb": (t + "mask_emb/mask_emb", same),
        "lm_loss.bias": ("model/lm_loss/bias", same),
    }
    for i in range(L):
        h = f"transformer.layer.{i}."
        p = f"{t}layer_{i}/"
        for k in ("q", "k", "v", "r", "o"):
            out[h + f"rel_attn.{k}"] = (p + f"rel_attn/{k}/kernel", same)
        out[h + "rel_attn.layer_norm.weight"] = (p + "rel_attn/LayerNorm/gamma", same)
        out[h + "rel_attn.layer_norm.bias"] = (p + "rel_attn/LayerNorm/beta", same)
        out[h + "ff.layer_1.weight"] = (p + "ff/layer_1/kernel", np.transpose)
        out[h + "ff.layer_1.bias"] = (p + "ff/layer_1/bias", same)
        out[h + "ff.layer_2.weight"] = (p + "ff/layer_2/kernel", np.transpose)
        out[h + "ff.layer_2.bias"] = (p + "ff/layer_2/bias", same)
        out[h + "ff.layer_norm.weight"] = (p + "ff/LayerNorm/gamma", same)
        out[h + "ff.layer_norm.bias"] = (p + "ff/LayerNorm/beta", same)
        for b in ("r_w_bias", "r_r_bias", "r_s_bias"):
            if m["untie_r"]:
                out[h + f"rel_attn.{b}"] = (t + b, lambda a, i=i: a[i])
            else:
                out[h + f"rel_attn.{b}"] = (t + b, same)  # one shared array for every layer
        out[h + "rel_attn.seg_embed"] = (t + "seg_embed", lambda a, i=i: a[i])
    return out


def build_hf_model(m, run, w):
    """A float64, eval-mode HF XLNetLMHeadModel whose every parameter comes from `w`."""
    act = {"gelu": "gelu_new", "relu": "relu"}[m["ff_activation"]]  # HF 'gelu' is exact erf
    cfg = XLNetConfig(vocab_size=m["n_token"], d_model=m["d_model"], n_layer=m["n_layer"],
                      n_head=m["n_head"], d_head=m["d_head"], d_inner=m["d_inner"],
                      ff_activation=act, dropout=0.0, mem_len=run["mem_len"],
                      reuse_len=run["reuse_len"], bi_data=run["bi_data"],
                      clamp_len=run["clamp_len"], same_length=run["same_length"],
                      attn_type=run["attn_type"])
    model = XLNetLMHeadModel(cfg).double().eval()
    params = dict(model.named_parameters())
    mapping = hf_name_map(m)
    missing = set(params) - set(mapping)
    if missing:
        raise RuntimeError(f"HF parameters without an original name: {sorted(missing)}")
    with torch.no_grad():
        for hf_name, (orig, conv) in mapping.items():
            value = torch.from_numpy(np.ascontiguousarray(conv(w[orig])))
            if tuple(params[hf_name].shape) != tuple(value.shape):
                raise RuntimeError(f"{hf_name}: HF shape {tuple(params[hf_name].shape)} vs "
                                   f"{orig} converted {tuple(value.shape)}")
            params[hf_name].copy_(value)
    if model.lm_loss.weight.data_ptr() != model.transformer.word_embedding.weight.data_ptr():
        raise RuntimeError("lm_loss.weight is not tied to the word embedding")
    _patch_float64_positions(model.transformer)
    return model


def export_original(model, m):
    """HF -> original names (the reverse direction), used to check the mapping round trip."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    L = m["n_layer"]
    t = "model/transformer/"
    w = {t + "word_embedding/lookup_table": sd["transformer.word_embedding.weight"],
         t + "mask_emb/mask_emb": sd["transformer.mask_emb"],
         "model/lm_loss/bias": sd["lm_loss.bias"]}
    for b in ("r_w_bias", "r_r_bias", "r_s_bias"):
        per_layer = np.stack([sd[f"transformer.layer.{i}.rel_attn.{b}"] for i in range(L)])
        if m["untie_r"]:
            w[t + b] = per_layer
        else:
            if not np.array_equal(per_layer, np.broadcast_to(per_layer[0], per_layer.shape)):
                raise RuntimeError(f"untie_r=false but HF layers hold different {b}")
            w[t + b] = per_layer[0]
    w[t + "seg_embed"] = np.stack([sd[f"transformer.layer.{i}.rel_attn.seg_embed"] for i in range(L)])
    for i in range(L):
        h = f"transformer.layer.{i}."
        p = f"{t}layer_{i}/"
        for k in ("q", "k", "v", "r", "o"):
            w[p + f"rel_attn/{k}/kernel"] = sd[h + f"rel_attn.{k}"]
        w[p + "rel_attn/LayerNorm/gamma"] = sd[h + "rel_attn.layer_norm.weight"]
        w[p + "rel_attn/LayerNorm/beta"] = sd[h + "rel_attn.layer_norm.bias"]
        w[p + "ff/layer_1/kernel"] = sd[h + "ff.layer_1.weight"].T
        w[p + "ff/layer_1/bias"] = sd[h + "ff.layer_1.bias"]
        w[p + "ff/layer_2/kernel"] = sd[h + "ff.layer_2.weight"].T
        w[p + "ff/layer_2/bias"] = sd[h + "ff.layer_2.bias"]
        w[p + "ff/LayerNorm/gamma"] = sd[h + "ff.layer_norm.weight"]
        w[p + "ff/LayerNorm/beta"] = sd[h + "ff.layer_norm.bias"]
    return w


@contextlib.contextmanager
def _tensor_float_is_double():
    saved = torch.Tensor.float
    torch.Tensor.float = torch.Tensor.double
    try:
        yield
    finally:
        torch.Tensor.float = saved


def _patch_float64_positions(transformer):
    """Make HF's own relative_positional_encoding run in float64.

    HF builds the position sequence and inverse frequencies with `.float()` (float32) whatever
    the model dtype; in a float64 model that would make the goldens only float32-exact (and the
    two-stream path would mix dtypes). We run HF's unchanged method with `.float()` meaning
    `.double()` for the duration of the call.
    """
    method = transformer.relative_positional_encoding

    def wrapped(*args, **kwargs):
        with _tensor_float_is_double():
            pos_emb = method(*args, **kwargs)
        if pos_emb.dtype != torch.float64:
            raise RuntimeError(f"positional encoding is {pos_emb.dtype}, expected float64")
        return pos_emb

    transformer.relative_positional_encoding = wrapped


# ----------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------

def _word_ids(rng, n, V):
    """Ordinary token ids (avoid the special ids 0..8 so CLS/SEP/PAD stay recognisable)."""
    return rng.integers(9, V, size=n)


def cls_row(rng, T, pad, V):
    """Classification layout: [PAD]*pad A SEP B SEP CLS (CLS at the end, left padding)."""
    body = T - pad - 3
    if body < 2:
        raise ValueError(f"row too short: T={T}, pad={pad}")
    a = int(rng.integers(1, body))
    b = body - a
    ids = np.concatenate([np.full(pad, PAD_ID), _word_ids(rng, a, V), [SEP_ID],
                          _word_ids(rng, b, V), [SEP_ID], [CLS_ID]])
    seg = np.concatenate([np.full(pad, SEG_PAD), np.full(a + 1, SEG_A), np.full(b + 1, SEG_B),
                          [SEG_CLS]])
    return ids, seg


def pretrain_row(rng, T, V):
    """Pretraining layout: A SEP B SEP CLS with segments A+SEP=0, B+SEP=1, CLS=2."""
    return cls_row(rng, T, 0, V)


def perm_row(rng, ids, num_predict, n_targets, pad):
    """perm_mask [T, T] and target_mapping [P, T] from a random factorization order.

    Follows the rules of the original's `_local_perm`: context tokens have rank -1 and are
    seen by everyone; targets are chosen among non-functional real tokens; functional tokens
    (SEP/CLS) are permuted with the targets; a target cannot see itself, others can.
    Padding positions are treated as context here (input_mask hides them anyway).
    """
    T = len(ids)
    func = np.isin(ids, [SEP_ID, CLS_ID])
    candidates = np.flatnonzero(~func & (np.arange(T) >= pad))
    targets = np.sort(rng.choice(candidates, size=n_targets, replace=False))
    is_tgt = np.zeros(T, bool)
    is_tgt[targets] = True
    masked_or_func = is_tgt | func
    rank = rng.permutation(T).astype(np.int64)
    rev = np.where(masked_or_func, rank, -1)
    self_rev = np.where(is_tgt, rev, rev + 1)
    perm = ((self_rev[:, None] <= rev[None, :]) & masked_or_func[None, :]).astype(np.float32)
    tm = np.zeros((num_predict, T), np.float32)
    tm[np.arange(n_targets), targets] = 1.0
    return perm, tm


def make_step_inputs(rng, case, step, m):
    B, T, V = case["B"], case["T"], m["n_token"]
    pads = step.get("pad") or [0] * B
    ids, segs, perms, tms = [], [], [], []
    for b in range(B):
        if step["seg"] is None:
            row_ids, row_seg = _word_ids(rng, T, V), None
        elif step["seg"] == "cls":
            row_ids, row_seg = cls_row(rng, T, pads[b], V)
        else:
            row_ids, row_seg = pretrain_row(rng, T, V)
        ids.append(row_ids)
        segs.append(row_seg)
        if step.get("perm"):
            p, tm = perm_row(rng, row_ids, *step["perm"], pads[b])
            perms.append(p)
            tms.append(tm)
    inp = {"input_ids": np.stack(ids).astype(np.int32)}                      # [B, T]
    if step["seg"] is not None:
        inp["seg_ids"] = np.stack(segs).astype(np.int32)                     # [B, T]
    if step.get("pad"):
        inp["input_mask"] = (np.arange(T)[None, :] < np.array(pads)[:, None]).astype(np.float32)
    if step.get("perm"):
        inp["perm_mask"] = np.stack(perms)                                   # [B, T, T]
        inp["target_mapping"] = np.stack(tms)                                # [B, P, T]
    return inp


# ----------------------------------------------------------------------------------------
# Running HF
# ----------------------------------------------------------------------------------------

def run_hf(model, m, run, inp, mems):
    """One eval forward; returns the output dict in the NPZ layout (batch-major)."""
    L = m["n_layer"]
    use_mems = bool(run["mem_len"])
    kwargs = dict(input_ids=torch.from_numpy(inp["input_ids"].astype(np.int64)),
                  use_mems=use_mems, output_hidden_states=True, return_dict=True)
    if "seg_ids" in inp:
        kwargs["token_type_ids"] = torch.from_numpy(inp["seg_ids"].astype(np.int64))
    for key in ("input_mask", "perm_mask", "target_mapping"):
        if key in inp:
            kwargs[key] = torch.from_numpy(inp[key].astype(np.float64))
    if mems is not None:
        kwargs["mems"] = [torch.from_numpy(np.ascontiguousarray(mm.transpose(1, 0, 2)))
                          for mm in mems]                                    # L x [M, B, d]

    captured = {}
    last_layer = model.transformer.layer[L - 1]
    hook = last_layer.register_forward_hook(
        lambda mod, args, outputs: captured.__setitem__("h", outputs[0].detach().clone()))
    try:
        with torch.no_grad():
            out = model(**kwargs)
    finally:
        hook.remove()

    two_stream = "target_mapping" in inp
    hs = out.hidden_states
    res = {}
    if two_stream:
        if len(hs) != 2 * (L + 1):
            raise RuntimeError(f"expected {2 * (L + 1)} flattened (h, g) hidden states, got {len(hs)}")
        hidden, query_hidden = hs[-2], hs[-1]                                # [B, T, d], [B, P, d]
        if not torch.equal(model.lm_loss(query_hidden), out.logits):
            raise RuntimeError("logits are not lm_loss(final query stream)")
        res["query_hidden"] = query_hidden.numpy()
    else:
        hidden = hs[-1]                                                      # [B, T, d]
        if not torch.equal(model.lm_loss(hidden), out.logits):
            raise RuntimeError("logits are not lm_loss(final content stream)")
    hook_h = captured["h"].permute(1, 0, 2)                                  # [T, B, d] -> [B, T, d]
    if not torch.equal(hook_h, hidden):
        raise RuntimeError("hidden_states content stream differs from the last layer's output_h")
    res["hidden"] = hidden.numpy()
    res["logits"] = out.logits.numpy()
    if use_mems:
        if out.mems is None or len(out.mems) != L:
            raise RuntimeError("HF returned no mems although mem_len > 0")
        for i, mm in enumerate(out.mems):
            res[f"new_mems_{i}"] = mm.numpy().transpose(1, 0, 2).copy()       # [B, M', d]
    elif out.mems is not None:
        raise RuntimeError("HF returned mems although use_mems=False")
    for k, v in res.items():
        if v.dtype != np.float64:
            raise RuntimeError(f"{k} is {v.dtype}, expected float64")
        if not np.all(np.isfinite(v)):
            raise RuntimeError(f"{k} has non-finite values")
    return res


def build_case(index, case):
    rng = np.random.default_rng(BASE_SEED + index)
    torch.manual_seed(BASE_SEED + index)
    m = dict(case["model"])
    run = dict(RUN_DEFAULTS, **case["run"])
    if run["bi_data"] and case["B"] % 2:
        raise ValueError(f"case {case['name']}: bi_data needs an even batch, got B={case['B']}")
    w = make_weights(rng, m)
    model = build_hf_model(m, run, w)
    back = export_original(model, m)
    if sorted(back) != sorted(w) or any(not np.array_equal(back[k], w[k]) for k in w):
        raise RuntimeError(f"case {case['name']}: weight mapping round trip failed")

    arrays = {"config_json": np.array(json.dumps(dict(m, **run), sort_keys=True)),
              "description": np.array(case["description"])}
    for k, v in w.items():
        arrays["w/" + k] = v.astype(np.float64)
    mems = None
    for k, step in enumerate(case["steps"]):
        inp = make_step_inputs(rng, case, step, m)
        if k == 0 and step.get("mems0"):
            mems = [rng.standard_normal((case["B"], step["mems0"], m["d_model"]))
                    for _ in range(m["n_layer"])]                             # L x [B, M, d]
        if mems is not None:
            for i, mm in enumerate(mems):
                inp[f"mems_{i}"] = mm
        out = run_hf(model, m, run, inp, mems)
        for key, v in inp.items():
            arrays[f"s{k}/in/{key}"] = v
        for key, v in out.items():
            arrays[f"s{k}/out/{key}"] = v
        mems = [out[f"new_mems_{i}"] for i in range(m["n_layer"])] if run["mem_len"] else None
    return arrays


def write_npz(path, arrays):
    """Write to a temporary name in the same folder, then rename (no partial files)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp_golden_", suffix=".npz", dir=folder)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; make it an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(here, os.pardir, "tests", "golden"),
                        help="output folder (default: tests/golden in this checkout)")
    parser.add_argument("--only", default=None, help="comma-separated case names to (re)write")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    if only:
        unknown = only - {c["name"] for c in CASES}
        if unknown:
            parser.error(f"--only: unknown case(s) {sorted(unknown)}; known: "
                         f"{[c['name'] for c in CASES]}")
    os.makedirs(args.out, exist_ok=True)
    log(f"torch {torch.__version__}, numpy {np.__version__}, writing to {os.path.abspath(args.out)}")
    total = 0
    for index, case in enumerate(CASES):
        if only and case["name"] not in only:
            continue
        arrays = build_case(index, case)
        path = os.path.join(args.out, case["name"] + ".npz")
        write_npz(path, arrays)
        size = os.path.getsize(path)
        total += size
        log(f"{case['name']}: {len(case['steps'])} step(s), {size / 1024:.0f} KiB")
    log(f"done, {total / 1024:.0f} KiB written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
