"""Keras 3 layers of XLNet: positional encoding, relative attention (content, position and
segment terms), two-stream attention, post-LN feed-forward.

All tensors are batch-major.  Letters in shape comments: B batch, T query length (current
segment), M memory length, K = M + T key length, R relative-position length (K + T for
'bi', K + 1 for 'uni'), P number of predictions, H heads, Dh head size, d model size.

Every weight is created in ``build`` with ``autocast=False`` and cast explicitly to the
compute dtype, so under a mixed policy the master weights stay float32 while matrix
products run in bfloat16/float16; softmax and LayerNorm always run in float32.

The hand-written gradients, the seeded dropout and the recompute machinery live in
``ops.py``; the layers here only call them.
"""
import math

import keras
import tensorflow as tf

from xlnet_tf.modeling.ops import (activation_dropout_dense, dims, dropout, dropout_keep,
                                   dropout_matmul, fold_seed, layer_norm, row_blocks)

NEG_INF = -1e30  # the original masks by subtracting 1e30 (exactly equivalent in float32)


def initializer(config):
    """The original's initializer: N(0, init_std) (plain normal) or U(-init_range, init_range)."""
    if config.init == "uniform":
        return keras.initializers.RandomUniform(-config.init_range, config.init_range)
    return keras.initializers.RandomNormal(stddev=config.init_std)


def relative_positional_encoding(qlen, klen, d_model, attn_type="bi", bi_data=False,
                                 clamp_len=-1, batch_size=None):
    """Sinusoid embedding of relative distances, float32 [1 | B, R, d].

    pos_seq = [klen, klen-1, ..., -qlen+1] ('bi') or [klen, ..., 0] ('uni'), clipped to
    +-clamp_len when clamp_len > 0; embedding = [sin(pos*inv_freq) | cos(pos*inv_freq)]
    (all sines, then all cosines).  With bi_data the first half of the batch gets the
    forward sequence and the second half its negation (the original's ``bi_data``).
    """
    freq_seq = tf.range(0, d_model, 2, dtype=tf.float32)                     # [d/2]
    inv_freq = 1.0 / tf.pow(10000.0, freq_seq / d_model)                     # [d/2]
    end = -qlen if attn_type == "bi" else -1

    def embed(pos_seq):
        if clamp_len is not None and clamp_len > 0:
            pos_seq = tf.clip_by_value(pos_seq, -float(clamp_len), float(clamp_len))
        sinusoid = pos_seq[:, None] * inv_freq[None, :]                       # [R, d/2]
        return tf.concat([tf.sin(sinusoid), tf.cos(sinusoid)], axis=-1)      # [R, d]

    fwd = embed(tf.range(klen, end, -1, dtype=tf.float32))                   # [R, d]
    if not bi_data:
        return fwd[None]                                                      # [1, R, d]
    if batch_size is None or (isinstance(batch_size, int) and batch_size % 2):
        raise ValueError(f"bi_data needs an even batch (forward and backward halves), got "
                         f"batch size {batch_size}")
    bwd = embed(tf.range(-klen, -end, 1, dtype=tf.float32))                  # [R, d]
    half = batch_size // 2
    return tf.concat([tf.tile(fwd[None], [half, 1, 1]),
                      tf.tile(bwd[None], [half, 1, 1])], axis=0)             # [B, R, d]


def rel_shift(x, klen):
    """The original's relative shift on the last two axes of x [B, H, T, R] -> [B, H, T, K].

    Reinterpret as [R, T], drop the first row, reinterpret as [T, R-1], keep K columns; the
    closed form is out[i, j] = x[i, T - i + j].
    """
    # tf.slice rather than python slicing: its gradient is a cheap Pad, while the strided-slice
    # gradient of these [B, H, T, R] tensors dominated the backward pass
    b, h, t, r = dims(x)
    x = tf.slice(tf.reshape(x, [b, h, r, t]), [0, 0, 1, 0], [-1, -1, -1, -1])  # [B, H, R-1, T]
    x = tf.reshape(x, [b, h, t, r - 1])                                       # [B, H, T, R-1]
    return tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, klen])                      # [B, H, T, K]


