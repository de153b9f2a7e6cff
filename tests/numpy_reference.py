"""Float64 NumPy transliteration of the ORIGINAL XLNet forward pass (independent reference).

Why: the xlnet_tf model core is tested against numbers it did not compute itself. The golden
files in tests/golden/ come from Hugging Face; this module recomputes the same outputs from the
equations of the original implementation (``modeling.py`` of the original) and covers what Hugging
Face cannot run (attn_type='uni' with input_mask/perm_mask and batch > 1, `inp_q` without
target_mapping). It needs only NumPy.

Layout: the public functions take batch-major inputs (like xlnet_tf) and the weights under the
ORIGINAL TF1 variable names and layouts (`model/transformer/layer_0/rel_attn/q/kernel`
[d, H, Dh], `.../ff/layer_1/kernel` [d, Di], ...). Internally everything is TIME-MAJOR exactly
as in the original (`[len, bsz, ...]`) so each line can be read next to the original's
functions: masks (``_create_mask`` and the masks of ``transformer_xl``), segments,
positional encoding (``relative_positional_encoding``), the layer (``rel_multihead_attn``,
``rel_attn_core``, ``positionwise_ffn``), ``rel_shift`` (reshape trick), the two streams
(``two_stream_rel_attn``), memory (``_cache_mem``) and the LM logits (``lm_loss``). Masks follow the original's
convention 1 = blocked / padding.

Main entry points: `forward(weights, config, input_ids, ...)` -> output dict with the golden
NPZ names (`hidden`, `query_hidden`, `logits`, `new_mems_{i}`); `load_golden(path)` reads one
golden NPZ; `run_golden_step(golden, k)` recomputes step k of it.
"""
import json

import numpy as np

RUN_DEFAULTS = dict(mem_len=None, reuse_len=None, bi_data=False, clamp_len=-1,
                    same_length=False, attn_type="bi")
MODEL_KEYS = ("n_layer", "d_model", "n_head", "d_head", "d_inner", "ff_activation", "untie_r",
              "n_token")
LAYER_NORM_EPS = 1e-12   # tf.contrib.layers.layer_norm default, used by the original
MASK_BIG = 1e30          # score - 1e30 * mask

T_SCOPE = "model/transformer/"


# ----------------------------------------------------------------------------------------
# Elementary pieces
# ----------------------------------------------------------------------------------------

