"""Every layer and model of the backbone through the shared harness (tests/modeling/harness.py):
config round trip, .keras and SavedModel round trips, float32 / mixed_bfloat16 policies and
a float64 numeric reference (tests/numpy_reference.py).

To add a layer or a head: append one `harness.Case` to CASES."""
import math

import numpy as np
import pytest
import tensorflow as tf

import numpy_reference as ref
from harness import CHECKS, Case, run_check, weights_np
from xlnet_tf.modeling.config import XLNetConfig
from xlnet_tf.modeling.layers import (FeedForward, RelativeAttention, XLNetLayer,
                                      relative_positional_encoding)
from xlnet_tf.modeling.masks import attention_masks, segment_mismatch
from xlnet_tf.modeling.model import XLNetLMModel, XLNetModel

B, T, M, D, H, DH, DI, V = 2, 5, 3, 16, 2, 8, 24, 40
TINY = XLNetConfig(n_layer=2, d_model=D, n_head=H, d_head=DH, d_inner=DI, n_token=V,
                   mem_len=M, dropout=0.0, dropatt=0.0)


def _rng(seed=1):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------ one layer's inputs
def layer_inputs():
    """Content and query streams with memory, biases, segments and a permutation mask."""
    rng = _rng()
    f = lambda *shape: tf.constant(rng.standard_normal(shape), tf.float32)  # noqa: E731
    return {"h": f(B, T, D), "g": f(B, T, D), "mem": f(B, M, D),
            "pos_emb": relative_positional_encoding(T, M + T, D),          # [1, R, d]
            "r_w_bias": f(H, DH), "r_r_bias": f(H, DH), "r_s_bias": f(H, DH),
            "seg_embed": f(2, H, DH),
            "seg_ids": tf.constant([[0, 0, 1, 1, 1], [0, 1, 1, 1, 0]], tf.int32),
            "perm_mask": tf.constant((rng.random((B, T, T)) < 0.4).astype(np.float32))}


def _layer_args(x, dt):
    h, g, mem, pos = (tf.cast(x[k], dt) for k in ("h", "g", "mem", "pos_emb"))
    content_allowed, query_allowed = attention_masks(T, M, None, x["perm_mask"])
    seg = segment_mismatch(x["seg_ids"], M)                                   # [B, T, K]
    return h, g, mem, pos, seg, content_allowed, query_allowed


def attention_call(layer, x):
    h, _, mem, pos, seg, content_allowed, _ = _layer_args(x, layer.compute_dtype)
    (q,) = layer.project(h, ("q",))                                           # [B, H, T, Dh]
    k, v = layer.project(tf.concat([mem, h], axis=1), ("k", "v"))             # [B, H, K, Dh]
    (kr,) = layer.project(pos, ("r",))                                        # [1, H, R, Dh]
    vec = layer.core(q, k, v, kr, x["r_w_bias"], x["r_r_bias"], seg, x["r_s_bias"],
                     x["seg_embed"], content_allowed, T, M + T)
    return layer.post(vec, h)                                                 # [B, T, d]


def two_stream_call(layer, x):
    h, g, mem, pos, seg, content_allowed, query_allowed = _layer_args(x, layer.compute_dtype)
    biases = (x["r_w_bias"], x["r_r_bias"], x["r_s_bias"], x["seg_embed"])
    h_out, g_out = layer(h, g, mem, pos, biases, seg, seg, content_allowed, query_allowed,
                         None, None, training=False)
    return {"h": h_out, "g": g_out}


# ------------------------------------------------------------------ float64 references
def _np_attention(attn, x, stream, mask_kind):
    """One stream of the original's relative attention + post-LN, time-major in float64."""
    w = {n: np.asarray(getattr(attn, f"{n}_kernel"), np.float64) for n in "qkvro"}
    tm = lambda a: np.asarray(a, np.float64).transpose(1, 0, 2)  # noqa: E731  [B,L,d]->[L,B,d]
    h, s, mem = tm(x["h"]), tm(x[stream]), tm(x["mem"])
    cat = np.concatenate([mem, h], axis=0)                                    # [K, B, d]
    pos = np.tile(np.asarray(x["pos_emb"], np.float64)[0][:, None], (1, B, 1))  # [R, B, d]
    proj = lambda a, n: np.einsum("ibh,hnd->ibnd", a, w[n])  # noqa: E731
    attn_mask, non_tgt = ref.build_masks(T, M, B, perm_mask=np.asarray(
        x["perm_mask"], np.float64).transpose(1, 2, 0))
    vec = ref.rel_attn_core(proj(s, "q"), proj(cat, "k"), proj(cat, "v"), proj(pos, "r"),
                            ref.segment_matrix(np.asarray(x["seg_ids"]).T, M),
                            x["seg_embed"], x["r_w_bias"], x["r_r_bias"], x["r_s_bias"],
                            non_tgt if mask_kind == "content" else attn_mask,
                            1.0 / math.sqrt(DH))
    return ref.post_attention(s, vec, w["o"], np.asarray(attn.layer_norm.gamma),
                              np.asarray(attn.layer_norm.beta))               # [T, B, d]


