"""Keras 3 layers of XLNet: positional encoding, relative attention (content, position and
segment terms), two-stream attention, post-LN feed-forward.

All tensors are batch-major.  Letters in shape comments: B batch, T query length (current
segment), M memory length, K = M + T key length, R relative-position length (K + T for
'bi', K + 1 for 'uni'), P number of predictions, H heads, Dh head size, d model size.

Every weight is created in ``build`` with ``autocast=False`` and cast explicitly to the
compute dtype, so under a mixed policy the master weights stay float32 while matrix
products run in bfloat16/float16; softmax and LayerNorm always run in float32.
"""
import math

import keras
import tensorflow as tf

NEG_INF = -1e30  # the original masks by subtracting 1e30 (exactly equivalent in float32)


def dims(x):
    """The shape of ``x`` as a list: python ints where the static shape knows them, scalar
    tensors elsewhere.  Building reshapes from static sizes keeps every intermediate shape
    static, so the gradient functions need no ``Shape`` of a forward tensor -- a Shape op in
    the backward graph keeps its (often [B, H, T, K]-sized) input alive until it runs."""
    static = x.shape.as_list() if x.shape.rank is not None else None
    if static is not None and all(d is not None for d in static):
        return static
    dynamic = tf.unstack(tf.shape(x), num=len(static) if static is not None else None)
    if static is None:
        return dynamic
    return [d if d is not None else t for d, t in zip(static, dynamic)]