def gelu(x):
    """The original's GELU: the tanh approximation."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * np.power(x, 3))))


def relu(x):
    return np.maximum(x, 0.0)


def layer_norm(x, gamma, beta, eps=LAYER_NORM_EPS):
    """Normalise over the last axis only (biased variance), then scale and shift."""
    mean = x.mean(axis=-1, keepdims=True)
    var = np.square(x - mean).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def softmax(x, axis):
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


# ----------------------------------------------------------------------------------------
# masks (time-major, 1 = blocked)
# ----------------------------------------------------------------------------------------

def causal_mask(qlen, mlen, same_length):
    """[qlen, klen] float: memory columns 0, strictly-upper triangle of the current block 1.

    same_length additionally blocks the strictly-lower triangle of the first qlen columns, so
    every query sees the same number of keys. Example qlen=3, mlen=1:

        same_length=False      same_length=True
        [0 0 1 1]              [0 0 1 1]
        [0 0 0 1]              [1 0 0 1]
        [0 0 0 0]              [1 1 0 0]
    """
    klen = mlen + qlen
    mask = np.zeros((qlen, klen))                                           # [qlen, klen]
    mask[:, mlen:] = np.triu(np.ones((qlen, qlen)), k=1)
    if same_length:
        mask[:, :qlen] += np.tril(np.ones((qlen, qlen)), k=-1)
    return mask


def build_masks(qlen, mlen, bsz, attn_type="bi", same_length=False, input_mask=None,
                perm_mask=None):
    """Return (attn_mask, non_tgt_mask), each [qlen or 1, klen, bsz or 1, 1] float 0/1, or None.

    Time-major inputs: input_mask [qlen, bsz] (1 = pad), perm_mask [qlen, qlen, bsz]
    (1 = query i may not attend key j). attn_mask is the query-stream mask; non_tgt_mask
    (content stream) is the same with the diagonal (self) always allowed.
    """
    if attn_type == "uni":
        attn_mask = causal_mask(qlen, mlen, same_length)[:, :, None, None]  # [qlen, klen, 1, 1]
    elif attn_type == "bi":
        attn_mask = None
    else:
        raise ValueError(f"attn_type must be 'bi' or 'uni', got {attn_type!r}")

    if input_mask is not None and perm_mask is not None:
        data_mask = input_mask[None] + perm_mask                            # [qlen, qlen, bsz]
    elif input_mask is not None:
        data_mask = input_mask[None]                                        # [1, qlen, bsz]
    elif perm_mask is not None:
        data_mask = perm_mask                                               # [qlen, qlen, bsz]
    else:
        data_mask = None

    if data_mask is not None:
        mems_visible = np.zeros((data_mask.shape[0], mlen, bsz))            # [rows, mlen, bsz]
        data_mask = np.concatenate([mems_visible, data_mask], axis=1)       # [rows, klen, bsz]
        if attn_mask is None:
            attn_mask = data_mask[:, :, :, None]                            # [rows, klen, bsz, 1]
        else:
            attn_mask = attn_mask + data_mask[:, :, :, None]                # [qlen, klen, bsz, 1]

    if attn_mask is None:
        return None, None
    attn_mask = (attn_mask > 0).astype(np.float64)
    self_allowed = np.concatenate([np.zeros((qlen, mlen)), -np.eye(qlen)], axis=1)  # [qlen, klen]
    non_tgt_mask = ((attn_mask + self_allowed[:, :, None, None]) > 0).astype(np.float64)
    return attn_mask, non_tgt_mask                                          # [.., klen, .., 1]


# ----------------------------------------------------------------------------------------
# segments, positions, rel_shift, memory
# ----------------------------------------------------------------------------------------

def segment_matrix(seg_id, mlen):
    """seg_id [qlen, bsz] int -> one-hot [qlen, klen, bsz, 2]; channel 1 = different segment.

    Memory positions count as segment 0.
    """
    bsz = seg_id.shape[1]
    cat_ids = np.concatenate([np.zeros((mlen, bsz), seg_id.dtype), seg_id], axis=0)  # [klen, bsz]
    differ = (seg_id[:, None, :] != cat_ids[None, :, :]).astype(np.int64)   # [qlen, klen, bsz]
    return np.eye(2)[differ]                                                # [qlen, klen, bsz, 2]


def positional_embedding(pos_seq, inv_freq):
    """[rlen] positions -> [rlen, d]: all sines first, then all cosines (not interleaved)."""
    sinusoid = np.outer(pos_seq, inv_freq)                                  # [rlen, d/2]
    return np.concatenate([np.sin(sinusoid), np.cos(sinusoid)], axis=-1)    # [rlen, d]


def relative_positional_encoding(qlen, klen, d_model, bsz, attn_type="bi", bi_data=False,
                                 clamp_len=-1):
    """[rlen, bsz, d] relative position encodings (rlen = klen+qlen for bi, klen+1 for uni)."""
    freq_seq = np.arange(0, d_model, 2.0)                                   # [d/2]
    inv_freq = 1.0 / (10000.0 ** (freq_seq / d_model))                      # [d/2]
    if attn_type == "bi":
        beg, end = klen, -qlen
    elif attn_type == "uni":
        beg, end = klen, -1
    else:
        raise ValueError(f"attn_type must be 'bi' or 'uni', got {attn_type!r}")
    fwd_pos_seq = np.arange(beg, end, -1.0)                                 # [rlen]
    if clamp_len is not None and clamp_len > 0:
        fwd_pos_seq = np.clip(fwd_pos_seq, -clamp_len, clamp_len)
    fwd = positional_embedding(fwd_pos_seq, inv_freq)[:, None, :]           # [rlen, 1, d]
    if not bi_data:
        return np.tile(fwd, (1, bsz, 1))                                    # [rlen, bsz, d]
    if bsz % 2:
        raise ValueError(f"bi_data needs an even batch size, got {bsz}")
    bwd_pos_seq = np.arange(-beg, -end, 1.0)                                # [rlen]
    if clamp_len is not None and clamp_len > 0:
        bwd_pos_seq = np.clip(bwd_pos_seq, -clamp_len, clamp_len)
    bwd = positional_embedding(bwd_pos_seq, inv_freq)[:, None, :]           # [rlen, 1, d]
    return np.concatenate([np.tile(fwd, (1, bsz // 2, 1)),
                           np.tile(bwd, (1, bsz // 2, 1))], axis=1)         # [rlen, bsz, d]


def rel_shift(x, klen):
    """The original's reshape trick on the first two axes: [qlen, rlen, ...] -> [qlen, klen, ...].

    Closed form: out[i, j] = x[i, qlen - i + j].
    """
    qlen, rlen = x.shape[0], x.shape[1]
    rest = x.shape[2:]
    x = np.reshape(x, (rlen, qlen) + rest)                                  # [rlen, qlen, ...]
    x = x[1:]                                                               # [rlen-1, qlen, ...]
    x = np.reshape(x, (qlen, rlen - 1) + rest)                              # [qlen, rlen-1, ...]
    return x[:, :klen]                                                      # [qlen, klen, ...]


def cache_mem(curr_out, prev_mem, mem_len, reuse_len):
    """New memory from a layer's INPUT curr_out [qlen, bsz, d]; None when mem_len is 0/None."""
    if not mem_len:
        return None
    if reuse_len is not None and reuse_len > 0:
        curr_out = curr_out[:reuse_len]
    if prev_mem is None:
        return curr_out[-mem_len:].copy()                                   # [<=mem_len, bsz, d]
    return np.concatenate([prev_mem, curr_out], axis=0)[-mem_len:].copy()   # [<=mem_len, bsz, d]