def gather_shift(x, positions, qlen, klen):
    """Relative shift for queries at arbitrary positions: out[b, h, p, j] =
    x[b, h, p, qlen - positions[b, p] + j]  (x [B, H, P, R] -> [B, H, P, K]).

    Indices outside [0, R) only occur for causally masked entries ('uni'); they are clipped.
    """
    b, h, p, r = dims(x)
    idx = qlen - positions[:, :, None] + tf.range(klen)[None, None, :]       # [B, P, K]
    idx = tf.clip_by_value(idx, 0, r - 1)
    idx = tf.broadcast_to(idx[:, None], [b, h, p, klen])                     # [B, H, P, K]
    return tf.gather(x, idx, batch_dims=3, axis=3)                           # [B, H, P, K]


class _ShapeFreeLayer(keras.layers.Layer):
    """A layer whose weight shapes come from its constructor: ``build()`` needs no input
    shape, so a loaded ``.keras`` file rebuilds it before loading its weights."""

    def get_build_config(self):
        return {"input_shape": None}


@keras.saving.register_keras_serializable(package="xlnet_tf")
class LayerNorm(keras.layers.Layer):
    """LayerNorm over the last axis with the original's epsilon 1e-12 and variable names
    gamma/beta; computed in float32 whatever the policy."""

    def __init__(self, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        dim = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(dim,), initializer="ones",
                                     autocast=False)
        self.beta = self.add_weight(name="beta", shape=(dim,), initializer="zeros",
                                    autocast=False)

    def call(self, x, training=False):
        y = layer_norm(tf.cast(x, tf.float32), tf.convert_to_tensor(self.gamma),
                       tf.convert_to_tensor(self.beta), self.epsilon, training)
        return tf.cast(y, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="xlnet_tf")
