"""The hand-written gradients of ``ops.py`` that keep less for the backward pass
(ops.layer_norm, ops.activation_dropout_dense, ops.dropout_matmul) against TensorFlow's
autodiff of the plain composite ops, and the whole model's gradients with them (training=True, no
dropout) against the autodiff path (training=False)."""

import numpy as np
import pytest
import tensorflow as tf

import xlnet_tf
from xlnet_tf.modeling import ops


def _grads(fn, *args):
    args = [tf.convert_to_tensor(a) for a in args]
    with tf.GradientTape() as tape:
        tape.watch(args)
        y = fn(*args)
        dy = tf.constant(np.random.default_rng(7).standard_normal(y.shape), y.dtype)
        loss = tf.reduce_sum(y * dy)
    return [y] + tape.gradient(loss, args)


def test_layer_norm_gradient_matches_autodiff():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 8)) * 3 + 1
    gamma, beta = rng.standard_normal(8), rng.standard_normal(8)
    eps = 1e-12

    def plain(x, gamma, beta):
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + eps) * gamma + beta

    ours = _grads(lambda *a: ops.layer_norm(*a, eps, True), x, gamma, beta)
    ref = _grads(plain, x, gamma, beta)
    for name, a, b in zip(("y", "dx", "dgamma", "dbeta"), ours, ref):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("activation", ["gelu", "relu"])
@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_activation_dropout_dense_gradient_matches_autodiff(activation, rate):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 16)).astype(np.float32) * 2
    w = rng.standard_normal((16, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    seed = tf.constant([3, 4], tf.int32)
    act = {"gelu": ops.gelu_tanh, "relu": tf.nn.relu}[activation]

    def plain(x, w, bias):  # autodiff through the composite ops, in float64
        y = ops.dropout(act(x), rate, seed, True)
        return tf.nn.bias_add(tf.matmul(y, w), bias)

    ours = _grads(lambda *a: ops.activation_dropout_dense(*a[:1], activation, *a[1:],
                                                          rate, seed, True), x, w, bias)
    ref = _grads(plain, x.astype(np.float64), w.astype(np.float64), bias.astype(np.float64))
    for name, a, b in zip(("z", "dx", "dw", "dbias"), ours, ref):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-5, atol=2e-5, err_msg=name)
    if rate:
        # the mask is really applied: some units dropped, same ones as ops.dropout
        keep = ops.dropout_keep([6, 16], rate, seed)
        assert 0 < np.mean(keep.numpy()) < 1
        assert np.all(ours[1].numpy()[~keep.numpy()] == 0)


@pytest.mark.parametrize("rate", [0.0, 0.25])
def test_dropout_matmul_gradient_matches_autodiff(rate):
    rng = np.random.default_rng(2)
    a = rng.random((2, 3, 5, 7))
    b = rng.standard_normal((2, 3, 7, 4))
    seed = tf.constant([5, 6], tf.int32)

    def plain(a, b):
        return tf.matmul(ops.dropout(a, rate, seed, True), b)

    ours = _grads(lambda a, b: ops.dropout_matmul(a, b, rate, seed, True), a, b)
    ref = _grads(plain, a, b)
    for name, x, y in zip(("out", "da", "db"), ours, ref):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("ff_activation", ["gelu", "relu"])
def test_model_gradients_training_path_equal_autodiff_path(ff_activation):
    """training=True without dropout runs the lean gradients and the unfused k/v
    projections; training=False the plain ops under autodiff: same loss, same gradients."""
    config = xlnet_tf.XLNetConfig(n_layer=2, d_model=16, n_head=2, d_head=8, d_inner=32,
                                  n_token=50, untie_r=True, ff_activation=ff_activation)
    model = xlnet_tf.XLNetLMModel(xlnet_tf.XLNetConfig.from_dict(
        dict(config.to_dict(), dropout=0.0, dropatt=0.0, mem_len=3, init_std=0.3)))
    rng = np.random.default_rng(3)
    b, t, p = 2, 6, 2
    perm = (rng.random((b, t, t)) > 0.5).astype(np.float32)
    tm = np.zeros((b, p, t), np.float32)
    tm[0, 0, 1] = tm[0, 1, 4] = tm[1, 0, 2] = 1.0
    inputs = dict(input_ids=tf.constant(rng.integers(0, 50, (b, t)), tf.int32),
                  seg_ids=tf.constant([[0, 0, 0, 1, 1, 2]] * b, tf.int32),
                  perm_mask=tf.constant(perm), target_mapping=tf.constant(tm),
                  mems=[tf.constant(rng.standard_normal((b, 3, 16)), tf.float32)] * 2)
    target = tf.constant(rng.integers(0, 50, (b, p)), tf.int32)

    def loss_and_grads(training):
        with tf.GradientTape() as tape:
            logits = model(inputs, training=training)["logits"]
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(target, logits))
        return loss, tape.gradient(loss, model.trainable_variables)

    loss_t, grads_t = loss_and_grads(True)
    loss_e, grads_e = loss_and_grads(False)
    np.testing.assert_allclose(loss_t.numpy(), loss_e.numpy(), rtol=1e-6)
    assert len(grads_t) == len(grads_e)
    n_nonzero = 0
    for v, gt, ge in zip(model.trainable_variables, grads_t, grads_e):
        gt, ge = tf.convert_to_tensor(gt).numpy(), tf.convert_to_tensor(ge).numpy()
        scale = max(np.abs(ge).max(), 1e-6)
        np.testing.assert_allclose(gt, ge, rtol=0, atol=2e-5 * scale, err_msg=v.path)
        n_nonzero += int(np.abs(ge).max() > 0)
    assert n_nonzero >= len(grads_e) - 2