# ----------------------------------------------------------------------------------------
# attention core, post-attention, FFN
# ----------------------------------------------------------------------------------------

def rel_attn_core(q_head, k_head_h, v_head_h, k_head_r, seg_mat, seg_embed, r_w_bias, r_r_bias,
                  r_s_bias, attn_mask, scale):
    """Relative attention for queries q_head [qlen, bsz, H, Dh] -> attn_vec [qlen, bsz, H, Dh]."""
    klen = k_head_h.shape[0]
    ac = np.einsum("ibnd,jbnd->ijbn", q_head + r_w_bias, k_head_h)          # [qlen, klen, bsz, H]
    bd = np.einsum("ibnd,jbnd->ijbn", q_head + r_r_bias, k_head_r)          # [qlen, rlen, bsz, H]
    bd = rel_shift(bd, klen)                                                # [qlen, klen, bsz, H]
    if seg_mat is None:
        ef = 0.0
    else:
        ef = np.einsum("ibnd,snd->ibns", q_head + r_s_bias, seg_embed)      # [qlen, bsz, H, 2]
        ef = np.einsum("ijbs,ibns->ijbn", seg_mat, ef)                      # [qlen, klen, bsz, H]
    score = (ac + bd + ef) * scale                                          # [qlen, klen, bsz, H]
    if attn_mask is not None:
        score = score - MASK_BIG * attn_mask                                # mask [.., klen, .., 1]
    prob = softmax(score, axis=1)                                           # [qlen, klen, bsz, H]
    return np.einsum("ijbn,jbnd->ibnd", prob, v_head_h)                     # [qlen, bsz, H, Dh]


def post_attention(h, attn_vec, o_kernel, gamma, beta):
    """LayerNorm(h + o(attn_vec)); o/kernel is [d, H, Dh], contracted on its last two axes."""
    attn_out = np.einsum("ibnd,hnd->ibh", attn_vec, o_kernel)               # [len, bsz, d]
    return layer_norm(attn_out + h, gamma, beta)


def positionwise_ffn(x, lw, activation):
    """LayerNorm(x + W2 act(W1 x + b1) + b2) with [in, out] kernels."""
    act = {"gelu": gelu, "relu": relu}[activation]
    inner = act(x @ lw["ff/layer_1/kernel"] + lw["ff/layer_1/bias"])        # [len, bsz, Di]
    out = inner @ lw["ff/layer_2/kernel"] + lw["ff/layer_2/bias"]           # [len, bsz, d]
    return layer_norm(out + x, lw["ff/LayerNorm/gamma"], lw["ff/LayerNorm/beta"])


# ----------------------------------------------------------------------------------------
# Full forward
# ----------------------------------------------------------------------------------------

def _full_config(config):
    cfg = dict(RUN_DEFAULTS)
    cfg.update(config)
    missing = [k for k in MODEL_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"config lacks model keys {missing}")
    if cfg["ff_activation"] not in ("gelu", "relu"):
        raise ValueError(f"ff_activation must be 'gelu' or 'relu', got {cfg['ff_activation']!r}")
    return cfg


def _r_bias(weights, name, i, untie_r):
    value = weights[T_SCOPE + name]
    return value[i] if untie_r else value                                   # [H, Dh]