class RelativeAttention(_ShapeFreeLayer):
    """Relative multi-head attention of one layer (scope ``layer_{i}/rel_attn``).

    Holds the bias-free projections q, k, v, r, o (each [d, H, Dh], ``o`` contracted on
    its last two axes) and the post-attention LayerNorm.  The r_w/r_r/r_s biases and
    seg_embed live in the model (they are stacked over layers in the checkpoint) and are
    passed in.  The same weights serve the content stream h and the query stream g.

    ``query_chunk``: query rows per block when the content-stream attention is computed
    block by block (recompute mode, see `core`); None = all rows at once.
    """

    def __init__(self, d_model, n_head, d_head, dropout=0.0, dropatt=0.0,
                 kernel_initializer="glorot_uniform", query_chunk=None, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.n_head, self.d_head = d_model, n_head, d_head
        self.dropout_rate, self.dropatt_rate = dropout, dropatt
        self.query_chunk = query_chunk
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.scale = 1.0 / math.sqrt(d_head)
        self.layer_norm = LayerNorm(name="LayerNorm", dtype=self.dtype_policy)

    def build(self, input_shape=None):
        shape = (self.d_model, self.n_head, self.d_head)
        for name in ("q", "k", "v", "r", "o"):
            setattr(self, f"{name}_kernel",
                    self.add_weight(name=f"{name}_kernel", shape=shape,
                                    initializer=self.kernel_initializer, autocast=False))
        self.layer_norm.build((self.d_model,))

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "n_head": self.n_head,
                "d_head": self.d_head, "dropout": self.dropout_rate,
                "dropatt": self.dropatt_rate, "query_chunk": self.query_chunk,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}

    def _w(self, var):
        return tf.cast(var, self.compute_dtype)

    def project(self, x, names, fused=True):
        """Head projections: x [B, L, d] -> one [B, H, L, Dh] tensor per kernel name
        (q, k, v, r).  Fused: one 2-D matmul [B*L, d] x [d, len(names)*H*Dh] for all of
        them (the layout oneDNN runs fastest), then a single transpose to head-major.
        Unfused (training): one matmul per kernel, so the backward pass keeps the kernels
        themselves rather than a concatenated copy (4.5 MB per layer at XLNet-base)."""
        b, l = dims(x)[:2]
        n, h, dh = len(names), self.n_head, self.d_head
        x2 = tf.reshape(x, [-1, self.d_model])                               # [B*L, d]

        def kernel(k):
            return tf.reshape(self._w(getattr(self, f"{k}_kernel")), [self.d_model, h * dh])

        if not fused or n == 1:
            return [tf.transpose(tf.reshape(tf.matmul(x2, kernel(k)), [b, l, h, dh]),
                                 [0, 2, 1, 3]) for k in names]               # n x [B, H, L, Dh]
        w = tf.concat([kernel(k) for k in names], axis=1)                    # [d, n*H*Dh]
        y = tf.matmul(x2, w)                                                 # [B*L, n*H*Dh]
        y = tf.transpose(tf.reshape(y, [b, l, n, h, dh]), [2, 0, 3, 1, 4])   # [n, B, H, L, Dh]
        return tf.unstack(y, num=n, axis=0)                                  # n x [B, H, L, Dh]

    def core(self, q_head, k_head, v_head, kr_head, r_w_bias, r_r_bias, seg_mismatch,
             r_s_bias, seg_embed, allowed, qlen, klen, positions=None, training=False,
             seed=None):
        """Attention vectors for head-major queries q_head [B, H, Tq, Dh] -> [B, H, Tq, Dh]
        (see `core_rows`).  With `query_chunk` set, training, the reshape shift and
        'bi' position encodings (R = T + K), the rows are computed in blocks of
        `query_chunk` queries, each recomputed in the backward pass (`ops.row_blocks`): the
        [B, H, T, K] and [B, H, T, R] intermediates then exist for one block at a time.  The
        dropout mask is drawn once for all rows, so the result is the same as without
        blocks."""
        c = self.query_chunk
        r = kr_head.shape[2]
        if (not training or not c or positions is not None or not isinstance(qlen, int)
                or qlen <= c or not isinstance(klen, int) or r != qlen + klen):
            return self.core_rows(q_head, k_head, v_head, kr_head, r_w_bias, r_r_bias,
                                  seg_mismatch, r_s_bias, seg_embed, allowed, qlen, klen,
                                  positions, training, seed)
        keep = None
        if self.dropatt_rate > 0 and seed is not None:
            keep = dropout_keep(dims(q_head)[:3] + [klen], self.dropatt_rate, seed)
        spans = [(i0, min(c, qlen - i0)) for i0 in range(0, qlen, c)]
        blocks = []
        for i0, n in spans:
            allowed_rows = allowed
            if allowed is not None and allowed.shape[2] != 1:
                allowed_rows = allowed[:, :, i0:i0 + n]
            # rows i0..i0+n need relative positions T - i0 - n .. T - i0 + K - 1 (see
            # rel_shift: out[i, j] = x[i, T - i + j])
            blocks.append(dict(
                n=n, r0=qlen - i0 - n, allowed=allowed_rows,
                seg=None if seg_mismatch is None else seg_mismatch[:, i0:i0 + n],
                keep=None if keep is None else keep[:, :, i0:i0 + n]))

        def run(j, q_rows, k, v, kr, rwb, rrb, rsb, se):
            blk = blocks[j]
            kr_rows = kr[:, :, blk["r0"]:blk["r0"] + blk["n"] + klen]         # [., H, n+K, Dh]
            return self.core_rows(q_rows, k, v, kr_rows, rwb, rrb, blk["seg"], rsb, se,
                                  blk["allowed"], blk["n"], klen, None, training, None,
                                  keep=blk["keep"])                          # [B, H, n, Dh]

        return row_blocks(run, q_head, [k_head, v_head, kr_head, r_w_bias, r_r_bias,
                                        r_s_bias, seg_embed], spans)         # [B, H, T, Dh]

    def core_rows(self, q_head, k_head, v_head, kr_head, r_w_bias, r_r_bias, seg_mismatch,
                  r_s_bias, seg_embed, allowed, qlen, klen, positions=None, training=False,
                  seed=None, keep=None):
        """Attention vectors for head-major queries q_head [B, H, Tq, Dh] -> [B, H, Tq, Dh].

        k_head, v_head [B, H, K, Dh]; kr_head [1|B, H, R, Dh]; seg_mismatch bool [B, Tq, K]
        or None; allowed bool broadcastable to [B, 1, Tq, K] or None; positions [B, Tq]
        int32 (query positions, for the query stream with target_mapping) or None (the
        queries are positions 0..T-1 and the original reshape shift applies).

        score = (ac + bd + ef) / sqrt(Dh) with the biases added to the queries (the original's
        ``rel_attn_core``);
        the scale is folded into the queries so no [B, H, Tq, K] tensor is rescaled.
        """
        dt = self.compute_dtype
        scale = tf.cast(self.scale, dt)
        q = q_head * scale                                                   # [B, H, Tq, Dh]

        def bias(b):                                                         # [H, 1, Dh]
            return (self._w(b) * scale)[:, None, :]

        ac = tf.matmul(q + bias(r_w_bias), k_head, transpose_b=True)         # [B, H, Tq, K]
        bd_raw = tf.matmul(q + bias(r_r_bias), kr_head, transpose_b=True)    # [B, H, Tq, R]
        if positions is None:
            bd = rel_shift(bd_raw, klen)                                      # [B, H, Tq, K]
        else:
            bd = gather_shift(bd_raw, positions, qlen, klen)                  # [B, H, Tq, K]
        score = ac + bd
        if seg_mismatch is not None:
            seg_t = tf.transpose(self._w(seg_embed), [1, 2, 0])               # [H, Dh, 2]
            ef_pre = tf.matmul(q + bias(r_s_bias), seg_t)                     # [B, H, Tq, 2]
            ef = tf.where(seg_mismatch[:, None], ef_pre[..., 1:2],
                          ef_pre[..., 0:1])                                   # [B, H, Tq, K]
            score = score + ef
        score = tf.cast(score, tf.float32)                                   # [B, H, Tq, K]
        if allowed is not None:
            score = tf.where(allowed, score, NEG_INF)
        prob = tf.cast(tf.nn.softmax(score, axis=-1), dt)                     # [B, H, Tq, K]
        return dropout_matmul(prob, v_head, self.dropatt_rate, seed, training,
                              keep=keep)                                  # [B, H, Tq, Dh]

    def post(self, attn_vec, residual, training=False, seed=None):
        """Output projection (o/kernel [d, H, Dh] contracted on H, Dh), dropout, residual and
        post-LN: [B, H, Tq, Dh] -> [B, Tq, d]."""
        b, tq = dims(residual)[:2]
        hd = self.n_head * self.d_head
        vec = tf.reshape(tf.transpose(attn_vec, [0, 2, 1, 3]), [-1, hd])     # [B*Tq, H*Dh]
        wo = tf.reshape(self._w(self.o_kernel), [self.d_model, hd])          # [d, H*Dh]
        out = tf.reshape(tf.matmul(vec, wo, transpose_b=True),
                         [b, tq, self.d_model])                              # [B, Tq, d]
        out = dropout(out, self.dropout_rate, seed, training)
        return self.layer_norm(out + residual, training=training)