@pytest.mark.parametrize("policy,tol", [("mixed_bfloat16", 0.05), ("mixed_float16", 0.01)])
def test_training_gradients_in_mixed_precision_follow_float32(policy, tol):
    """The hand-written gradients under the 16-bit policies (bf16 / fp16 matmuls, float32
    softmax and LayerNorm): finite, and close to the float32 gradients.  Seeded: the
    initial weights must not depend on which tests ran before."""
    tf.keras.utils.set_random_seed(0)
    config = xlnet_tf.XLNetConfig(n_layer=2, d_model=32, n_head=2, d_head=16, d_inner=64,
                                  n_token=50, untie_r=True, dropout=0.0, dropatt=0.0,
                                  mem_len=3)
    ref = xlnet_tf.XLNetLMModel(config)
    low = xlnet_tf.XLNetLMModel(config, dtype=policy)
    for a, b in zip(ref.weights, low.weights):
        b.assign(a)
    rng = np.random.default_rng(4)
    b, t, p = 2, 8, 3
    tm = np.zeros((b, p, t), np.float32)
    tm[:, 0, 1] = tm[:, 1, 5] = tm[:, 2, 7] = 1.0
    inputs = dict(input_ids=tf.constant(rng.integers(0, 50, (b, t)), tf.int32),
                  seg_ids=tf.constant([[0] * 5 + [1] * 3] * b, tf.int32),
                  perm_mask=tf.constant((rng.random((b, t, t)) > 0.5).astype(np.float32)),
                  target_mapping=tf.constant(tm),
                  mems=[tf.constant(rng.standard_normal((b, 3, 32)), tf.float32)] * 2)
    target = tf.constant(rng.integers(0, 50, (b, p)), tf.int32)

    @tf.function
    def grads(model):
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)["logits"]
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(target, logits))
            scaled = loss * 1024.0  # a fixed loss scale keeps float16 gradients normal
        return [tf.convert_to_tensor(g) / 1024.0
                for g in tape.gradient(scaled, model.trainable_variables)]

    g_ref, g_low = grads(ref), grads(low)
    for v, a, c in zip(ref.trainable_variables, g_ref, g_low):
        a, c = a.numpy(), c.numpy()
        assert np.all(np.isfinite(c)), v.path
        scale = max(np.abs(a).max(), 1e-6)
        np.testing.assert_allclose(c, a, rtol=0, atol=tol * scale, err_msg=v.path)