def forward(weights, config, input_ids, seg_ids=None, input_mask=None, perm_mask=None,
            target_mapping=None, mems=None, inp_q=None):
    """Run the original transformer_xl + lm_loss logits in float64.

    Args (batch-major, like xlnet_tf):
      weights: {original TF variable name: array} (see module docstring).
      config: dict with the eight xlnet_config.json keys plus optional run options
        mem_len, reuse_len, bi_data, clamp_len, same_length, attn_type.
      input_ids [B, T] int; seg_ids [B, T] int or None; input_mask [B, T] (1 = pad) or None;
      perm_mask [B, T, T] (1 = may not attend) or None; target_mapping [B, P, T] or None;
      mems: list of n_layer arrays [B, M, d] or None; inp_q [B, T] (1 = predicted position),
        switches on the query stream without target_mapping (ignored for the stream's input
        when target_mapping is given, as in the original).
    Returns: {'hidden' [B, T, d] (final content stream), 'query_hidden' [B, P or T, d] (if the
      query stream runs), 'logits' [B, P or T, V] (query stream if it runs, else content),
      'new_mems_{i}' [B, <=mem_len, d] (if mem_len > 0)}.
    """
    cfg = _full_config(config)
    L, d, Dh = cfg["n_layer"], cfg["d_model"], cfg["d_head"]
    f64 = lambda a: None if a is None else np.asarray(a, np.float64)  # noqa: E731

    inp_k = np.asarray(input_ids).T                                         # [qlen, bsz]
    qlen, bsz = inp_k.shape
    seg_id = None if seg_ids is None else np.asarray(seg_ids).T             # [qlen, bsz]
    input_mask_t = None if input_mask is None else f64(input_mask).T        # [qlen, bsz]
    perm_mask_t = None if perm_mask is None else f64(perm_mask).transpose(1, 2, 0)  # [qlen, qlen, bsz]
    tgt_map = (None if target_mapping is None
               else f64(target_mapping).transpose(1, 2, 0))                 # [P, qlen, bsz]
    inp_q_t = None if inp_q is None else f64(inp_q).T                       # [qlen, bsz]
    if mems is not None and len(mems) != L:
        raise ValueError(f"mems must hold n_layer={L} arrays, got {len(mems)}")
    mems_t = (None if mems is None
              else [f64(m).transpose(1, 0, 2) for m in mems])                # L x [mlen, bsz, d]
    mlen = 0 if mems_t is None else mems_t[0].shape[0]
    klen = mlen + qlen

    attn_mask, non_tgt_mask = build_masks(qlen, mlen, bsz, cfg["attn_type"], cfg["same_length"],
                                          input_mask_t, perm_mask_t)

    table = weights[T_SCOPE + "word_embedding/lookup_table"]                # [V, d]
    word_emb_k = table[inp_k]                                               # [qlen, bsz, d]
    two_stream = tgt_map is not None or inp_q_t is not None
    output_h = word_emb_k
    output_g = None
    if two_stream:
        mask_emb = weights[T_SCOPE + "mask_emb/mask_emb"]                   # [1, 1, d]
        if tgt_map is not None:
            output_g = np.tile(mask_emb, (tgt_map.shape[0], bsz, 1))        # [P, bsz, d]
        else:
            q_ext = inp_q_t[:, :, None]                                     # [qlen, bsz, 1]
            output_g = q_ext * mask_emb + (1.0 - q_ext) * word_emb_k        # [qlen, bsz, d]

    seg_mat = None if seg_id is None else segment_matrix(seg_id, mlen)      # [qlen, klen, bsz, 2]
    pos_emb = relative_positional_encoding(qlen, klen, d, bsz, cfg["attn_type"], cfg["bi_data"],
                                           cfg["clamp_len"])                # [rlen, bsz, d]
    scale = 1.0 / np.sqrt(Dh)

    new_mems = []
    for i in range(L):
        prefix = f"{T_SCOPE}layer_{i}/"
        lw = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        mem_i = None if mems_t is None else mems_t[i]
        new_mems.append(cache_mem(output_h, mem_i, cfg["mem_len"], cfg["reuse_len"]))

        r_w = _r_bias(weights, "r_w_bias", i, cfg["untie_r"])               # [H, Dh]
        r_r = _r_bias(weights, "r_r_bias", i, cfg["untie_r"])               # [H, Dh]
        if seg_mat is not None:
            r_s = _r_bias(weights, "r_s_bias", i, cfg["untie_r"])           # [H, Dh]
            seg_embed = weights[T_SCOPE + "seg_embed"][i]                   # [2, H, Dh]
        else:
            r_s = seg_embed = None
        gamma, beta = lw["rel_attn/LayerNorm/gamma"], lw["rel_attn/LayerNorm/beta"]
        wq, wk, wv, wr, wo = (lw[f"rel_attn/{n}/kernel"] for n in ("q", "k", "v", "r", "o"))

        cat = output_h if mem_i is None else np.concatenate([mem_i, output_h], axis=0)  # [klen, bsz, d]
        k_head_h = np.einsum("ibh,hnd->ibnd", cat, wk)                      # [klen, bsz, H, Dh]
        v_head_h = np.einsum("ibh,hnd->ibnd", cat, wv)                      # [klen, bsz, H, Dh]
        k_head_r = np.einsum("ibh,hnd->ibnd", pos_emb, wr)                  # [rlen, bsz, H, Dh]
        core = lambda q, mask: rel_attn_core(q, k_head_h, v_head_h, k_head_r, seg_mat,  # noqa: E731
                                             seg_embed, r_w, r_r, r_s, mask, scale)

        q_head_h = np.einsum("ibh,hnd->ibnd", output_h, wq)                 # [qlen, bsz, H, Dh]
        attn_h = post_attention(output_h, core(q_head_h, non_tgt_mask), wo, gamma, beta)

        if output_g is not None:
            q_head_g = np.einsum("ibh,hnd->ibnd", output_g, wq)             # [P or qlen, bsz, H, Dh]
            if tgt_map is not None:
                q_pos = np.einsum("mbnd,mlb->lbnd", q_head_g, tgt_map)      # [qlen, bsz, H, Dh]
                vec = core(q_pos, attn_mask)                                # [qlen, bsz, H, Dh]
                vec_g = np.einsum("lbnd,mlb->mbnd", vec, tgt_map)           # [P, bsz, H, Dh]
            else:
                vec_g = core(q_head_g, attn_mask)                           # [qlen, bsz, H, Dh]
            attn_g = post_attention(output_g, vec_g, wo, gamma, beta)
            output_g = positionwise_ffn(attn_g, lw, cfg["ff_activation"])
        output_h = positionwise_ffn(attn_h, lw, cfg["ff_activation"])       # [qlen, bsz, d]

    output = output_g if output_g is not None else output_h
    logits = (np.einsum("ibh,vh->ibv", output, table)
              + weights["model/lm_loss/bias"])                              # [len, bsz, V]

    result = {"hidden": output_h.transpose(1, 0, 2),                        # [B, T, d]
              "logits": logits.transpose(1, 0, 2)}                          # [B, P or T, V]
    if output_g is not None:
        result["query_hidden"] = output_g.transpose(1, 0, 2)                # [B, P or T, d]
    for i, m in enumerate(new_mems):
        if m is not None:
            result[f"new_mems_{i}"] = m.transpose(1, 0, 2)                  # [B, <=mem_len, d]
    return result