def _ffn_weights(ff):
    return {"ff/layer_1/kernel": np.asarray(ff.kernel_1, np.float64),
            "ff/layer_1/bias": np.asarray(ff.bias_1, np.float64),
            "ff/layer_2/kernel": np.asarray(ff.kernel_2, np.float64),
            "ff/layer_2/bias": np.asarray(ff.bias_2, np.float64),
            "ff/LayerNorm/gamma": np.asarray(ff.layer_norm.gamma, np.float64),
            "ff/LayerNorm/beta": np.asarray(ff.layer_norm.beta, np.float64)}


def attention_reference(layer, x):
    return {"output": _np_attention(layer, x, "h", "content").transpose(1, 0, 2)}


def two_stream_reference(layer, x):
    lw = _ffn_weights(layer.ff)
    out = {}
    for key, stream, kind in (("h", "h", "content"), ("g", "g", "query")):
        a = _np_attention(layer.rel_attn, x, stream, kind)
        out[key] = ref.positionwise_ffn(a, lw, "gelu").transpose(1, 0, 2)
    return out


def ffn_reference(layer, x):
    return {"output": ref.positionwise_ffn(np.asarray(x["x"], np.float64), _ffn_weights(layer),
                                           layer.activation)}


# ------------------------------------------------------------------ models
def model_inputs():
    rng = _rng(2)
    input_mask = np.zeros((B, T), np.float32)
    input_mask[1, -1] = 1.0                                                   # one padded key
    tm = np.zeros((B, 2, T), np.float32)
    tm[:, 0, 1] = tm[:, 1, 3] = 1.0
    return {"input_ids": tf.constant(rng.integers(0, V, (B, T)), tf.int32),
            "seg_ids": tf.constant([[0, 0, 1, 1, 1], [0, 0, 0, 1, 1]], tf.int32),
            "input_mask": tf.constant(input_mask),
            "perm_mask": tf.constant((rng.random((B, T, T)) < 0.4).astype(np.float32)),
            "target_mapping": tf.constant(tm),
            "mems": [tf.constant(rng.standard_normal((B, M, D)), tf.float32)
                     for _ in range(TINY.n_layer)]}


def model_reference(model, x):
    weights = {"model/lm_loss/bias": np.zeros(V), **weights_np(model)}  # the backbone: no head
    out = ref.forward(weights, model.xlnet_config.to_dict(), x["input_ids"],
                      x["seg_ids"], x["input_mask"], x["perm_mask"], x["target_mapping"],
                      x["mems"])
    keys = {"hidden": "hidden", "query_hidden": "query_hidden", "new_mems_0": "new_mems/0",
            "new_mems_1": "new_mems/1"}
    if isinstance(model, XLNetLMModel):
        keys["logits"] = "logits"
    return {ours: out[theirs] for theirs, ours in keys.items()}


MEMS_F32 = {"new_mems/0": "float32", "new_mems/1": "float32"}

CASES = [
    Case("relative_attention",
         build=lambda dt: _built(RelativeAttention(D, H, DH, dtype=dt)),
         inputs=layer_inputs, call=attention_call, reference=attention_reference),
    Case("two_stream_layer",
         build=lambda dt: _built(XLNetLayer(D, H, DH, DI, "gelu", dtype=dt)),
         inputs=layer_inputs, call=two_stream_call, reference=two_stream_reference),
    Case("feed_forward_post_ln",
         build=lambda dt: _built(FeedForward(D, DI, "gelu", dtype=dt)),
         inputs=lambda: {"x": tf.constant(_rng(3).standard_normal((B, T, D)), tf.float32)},
         call=lambda ff, x: ff(x["x"], training=False), reference=ffn_reference),
    Case("xlnet_model", build=lambda dt: XLNetModel(TINY, dtype=dt), inputs=model_inputs,
         reference=model_reference, bf16_dtypes=MEMS_F32, bf16_tol=0.03),
    Case("xlnet_lm_model", build=lambda dt: XLNetLMModel(TINY, dtype=dt), inputs=model_inputs,
         reference=model_reference, bf16_dtypes={**MEMS_F32, "logits": "float32"},
         bf16_tol=0.05),
]


def _built(layer):
    layer.build()
    return layer


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_harness(case, check, tmp_path):
    run_check(case, check, tmp_path)