def dropout_keep(shape, rate, seed):
    """The keep mask (bool, ``shape``) of inverted dropout, drawn with a STATELESS RNG keyed
    by ``seed`` ([2] int tensor); `dropout_keep_scale` gives the scale of the kept values.

    The same seed gives the same mask, so a layer re-run in the backward pass
    (``recompute``) drops exactly what the forward pass dropped, and a resumed run that
    restored the model's seed generator draws the masks an uninterrupted run would.
    Each 32-bit Philox draw gives two 16-bit uniforms (half the random-number work of
    ``stateless_uniform``); the kept values are scaled by the exact inverse of the keep
    probability (65536 - t) / 65536, t = round(rate * 65536)."""
    n = 1
    for d in shape:
        n = n * d
    bits = tf.random.stateless_uniform([(n + 1) // 2], seed=seed, minval=None, maxval=None,
                                       dtype=tf.uint32)
    u16 = tf.reshape(tf.bitcast(bits, tf.uint16), [-1])[:n]
    threshold = int(round(rate * 65536))
    return tf.reshape(u16 >= tf.constant(threshold, tf.uint16), shape)


def dropout_keep_scale(rate):
    """The scale of the kept values: the exact inverse of the 16-bit keep probability."""
    threshold = int(round(rate * 65536))
    return 65536.0 / (65536 - threshold)


def dropout(x, rate, seed, training):
    """Inverted dropout with the stateless mask of `dropout_keep` (identity unless training
    with rate > 0 and a seed)."""
    if not training:
        return x
    return dropper(dims(x), rate, seed)(x)


def dropper(shape, rate, seed, keep=None):
    """Dropout of tensors of ``shape`` as a function that can be applied again (the
    hand-written gradients re-apply the mask): with ``keep`` an already drawn mask, else
    the mask of `dropout_keep`; the identity when rate is 0 or there is no seed."""
    if keep is None:
        if rate <= 0 or seed is None:
            return lambda x: x
        keep = dropout_keep(shape, rate, seed)
    scale = dropout_keep_scale(rate)
    return lambda x: tf.where(keep, x * tf.cast(scale, x.dtype), tf.zeros([], x.dtype))


def dropout_matmul(a, b, rate, seed, training, keep=None):
    """``tf.matmul(dropout(a), b)`` for the attention probabilities and values.

    When training, the gradient keeps a (the softmax output, kept for the softmax gradient
    anyway), the boolean keep mask and b, and recomputes dropout(a) in the backward pass:
    autodiff would keep dropout(a) as well, one more [B, H, T, K] tensor per layer.
    ``keep`` is an already drawn mask for a (rows of a larger one), else it is drawn here."""
    if not training:
        return tf.matmul(a, b)
    drop = dropper(dims(a), rate, seed, keep)

    @tf.custom_gradient
    def fn(a, b):
        def grad(dout):
            with tf.control_dependencies([dout]):
                a_drop = drop(tf.identity(a))
            da = drop(tf.matmul(dout, b, transpose_b=True))
            db = tf.matmul(a_drop, dout, transpose_a=True)
            return da, db
        return tf.matmul(drop(a), b), grad
    return fn(a, b)


def fold_seed(seed, k):
    """An independent seed for sub-step ``k`` (None stays None)."""
    if seed is None:
        return None
    return tf.random.experimental.stateless_fold_in(seed, k)


def initializer(config):
    """The original's initializer: N(0, init_std) (plain normal) or U(-init_range, init_range)."""
    if config.init == "uniform":
        return keras.initializers.RandomUniform(-config.init_range, config.init_range)
    return keras.initializers.RandomNormal(stddev=config.init_std)


def recompute(fn, *xs):
    """``fn(*xs)`` (float tensors in; a tensor or a list of tensors out) whose intermediates
    are recomputed in the backward pass instead of kept.

    Unlike ``tf.recompute_grad``, the recomputation starts only once the incoming gradient
    exists (the inputs pass through identities that depend on it): otherwise TensorFlow may
    run the recomputed forward passes of all blocks early, since they depend only on
    tensors of the forward pass, and keep all their intermediates alive at once.  ``fn``
    may read variables (they receive gradients) and capture tensors that need none (masks);
    what it computes from captured tensors alone should wait for its inputs (a control
    dependency) so that it, too, is not computed early."""

    @tf.custom_gradient
    def block(*xs):
        def grad(*douts, variables=None):
            grads = _rerun_gradients(fn, xs, douts, [d for d in douts if d is not None],
                                     variables or [])
            if variables is None:
                return grads
            return grads[:len(xs)], grads[len(xs):]
        return fn(*xs), grad
    return block(*xs)


def _rerun_gradients(fn, xs, douts, deps, variables=()):
    """Gradients of ``fn(*xs)`` with respect to xs and ``variables`` for the output
    gradients ``douts``, fn re-run on identities of xs that wait for ``deps``."""
    with tf.control_dependencies(deps):
        xs2 = [tf.identity(x) for x in xs]
    with tf.GradientTape() as tape:
        tape.watch(xs2)
        out = tf.nest.flatten(fn(*xs2))
    return tape.gradient(out, xs2 + list(variables), output_gradients=list(douts))


def _fill(present, used):
    """Re-expand the non-None arguments ``present`` to the positions flagged in ``used``."""
    it = iter(present)
    return [next(it) if u else None for u in used]


_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


def gelu_tanh(x):
    """The original's GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) - TensorFlow's
    approximate gelu, which grappler can fuse into the preceding MatMul + BiasAdd."""
    return tf.nn.gelu(x, approximate=True)


def _activation_grad(x, activation):
    """d activation / dx at x, in float32."""
    x32 = tf.cast(x, tf.float32)
    if activation == "relu":
        return tf.cast(x32 > 0, tf.float32)
    x2 = x32 * x32
    t = tf.tanh(_GELU_C * (x32 + _GELU_A * x32 * x2))
    return 0.5 * (1.0 + t) + 0.5 * x32 * (1.0 - t * t) * _GELU_C * (1.0 + 3.0 * _GELU_A * x2)


def activation_dropout_dense(x, activation, w, bias, rate, seed, training):
    """``dropout(act(x)) @ w + bias`` for the inside of the feed-forward block
    (x [N, Di], w [Di, d], bias [d]).

    When training, the gradient keeps only x, the boolean keep mask and w, and recomputes
    act(x) and its dropout in the backward pass; autodiff of the composite tanh-GELU and
    the dropout keeps about four more [N, Di] tensors per layer alive until then.  The
    forward pass is the same ops either way."""
    act = gelu_tanh if activation == "gelu" else tf.nn.relu
    if not training:
        return tf.nn.bias_add(tf.matmul(act(x), w), bias)
    drop = dropper(dims(x), rate, seed)

    @tf.custom_gradient
    def fn(x, w, bias):
        def grad(dz):
            with tf.control_dependencies([dz]):
                x_ = tf.identity(x)
            y_drop = drop(act(x_))                                           # [N, Di]
            dw = tf.matmul(y_drop, dz, transpose_a=True)                     # [Di, d]
            dbias = tf.reduce_sum(dz, axis=0)                                # [d]
            dy = drop(tf.matmul(dz, w, transpose_b=True))                    # [N, Di]
            dx = tf.cast(tf.cast(dy, tf.float32) * _activation_grad(x_, activation), x.dtype)
            return dx, dw, tf.cast(dbias, bias.dtype)
        return tf.nn.bias_add(tf.matmul(drop(act(x)), w), bias), grad
    return fn(x, w, bias)


def layer_norm(x, gamma, beta, epsilon):
    """float32 LayerNorm over the last axis, y = (x - mean) rsqrt(var + eps) gamma + beta,
    with a hand-written gradient that keeps only x_hat = (x - mean) rsqrt(var + eps) and
    rsqrt(var + eps) (autodiff keeps ~3 [B, T, d] tensors per LayerNorm).  x, gamma and
    beta are float32 tensors."""

    @tf.custom_gradient
    def fn(x, gamma, beta):
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        rstd = tf.math.rsqrt(var + epsilon)                                  # [..., 1]
        x_hat = (x - mean) * rstd                                            # [..., d]
        y = x_hat * gamma + beta

        def grad(dy):
            axes = list(range(len(dy.shape) - 1))
            g = dy * gamma                                                   # d loss / d x_hat
            dx = rstd * (g - tf.reduce_mean(g, axis=-1, keepdims=True)
                         - x_hat * tf.reduce_mean(g * x_hat, axis=-1, keepdims=True))
            return dx, tf.reduce_sum(dy * x_hat, axis=axes), tf.reduce_sum(dy, axis=axes)
        return y, grad
    return fn(x, gamma, beta)


def relative_positional_encoding(qlen, klen, d_model, attn_type="bi", bi_data=False,
                                 clamp_len=-1, batch_size=None):
    """Sinusoid embedding of relative distances, float32 [1 | B, R, d].

    pos_seq = [klen, klen-1, ..., -qlen+1] ('bi') or [klen, ..., 0] ('uni'), clipped to
    +-clamp_len when clamp_len > 0; embedding = [sin(pos*inv_freq) | cos(pos*inv_freq)]
    (all sines, then all cosines).  With bi_data the first half of the batch gets the
    forward sequence and the second half its negation (spec 1.7).
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
    closed form is out[i, j] = x[i, T - i + j] (spec 1.9).
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
        x32 = tf.cast(x, tf.float32)
        if training:
            y = layer_norm(x32, tf.convert_to_tensor(self.gamma),
                           tf.convert_to_tensor(self.beta), self.epsilon)
            return tf.cast(y, self.compute_dtype)
        mean, var = tf.nn.moments(x32, axes=[-1], keepdims=True)
        y = (x32 - mean) * tf.math.rsqrt(var + self.epsilon)
        y = y * tf.convert_to_tensor(self.gamma) + tf.convert_to_tensor(self.beta)
        return tf.cast(y, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


class RelativeAttention(keras.layers.Layer):
    """Relative multi-head attention of one layer (scope ``layer_{i}/rel_attn``).

    Holds the bias-free projections q, k, v, r, o (each [d, H, Dh], ``o`` contracted on
    its last two axes) and the post-attention LayerNorm.  The r_w/r_r/r_s biases and
    seg_embed live in the model (they are stacked over layers in the checkpoint) and are
    passed in.  The same weights serve the content stream h and the query stream g.
    """

    def __init__(self, d_model, n_head, d_head, dropout=0.0, dropatt=0.0,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.n_head, self.d_head = d_model, n_head, d_head
        self.dropout_rate, self.dropatt_rate = dropout, dropatt
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
                "dropatt": self.dropatt_rate,
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

    # Query rows per block when the content-stream attention is computed block by block
    # (set by the model when recompute is on; None = all rows at once).
    query_chunk = None

    def core(self, q_head, k_head, v_head, kr_head, r_w_bias, r_r_bias, seg_mismatch,
             r_s_bias, seg_embed, allowed, qlen, klen, positions=None, training=False,
             seed=None):
        """Attention vectors for head-major queries q_head [B, H, Tq, Dh] -> [B, H, Tq, Dh]
        (see `core_rows`).  With `query_chunk` set, training, the reshape shift and
        'bi' position encodings (R = T + K), the rows are computed in blocks of
        `query_chunk` queries, each recomputed in the backward pass: the [B, H, T, K] and
        [B, H, T, R] intermediates then exist for one block at a time.  The dropout mask is
        drawn once for all rows, so the result is the same as without blocks."""
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
        blocks = []
        for i0 in range(0, qlen, c):
            n = min(c, qlen - i0)
            allowed_rows = allowed
            if allowed is not None and allowed.shape[2] != 1:
                allowed_rows = allowed[:, :, i0:i0 + n]
            # rows i0..i0+n need relative positions T - i0 - n .. T - i0 + K - 1 (spec 1.9)
            blocks.append(dict(
                i0=i0, n=n, r0=qlen - i0 - n, allowed=allowed_rows,
                seg=None if seg_mismatch is None else seg_mismatch[:, i0:i0 + n],
                keep=None if keep is None else keep[:, :, i0:i0 + n]))

        def run(blk, q_rows, k, v, kr, rwb, rrb, rsb, se):
            kr_rows = kr[:, :, blk["r0"]:blk["r0"] + blk["n"] + klen]         # [., H, n+K, Dh]
            return self.core_rows(q_rows, k, v, kr_rows, rwb, rrb, blk["seg"], rsb, se,
                                  blk["allowed"], blk["n"], klen, None, training, None,
                                  keep=blk["keep"])                          # [B, H, n, Dh]

        def rows(x, blk):
            return x[:, :, blk["i0"]:blk["i0"] + blk["n"]]

        xs = [q_head, k_head, v_head, kr_head, r_w_bias, r_r_bias, r_s_bias, seg_embed]
        used = [x is not None for x in xs]

        @tf.custom_gradient
        def attend(*args):
            full = _fill(args, used)
            outs = []
            for blk in blocks:
                # one block after the other: they are independent, and TensorFlow would
                # otherwise interleave them, all their [B, H, n, K] intermediates alive at once
                with tf.control_dependencies(outs[-1:]):
                    outs.append(run(blk, rows(full[0], blk), *full[1:]))
            out = tf.concat(outs, axis=2)                                   # [B, H, T, Dh]

            def grad(dout):
                # each block is recomputed once its predecessor's gradients exist; the
                # key, value, position and bias gradients are summed as they come, so
                # one block's [B, H, n, K] tensors and one running sum exist at a time
                dq, acc, deps = [], [None] * len(args), [dout]
                for blk in blocks:
                    grads = _rerun_gradients(lambda *x, blk=blk: run(blk, *_fill(x, used)),
                                             [rows(args[0], blk)] + list(args[1:]),
                                             [rows(dout, blk)], deps)
                    dq.append(grads[0])
                    for j in range(1, len(args)):
                        if grads[j] is not None:
                            acc[j] = grads[j] if acc[j] is None else acc[j] + grads[j]
                    deps = [dq[-1]] + [a for a in acc if a is not None]
                return [tf.concat(dq, axis=2)] + [
                    a if a is not None else tf.zeros_like(x) for a, x in zip(acc[1:], args[1:])]
            return out, grad

        return attend(*[x for x in xs if x is not None])                     # [B, H, T, Dh]

    def core_rows(self, q_head, k_head, v_head, kr_head, r_w_bias, r_r_bias, seg_mismatch,
                  r_s_bias, seg_embed, allowed, qlen, klen, positions=None, training=False,
                  seed=None, keep=None):
        """Attention vectors for head-major queries q_head [B, H, Tq, Dh] -> [B, H, Tq, Dh].

        k_head, v_head [B, H, K, Dh]; kr_head [1|B, H, R, Dh]; seg_mismatch bool [B, Tq, K]
        or None; allowed bool broadcastable to [B, 1, Tq, K] or None; positions [B, Tq]
        int32 (query positions, for the query stream with target_mapping) or None (the
        queries are positions 0..T-1 and the original reshape shift applies).

        score = (ac + bd + ef) / sqrt(Dh) with the biases added to the queries (spec 1.8);
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


class FeedForward(keras.layers.Layer):
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


class XLNetLayer(keras.layers.Layer):
    """One XLNet block (scope ``layer_{i}``): relative attention + feed-forward, for the
    content stream h and (optionally) the query stream g with shared weights."""

    def __init__(self, d_model, n_head, d_head, d_inner, ff_activation="gelu", dropout=0.0,
                 dropatt=0.0, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.rel_attn = RelativeAttention(d_model, n_head, d_head, dropout, dropatt,
                                          kernel_initializer, name="rel_attn",
                                          dtype=self.dtype_policy)
        self.ff = FeedForward(d_model, d_inner, ff_activation, dropout, kernel_initializer,
                              name="ff", dtype=self.dtype_policy)
        self._config = dict(d_model=d_model, n_head=n_head, d_head=d_head, d_inner=d_inner,
                            ff_activation=ff_activation, dropout=dropout, dropatt=dropatt,
                            kernel_initializer=keras.initializers.serialize(
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