# ----------------------------------------------------------------------------------------
# Golden files
# ----------------------------------------------------------------------------------------

def load_golden(path):
    """Read one tests/golden/*.npz into {'config', 'description', 'weights', 'steps'}.

    steps[k] = {'in': {input_ids, seg_ids?, input_mask?, perm_mask?, target_mapping?,
    mems_{i}?}, 'out': {hidden, query_hidden?, logits, new_mems_{i}?}}.
    """
    with np.load(path) as z:
        if "config_json" not in z.files:
            raise ValueError(f"{path}: not a golden file (no 'config_json' entry)")
        config = json.loads(str(z["config_json"]))
        description = str(z["description"]) if "description" in z.files else ""
        weights = {k[2:]: z[k] for k in z.files if k.startswith("w/")}
        steps = {}
        for k in z.files:
            if not k.startswith("s"):
                continue
            step, kind, name = k.split("/", 2)
            steps.setdefault(int(step[1:]), {"in": {}, "out": {}})[kind][name] = z[k]
    if sorted(steps) != list(range(len(steps))):
        raise ValueError(f"{path}: steps are not numbered 0..{len(steps) - 1}: {sorted(steps)}")
    return {"config": config, "description": description, "weights": weights,
            "steps": [steps[k] for k in range(len(steps))]}


def step_kwargs(golden, k):
    """forward() keyword arguments for step k of a loaded golden file."""
    inp = golden["steps"][k]["in"]
    L = golden["config"]["n_layer"]
    mems = [inp[f"mems_{i}"] for i in range(L)] if "mems_0" in inp else None
    return dict(input_ids=inp["input_ids"], seg_ids=inp.get("seg_ids"),
                input_mask=inp.get("input_mask"), perm_mask=inp.get("perm_mask"),
                target_mapping=inp.get("target_mapping"), mems=mems)


def run_golden_step(golden, k):
    """Recompute step k of a loaded golden file with this reference."""
    return forward(golden["weights"], golden["config"], **step_kwargs(golden, k))