@keras.saving.register_keras_serializable(package="xlnet_tf")
class FeedForward(_ShapeFreeLayer):
    """Post-LN position-wise feed-forward (scope ``layer_{i}/ff``): layer_1, act, dropout,
    layer_2, dropout, LayerNorm(x + residual)."""

    def __init__(self, d_model, d_inner, activation="gelu", dropout=0.0,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if activation not in ("gelu", "relu"):
            raise ValueError(f"ff_activation must be 'gelu' or 'relu', got {activation!r}")
        self.d_model, self.d_inner, self.activation = d_model, d_inner, activation
        self.dropout_rate = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.layer_norm = LayerNorm(name="LayerNorm", dtype=self.dtype_policy)

    def build(self, input_shape=None):
        d, di, init = self.d_model, self.d_inner, self.kernel_initializer
        self.kernel_1 = self.add_weight(name="layer_1_kernel", shape=(d, di), initializer=init,
                                        autocast=False)
        self.bias_1 = self.add_weight(name="layer_1_bias", shape=(di,), initializer="zeros",
                                      autocast=False)
        self.kernel_2 = self.add_weight(name="layer_2_kernel", shape=(di, d), initializer=init,
                                        autocast=False)
        self.bias_2 = self.add_weight(name="layer_2_bias", shape=(d,), initializer="zeros",
                                      autocast=False)
        self.layer_norm.build((d,))

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "d_inner": self.d_inner,
                "activation": self.activation, "dropout": self.dropout_rate,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}

    def call(self, x, training=False, seed=None):
        dt = self.compute_dtype
        shape = dims(x)
        x2 = tf.reshape(x, [-1, self.d_model])                              # [B*L, d]
        # 2-D MatMul + BiasAdd + activation: the pattern grappler fuses into one oneDNN op
        y = tf.nn.bias_add(tf.matmul(x2, tf.cast(self.kernel_1, dt)),
                           tf.cast(self.bias_1, dt))                          # [B*L, Di]
        y = activation_dropout_dense(y, self.activation, tf.cast(self.kernel_2, dt),
                                     tf.cast(self.bias_2, dt), self.dropout_rate,
                                     fold_seed(seed, 0), training)           # [B*L, d]
        y = dropout(tf.reshape(y, shape), self.dropout_rate, fold_seed(seed, 1), training)
        return self.layer_norm(y + x, training=training)


