"""Performance machinery behind one seam, so ``layers.py`` and ``model.py`` read like the
paper's equations: hand-written gradients that keep fewer activations than autodiff, the
stateless seeded dropout they rely on, and the recompute (gradient checkpointing) helpers.

* Dropout: `dropout` / `dropper` / `dropout_keep` draw the keep mask with a STATELESS RNG
  keyed by a [2] int32 seed, so a recomputed layer drops exactly what the forward pass
  dropped; `fold_seed` derives the seeds of sub-steps.
* Lean gradients (each the same forward ops; the backward pass recomputes cheap values
  instead of keeping [B, H, T, K]- or [N, Di]-sized tensors): `layer_norm`,
  `activation_dropout_dense` (inside of the feed-forward block), `dropout_matmul`
  (attention probabilities x values).
* Recompute: `recompute` (re-run a function in the backward pass), `recompute_layer` (one
  XLNet layer, both streams), `row_blocks` (attention computed block by block of query rows,
  each block recomputed in the backward pass).

Shape letters as in ``layers.py``: B batch, H heads, T queries, K keys, N = B * T rows,
Di inner size, d model size.
"""
import math

import tensorflow as tf


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


def layer_norm(x, gamma, beta, epsilon, training):
    """float32 LayerNorm over the last axis, y = (x - mean) rsqrt(var + eps) gamma + beta
    (x, gamma and beta float32 tensors).  When training, a hand-written gradient keeps only
    x_hat = (x - mean) rsqrt(var + eps) and rsqrt(var + eps) (autodiff keeps ~3 [B, T, d]
    tensors per LayerNorm); the forward ops are the same either way."""
    if not training:
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + epsilon) * gamma + beta

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


def recompute_layer(layer, h, g, args, seed):
    """One XLNet layer (content stream h, query stream g or None) run through `recompute`:
    its activations are recomputed in the backward pass instead of kept; the stateless
    dropout seed makes the recomputation exact.

    ``args`` is a callable giving the layer's other arguments; it reads the bias variables,
    so it is called inside the recomputed function where the reads are recorded.  The seed
    and those arguments wait for the layer input: the parts of the layer that do not depend
    on it (position projections, dropout masks) are then not computed for all layers up
    front, in the forward pass or in the recomputation."""
    streams = [h] if g is None else [h, g]

    def identity(x):
        return tf.identity(x) if isinstance(x, tf.Tensor) else x

    def run(*xs):
        with tf.control_dependencies(list(xs)):
            layer_seed = identity(seed)
            extra = tf.nest.map_structure(identity, args())
        outs = layer(*(list(xs) + [None] * (2 - len(xs))), *extra, training=True,
                     seed=layer_seed)
        return list(outs[:len(xs)])

    outs = recompute(run, *streams)
    return outs[0], (outs[1] if g is not None else None)


def row_blocks(fn, x, others, spans):
    """``concat([fn(j, x[:, :, i0:i0 + n], *others) for j, (i0, n) in enumerate(spans)],
    axis=2)``, the blocks run one after the other and each recomputed in the backward pass
    (the attention of `layers.RelativeAttention.core` by blocks of query rows).

    ``others`` (tensors shared by all blocks, None allowed) receive the sum of the blocks'
    gradients.  In the forward pass one block runs after the other: they are independent,
    and TensorFlow would otherwise interleave them, all their intermediates alive at once.
    In the backward pass each block is recomputed once its predecessor's gradients exist,
    and the gradients of ``others`` are summed as they come, so one block's intermediates
    and one running sum exist at a time.

    ``others`` may hold variables (the r-biases shared by all layers when untie_r is false):
    they are read into tensors here, outside the custom gradient, so the gradient reaches the
    variable through the read and the blocks see plain tensors (a variable read inside
    ``tf.custom_gradient`` would need a gradient function for ``variables`` in eager mode)."""
    others = [o if o is None or isinstance(o, tf.Tensor) else tf.convert_to_tensor(o)
              for o in others]
    used = [o is not None for o in others]

    def rows(t, span):
        i0, n = span
        return t[:, :, i0:i0 + n]

    @tf.custom_gradient
    def blocks(x, *args):
        full = _fill(args, used)
        outs = []
        for j, span in enumerate(spans):
            with tf.control_dependencies(outs[-1:]):
                outs.append(fn(j, rows(x, span), *full))
        out = tf.concat(outs, axis=2)

        def grad(dout):
            dx, acc, deps = [], [None] * len(args), [dout]
            for j, span in enumerate(spans):
                grads = _rerun_gradients(
                    lambda x_rows, *a, j=j: fn(j, x_rows, *_fill(a, used)),
                    [rows(x, span)] + list(args), [rows(dout, span)], deps)
                dx.append(grads[0])
                for k, gk in enumerate(grads[1:]):
                    if gk is not None:
                        acc[k] = gk if acc[k] is None else acc[k] + gk
                deps = [dx[-1]] + [a for a in acc if a is not None]
            return [tf.concat(dx, axis=2)] + [
                a if a is not None else tf.zeros_like(t) for a, t in zip(acc, args)]
        return out, grad
    return blocks(x, *[o for o in others if o is not None])