@keras.saving.register_keras_serializable(package="xlnet_tf")
class XLNetLayer(_ShapeFreeLayer):
    """One XLNet block (scope ``layer_{i}``): relative attention + feed-forward, for the
    content stream h and (optionally) the query stream g with shared weights."""

    def __init__(self, d_model, n_head, d_head, d_inner, ff_activation="gelu", dropout=0.0,
                 dropatt=0.0, kernel_initializer="glorot_uniform", query_chunk=None, **kwargs):
        super().__init__(**kwargs)
        self.rel_attn = RelativeAttention(d_model, n_head, d_head, dropout, dropatt,
                                          kernel_initializer, query_chunk, name="rel_attn",
                                          dtype=self.dtype_policy)
        self.ff = FeedForward(d_model, d_inner, ff_activation, dropout, kernel_initializer,
                              name="ff", dtype=self.dtype_policy)
        self._config = dict(d_model=d_model, n_head=n_head, d_head=d_head, d_inner=d_inner,
                            ff_activation=ff_activation, dropout=dropout, dropatt=dropatt,
                            query_chunk=query_chunk, kernel_initializer=keras.initializers.serialize(
                                keras.initializers.get(kernel_initializer)))

    def build(self, input_shape=None):
        self.rel_attn.build()
        self.ff.build()

    def get_config(self):
        return {**super().get_config(), **self._config}

    def call(self, h, g, mem, pos_emb, biases, seg_mismatch, seg_mismatch_g, content_allowed,
             query_allowed, positions, slot_weight, training=False, seed=None):
        """One layer for both streams.

        h [B, T, d]; g [B, P|T, d] or None; mem [B, M, d] or None; pos_emb [1|B, R, d];
        biases = (r_w_bias, r_r_bias, r_s_bias, seg_embed) for this layer.
        positions [B, P] int32 / slot_weight [B, P]: the query-stream positions taken from
        target_mapping and 1/0 for real/padding prediction slots (None without it).
        Returns (h_out [B, T, d], g_out or None).
        """
        attn = self.rel_attn
        r_w_bias, r_r_bias, r_s_bias, seg_embed = biases
        qlen = dims(h)[1]
        if mem is None:
            klen = qlen
            q_h, k_head, v_head = attn.project(h, ("q", "k", "v"),
                                               fused=not training)           # [B, H, T|K, Dh]
        else:
            cat = tf.concat([tf.cast(mem, h.dtype), h], axis=1)             # [B, K, d]
            klen = dims(cat)[1]
            (q_h,) = attn.project(h, ("q",))                                 # [B, H, T, Dh]
            k_head, v_head = attn.project(cat, ("k", "v"), fused=not training)  # [B, H, K, Dh]
        (kr_head,) = attn.project(pos_emb, ("r",))                           # [1|B, H, R, Dh]
        common = dict(k_head=k_head, v_head=v_head, kr_head=kr_head, r_w_bias=r_w_bias,
                      r_r_bias=r_r_bias, r_s_bias=r_s_bias, seg_embed=seg_embed,
                      qlen=qlen, klen=klen, training=training)
        # independent dropout seeds per stream and sub-step
        s_h, s_g = fold_seed(seed, 0), fold_seed(seed, 1)

        vec_h = attn.core(q_h, seg_mismatch=seg_mismatch, allowed=content_allowed,
                          seed=fold_seed(s_h, 0), **common)
        h_out = self.ff(attn.post(vec_h, h, training, fold_seed(s_h, 1)), training=training,
                        seed=fold_seed(s_h, 2))                              # [B, T, d]
        g_out = None
        if g is not None:
            (q_g,) = attn.project(g, ("q",))                                 # [B, H, P, Dh]
            vec_g = attn.core(q_g, seg_mismatch=seg_mismatch_g, allowed=query_allowed,
                              positions=positions, seed=fold_seed(s_g, 0),
                              **common)                                      # [B, H, P, Dh]
            if slot_weight is not None:
                # a zero target_mapping row gathers nothing: its attention vector is 0
                vec_g = vec_g * tf.cast(slot_weight, vec_g.dtype)[:, None, :, None]
            g_out = self.ff(attn.post(vec_g, g, training, fold_seed(s_g, 1)), training=training,
                            seed=fold_seed(s_g, 2))                          # [B, P, d]
        return h_out, g_out
