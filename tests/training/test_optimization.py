"""Tests for xlnet_tf/training/optimization.py against hand-computed values and numpy formulas.

The MirroredStrategy test needs two logical CPU devices, which must be configured before
TensorFlow initialises its runtime; it therefore runs this file as a script in a fresh
subprocess (`python tests/training/test_optimization.py --mirrored-worker`), which prints JSON.
"""
import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from xlnet_tf.training import optimization as opt_lib  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# The four variables of the small AdamW examples: one LayerNorm gamma, one dense bias,
# one r_w_bias, one kernel. Expected decay: no, no, yes (force-included), yes.
NAMES = [
    "model/transformer/layer_1/ff/LayerNorm/gamma",
    "model/transformer/layer_1/ff/layer_1/bias",
    "model/transformer/r_w_bias",
    "model/transformer/layer_0/rel_attn/q/kernel",
]
DECAY_MASK = [False, False, True, True]


# --------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------

# learning_rate 2e-3, warmup 10, train_steps 110 (decay over 100 steps), min_lr_ratio 0.01
# -> end lr 2e-5. Values worked out by hand:
#   step 0:   0                          (warm-up, 0/10)
#   step 5:   2e-3 * 5/10 = 1e-3
#   step 10:  decay branch, p = 0        -> 2e-3
#   step 35:  p = 0.25: poly (2e-3-2e-5)*0.75 + 2e-5 = 1.505e-3
#             cos 0.5*(1+cos(pi/4)) = 0.85355339; 2e-3*(0.99*0.85355339+0.01) = 1.7100357e-3
#   step 60:  p = 0.5:  poly 1.98e-3*0.5 + 2e-5 = 1.01e-3; cos 2e-3*(0.99*0.5+0.01) = 1.01e-3
#   step 85:  p = 0.75: cos 0.5*(1-0.70710678) = 0.14644661; 2e-3*(0.99*0.14644661+0.01)
#             = 3.0996428e-4
#   step 110 and beyond: 2e-5 (held)
POLY_EXPECTED = {0: 0.0, 5: 1e-3, 10: 2e-3, 35: 1.505e-3, 60: 1.01e-3, 85: 5.15e-4,
                 110: 2e-5, 111: 2e-5, 500: 2e-5}
COS_EXPECTED = {0: 0.0, 5: 1e-3, 10: 2e-3, 35: 1.7100357e-3, 60: 1.01e-3, 85: 3.0996428e-4,
                110: 2e-5, 111: 2e-5, 500: 2e-5}


@pytest.mark.parametrize("method,expected", [("poly", POLY_EXPECTED), ("cos", COS_EXPECTED)])
def test_schedule_hand_values(method, expected):
    schedule = opt_lib.WarmupPolyDecay(2e-3, train_steps=110, warmup_steps=10,
                                       min_lr_ratio=0.01, decay_method=method)
    for step, value in expected.items():
        got = float(schedule(step))
        assert got == pytest.approx(value, rel=1e-6, abs=1e-12), (method, step, got)
        # int64 steps (what optimizer.iterations holds) give the same value.
        assert float(schedule(tf.constant(step, tf.int64))) == got


def test_schedule_cos_matches_closed_form():
    schedule = opt_lib.WarmupPolyDecay(1.0, train_steps=30, warmup_steps=5, min_lr_ratio=0.1,
                                       decay_method="cos")
    for step in range(0, 40):
        if step < 5:
            want = step / 5
        else:
            p = min(step - 5, 25) / 25
            want = 0.9 * 0.5 * (1 + math.cos(math.pi * p)) + 0.1
        assert float(schedule(step)) == pytest.approx(want, rel=1e-6, abs=1e-7), step


def test_schedule_without_warmup_starts_at_peak():
    schedule = opt_lib.WarmupPolyDecay(1e-4, train_steps=100, warmup_steps=0, min_lr_ratio=0.0)
    assert float(schedule(0)) == pytest.approx(1e-4, rel=1e-7)
    assert float(schedule(50)) == pytest.approx(5e-5, rel=1e-6)
    assert float(schedule(100)) == 0.0
    assert float(schedule(1000)) == 0.0


def test_schedule_config_round_trip():
    schedule = opt_lib.WarmupPolyDecay(3e-5, train_steps=1000, warmup_steps=100,
                                       min_lr_ratio=0.001, decay_method="cos")
    config = schedule.get_config()
    assert config == {"learning_rate": 3e-5, "train_steps": 1000, "warmup_steps": 100,
                      "min_lr_ratio": 0.001, "decay_method": "cos", "name": None}
    clone = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(clone, opt_lib.WarmupPolyDecay)
    for step in (0, 50, 100, 400, 1000, 2000):
        assert float(clone(step)) == float(schedule(step))


@pytest.mark.parametrize("kwargs,message", [
    (dict(train_steps=10, warmup_steps=10), "train_steps"),
    (dict(train_steps=10, warmup_steps=-1), "warmup_steps"),
    (dict(train_steps=10, decay_method="exp"), "decay_method"),
    (dict(train_steps=10, min_lr_ratio=1.5), "min_lr_ratio"),
])
def test_schedule_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        opt_lib.WarmupPolyDecay(1e-4, **kwargs)


# --------------------------------------------------------------------------------------
# Weight-decay name rules
# --------------------------------------------------------------------------------------


def test_use_weight_decay_name_rules():
    cases = {
        "model/transformer/word_embedding/lookup_table": True,
        "model/transformer/mask_emb/mask_emb": True,
        "model/transformer/seg_embed": True,
        "model/transformer/r_w_bias": True,
        "model/transformer/r_r_bias": True,
        "model/transformer/r_s_bias": True,
        "model/transformer/layer_3/rel_attn/q/kernel": True,
        "model/transformer/layer_3/ff/layer_1/kernel": True,
        "model/transformer/layer_3/ff/layer_1/bias": False,
        "model/transformer/layer_3/ff/LayerNorm/gamma": False,
        "model/transformer/layer_3/rel_attn/LayerNorm/beta": False,
        "model/lm_loss/bias": False,
        "model/sequnece_summary/summary/kernel": True,
        "model/sequnece_summary/summary/bias": False,
        "start_logits/dense/bias": False,
        "answer_class/dense_1/kernel": True,
        "some/layer_norm/gamma": False,
    }
    for name, want in cases.items():
        assert opt_lib.use_weight_decay(name) is want, name


# --------------------------------------------------------------------------------------
# AdamW (weight_decay > 0) and Adam (weight_decay == 0): two steps against numpy
# --------------------------------------------------------------------------------------


def _initial_values():
    rng = np.random.RandomState(0)
    return [
        np.array([1.0, 0.5, -0.25], np.float32),                 # LayerNorm gamma
        rng.normal(size=[3]).astype(np.float32),                 # dense bias
        rng.normal(size=[2, 3]).astype(np.float32),              # r_w_bias [H, Dh]
        rng.normal(size=[3, 2, 3]).astype(np.float32),           # q kernel [d, H, Dh]
    ]


def _gradients(step):
    rng = np.random.RandomState(100 + step)
    grads = [rng.normal(size=v.shape).astype(np.float32) for v in _initial_values()]
    grads[0][0] = 0.5  # the element checked by hand in test_adamw_two_steps_vs_numpy
    return grads


def _numpy_adamw(params, grad_steps, lrs, mask, wd, eps, b1=0.9, b2=0.999):
    """BERT AdamW in float32, op by op as the original's graph: no bias correction, decay
    where mask is True; `1 - beta` formed in double and then rounded, as there."""
    f = np.float32
    params = [p.astype(f) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for grads, lr in zip(grad_steps, lrs):
        for i, g in enumerate(grads):
            g = g.astype(f)
            m[i] = f(b1) * m[i] + f(1.0 - b1) * g
            v[i] = f(b2) * v[i] + f(1.0 - b2) * (g * g)
            update = m[i] / (np.sqrt(v[i]) + f(eps))
            if mask[i]:
                update = update + f(wd) * params[i]
            params[i] = params[i] - f(lr) * update
    return params


def _numpy_tf1_adam(params, grad_steps, lrs, eps, b1=0.9, b2=0.999, kingma_epsilon=False):
    """tf.train.AdamOptimizer in float64: bias correction folded into lr, epsilon outside.

    `kingma_epsilon=True` gives the other common form, m_hat / (sqrt(v_hat) + eps), used
    only to show the test can tell the two apart.
    """
    params = [p.astype(np.float64) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, (grads, lr) in enumerate(zip(grad_steps, lrs), start=1):
        lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        for i, g in enumerate(grads):
            g = g.astype(np.float64)
            m[i] = m[i] + (g - m[i]) * (1 - b1)
            v[i] = v[i] + (g * g - v[i]) * (1 - b2)
            if kingma_epsilon:
                m_hat, v_hat = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
                params[i] = params[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
            else:
                params[i] = params[i] - lr_t * m[i] / (np.sqrt(v[i]) + eps)
    return params


def _make_variables():
    return [keras.Variable(v, name=n.split("/")[-1]) for v, n in zip(_initial_values(), NAMES)]


def test_adamw_two_steps_vs_numpy():
    variables = _make_variables()
    # lr schedule without warm-up: lr(0) = 0.1, lr(1) = 0.1 * 3/4 = 0.075 (train_steps 4).
    optimizer, schedule = opt_lib.create_optimizer(
        learning_rate=0.1, train_steps=4, warmup_steps=0, min_lr_ratio=0.0, weight_decay=0.01,
        adam_epsilon=1e-6, variables=variables, names=NAMES)
    assert isinstance(optimizer, opt_lib.AdamWeightDecay)
    assert optimizer.decayed_names == [n for n, d in zip(NAMES, DECAY_MASK) if d]

    optimizer.apply_gradients(zip([tf.constant(g) for g in _gradients(0)], variables))
    # Hand check of one element after step 1 (gamma[0] = 1.0, g = 0.5, not decayed):
    # m = 0.05, v = 0.00025, update = 0.05 / (0.0158113883 + 1e-6) = 3.16207768,
    # param = 1 - 0.1 * 3.16207768 = 0.683792232.
    assert float(variables[0][0]) == pytest.approx(0.683792232, rel=1e-6)
    assert int(optimizer.iterations) == 1
    optimizer.apply_gradients(zip([tf.constant(g) for g in _gradients(1)], variables))
    assert int(optimizer.iterations) == 2

    want = _numpy_adamw(_initial_values(), [_gradients(0), _gradients(1)], [0.1, 0.075],
                        DECAY_MASK, wd=0.01, eps=1e-6)
    # Same float32 operations in the same order: agreement to float32 rounding.
    for var, w, name in zip(variables, want, NAMES):
        np.testing.assert_allclose(var.numpy(), w, rtol=1e-6, atol=1e-7, err_msg=name)

    # The decay decision matters: with decay on every variable the excluded ones differ.
    all_decayed = _numpy_adamw(_initial_values(), [_gradients(0), _gradients(1)], [0.1, 0.075],
                               [True] * 4, wd=0.01, eps=1e-6)
    for i in (0, 1):
        assert np.max(np.abs(all_decayed[i] - want[i])) > 1e-4


def test_adam_two_steps_vs_tf1_formula_with_warmup():
    variables = _make_variables()
    # warm-up 2: the first update uses lr(0) = 0 (as the original), the second lr(1) = 0.05.
    # epsilon 1e-3 makes its placement matter: at t = 2 the TF1 form is equivalent to an
    # epsilon of 1e-3 / sqrt(1 - 0.999^2) = 0.022 on the bias-corrected sqrt(v_hat).
    optimizer, schedule = opt_lib.create_optimizer(
        learning_rate=0.1, train_steps=10, warmup_steps=2, min_lr_ratio=0.0, weight_decay=0.0,
        adam_epsilon=1e-3, variables=variables)
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert optimizer.epsilon == 1e-3

    optimizer.apply_gradients(zip([tf.constant(g) for g in _gradients(0)], variables))
    for var, init in zip(variables, _initial_values()):
        np.testing.assert_array_equal(var.numpy(), init)  # lr was exactly 0
    optimizer.apply_gradients(zip([tf.constant(g) for g in _gradients(1)], variables))

    grads, lrs = [_gradients(0), _gradients(1)], [0.0, 0.05]
    want = _numpy_tf1_adam(_initial_values(), grads, lrs, eps=1e-3)
    other = _numpy_tf1_adam(_initial_values(), grads, lrs, eps=1e-3, kingma_epsilon=True)
    # float32 vs float64: the step (<= ~0.1) carries relative rounding of ~1e-5 from the
    # float32 `1 - beta_2^t` = 0.002 (TF1's float32 kernel has the same), so atol 2e-6;
    # the other epsilon form is > 1e-4 away, so the comparison can fail.
    for var, w, o, name in zip(variables, want, other, NAMES):
        np.testing.assert_allclose(var.numpy(), w, rtol=0, atol=2e-6, err_msg=name)
    assert max(np.max(np.abs(w - o)) for w, o in zip(want, other)) > 1e-4

    # Hand check of one bias-corrected first step: g = 0.5, lr = 0.1, eps 1e-8:
    # lr_t = 0.1 * sqrt(1 - 0.999) / (1 - 0.9) = 0.0316228, m = 0.05, sqrt(v) = 0.0158114,
    # step = 0.0316228 * 0.05 / 0.0158114 = 0.1 -> param 0.9 (without bias correction the
    # step would be 0.316).
    v1 = keras.Variable(np.array([1.0], np.float32))
    adam, _ = opt_lib.create_optimizer(0.1, 10, 0, 0.0, 0.0, 1e-8, variables=[v1])
    adam.apply_gradients([(tf.constant([0.5]), v1)])
    assert float(v1[0]) == pytest.approx(0.9, rel=1e-6)


def test_adamw_requires_names_and_rejects_keras_weight_decay():
    variables = _make_variables()
    optimizer = opt_lib.AdamWeightDecay(0.1, weight_decay_rate=0.01)
    with pytest.raises(ValueError, match="names"):
        optimizer.apply_gradients(zip([tf.constant(g) for g in _gradients(0)], variables))
    with pytest.raises(ValueError, match="parallel"):
        opt_lib.AdamWeightDecay(0.1, weight_decay_rate=0.01).build(variables, names=NAMES[:2])
    with pytest.raises(ValueError, match="weight_decay_rate"):
        opt_lib.AdamWeightDecay(0.1, weight_decay=0.01)
    with pytest.raises(ValueError, match="names"):
        opt_lib.create_optimizer(0.1, 10, 0, 0.0, 0.01, 1e-6, variables=variables)


def test_adamw_config_round_trip():
    schedule = opt_lib.WarmupPolyDecay(1e-3, train_steps=100, warmup_steps=10)
    optimizer = opt_lib.AdamWeightDecay(schedule, weight_decay_rate=0.02, epsilon=1e-6)
    clone = opt_lib.AdamWeightDecay.from_config(optimizer.get_config())
    assert clone.weight_decay_rate == 0.02
    assert clone.epsilon == 1e-6
    assert clone.exclude_patterns == opt_lib.EXCLUDE_FROM_WEIGHT_DECAY
    assert clone.include_patterns == opt_lib.INCLUDE_IN_WEIGHT_DECAY
    assert isinstance(clone._learning_rate, opt_lib.WarmupPolyDecay)
    assert float(clone._learning_rate(5)) == float(schedule(5))


# --------------------------------------------------------------------------------------
# Clipping and layer-wise decay
# --------------------------------------------------------------------------------------


def test_clip_by_global_norm_hand_example():
    # Global norm sqrt(3^2 + 4^2 + 12^2) = 13.
    grads = [tf.constant([3.0, 4.0]), None, tf.constant([[12.0]])]
    clipped, gnorm = opt_lib.clip_by_global_norm(grads, 1.0)
    assert float(gnorm) == pytest.approx(13.0, rel=1e-7)
    assert clipped[1] is None
    np.testing.assert_allclose(clipped[0].numpy(), [3 / 13, 4 / 13], rtol=1e-6)
    np.testing.assert_allclose(clipped[2].numpy(), [[12 / 13]], rtol=1e-6)

    unclipped, gnorm = opt_lib.clip_by_global_norm(grads, 20.0)
    assert float(gnorm) == pytest.approx(13.0, rel=1e-7)
    np.testing.assert_allclose(unclipped[0].numpy(), [3.0, 4.0], rtol=1e-7)

    _, gnorm = opt_lib.clip_by_global_norm(grads, None)
    assert float(gnorm) == pytest.approx(13.0, rel=1e-7)
    with pytest.raises(ValueError, match="clip"):
        opt_lib.clip_by_global_norm(grads, 0.0)


LAYERWISE_NAMES = [
    "model/transformer/word_embedding/lookup_table",
    "model/transformer/r_w_bias",
    "model/transformer/r_s_bias",
    "model/transformer/seg_embed",
    "model/transformer/mask_emb/mask_emb",
    "model/transformer/layer_0/rel_attn/q/kernel",
    "model/transformer/layer_0/ff/LayerNorm/gamma",
    "model/transformer/layer_1/ff/layer_1/bias",
    "model/transformer/layer_2/rel_attn/o/kernel",
    "model/lm_loss/bias",
    "model/sequnece_summary/summary/bias",
    "start_logits/dense/bias",
]


def test_layerwise_decay_scales_exact():
    scales = opt_lib.layerwise_decay_scales(LAYERWISE_NAMES, n_layer=3, rate=0.75)
    # layer_0 -> 0.75**2 = 0.5625, layer_1 -> 0.75, layer_2 -> 1.0, all else 1.0.
    assert scales == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5625, 0.5625, 0.75, 1.0, 1.0, 1.0, 1.0]
    # n_layer inferred from the names as the original does.
    assert opt_lib.layerwise_decay_scales(LAYERWISE_NAMES, None, 0.75) == scales
    assert opt_lib.layerwise_decay_scales(LAYERWISE_NAMES, 3, 1.0) == [1.0] * len(scales)


def test_layerwise_decay_distinguishes_layer_1_and_layer_10():
    names = ["model/transformer/layer_1/ff/layer_1/kernel",
             "model/transformer/layer_10/ff/layer_1/kernel",
             "model/transformer/layer_11/ff/layer_1/kernel"]
    assert opt_lib.layerwise_decay_scales(names, 12, 0.5) == [0.5 ** 10, 0.5, 1.0]
    with pytest.raises(ValueError, match="n_layer"):
        opt_lib.layerwise_decay_scales(names, 4, 0.5)


def test_apply_layerwise_decay():
    dense = tf.constant([[1.0, -2.0]])
    sparse = tf.IndexedSlices(tf.constant([[4.0, 8.0]]), tf.constant([1]), tf.constant([3, 2]))
    out = opt_lib.apply_layerwise_decay([dense, None, sparse, dense], [0.5, 0.75, 0.25, 1.0])
    np.testing.assert_array_equal(out[0].numpy(), [[0.5, -1.0]])
    assert out[1] is None
    assert isinstance(out[2], tf.IndexedSlices)
    np.testing.assert_array_equal(out[2].values.numpy(), [[1.0, 2.0]])
    np.testing.assert_array_equal(out[2].indices.numpy(), [1])
    assert out[3] is dense
    with pytest.raises(ValueError, match="scales"):
        opt_lib.apply_layerwise_decay([dense], [1.0, 1.0])


# --------------------------------------------------------------------------------------
# Checkpoint round trip
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_checkpoint_round_trip_continues_identically(tmp_path, weight_decay):
    def fresh():
        variables = _make_variables()
        optimizer, _ = opt_lib.create_optimizer(
            learning_rate=0.1, train_steps=8, warmup_steps=2, min_lr_ratio=0.1,
            weight_decay=weight_decay, adam_epsilon=1e-6, variables=variables, names=NAMES)
        return variables, optimizer

    def train(variables, optimizer, steps):
        for step in steps:
            optimizer.apply_gradients(zip([tf.constant(g) for g in _gradients(step)], variables))

    variables, optimizer = fresh()
    train(variables, optimizer, range(3))
    ckpt = tf.train.Checkpoint(variables=variables, optimizer=optimizer)
    path = ckpt.save(str(tmp_path / "ckpt"))
    train(variables, optimizer, range(3, 6))
    uninterrupted = [v.numpy() for v in variables]
    assert int(optimizer.iterations) == 6

    restored_vars, restored_opt = fresh()
    tf.train.Checkpoint(variables=restored_vars, optimizer=restored_opt).restore(
        path).assert_existing_objects_matched()
    assert int(restored_opt.iterations) == 3
    train(restored_vars, restored_opt, range(3, 6))
    assert int(restored_opt.iterations) == 6
    for a, b, name in zip(uninterrupted, restored_vars, NAMES):
        np.testing.assert_array_equal(a, b.numpy(), err_msg=name)

    # Without the optimizer state (fresh slots, iterations 0) the result differs: the
    # round trip above is not trivially satisfied.
    plain_vars, plain_opt = fresh()
    tf.train.Checkpoint(variables=plain_vars).restore(path).expect_partial()
    train(plain_vars, plain_opt, range(3, 6))
    assert max(np.max(np.abs(a - b.numpy())) for a, b in zip(uninterrupted, plain_vars)) > 1e-3


# --------------------------------------------------------------------------------------
# MirroredStrategy over two logical CPUs (subprocess)
# --------------------------------------------------------------------------------------


def _mirrored_worker():
    """Runs in a fresh process: two logical CPUs, mirrored vs single-device training."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2

    global_batch = 4
    rng = np.random.RandomState(7)
    x = rng.normal(size=[3, global_batch, 3]).astype(np.float32)  # 3 steps of [B, d]
    y = rng.normal(size=[3, global_batch, 3]).astype(np.float32)
    n_layer, rate, clip = 2, 0.5, 1e3  # clip large: per-replica vs global clipping agree

    def loss_fn(variables, xb, yb):
        gamma, bias, r_w_bias, kernel = variables
        k = tf.reshape(kernel, [3, 6])                               # [d, H*Dh]
        h = tf.tanh(tf.matmul(xb, k)[:, :3] + bias) * gamma          # [B, 3]
        out = h + tf.reduce_sum(r_w_bias, axis=0)                    # [B, 3]
        return tf.reduce_sum(tf.square(out - yb)) / global_batch

    def step_fn(variables, optimizer, xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(variables, xb, yb)
        grads = tape.gradient(loss, variables)
        grads, _ = opt_lib.clip_by_global_norm(grads, clip)
        scales = opt_lib.layerwise_decay_scales(NAMES, n_layer, rate)
        grads = opt_lib.apply_layerwise_decay(grads, scales)
        optimizer.apply_gradients(zip(grads, variables))

    results = {}
    for weight_decay in (0.0, 0.01):
        kwargs = dict(learning_rate=0.05, train_steps=10, warmup_steps=1, min_lr_ratio=0.1,
                      weight_decay=weight_decay, adam_epsilon=1e-6)
        # Mirrored: variables, optimizer creation and build inside the scope.
        with strategy.scope():
            m_vars = _make_variables()
            m_opt, _ = opt_lib.create_optimizer(**kwargs, variables=m_vars, names=NAMES)

        @tf.function
        def mirrored_step(xb, yb):
            def replica_fn():
                ctx = tf.distribute.get_replica_context()
                half = global_batch // 2
                start = ctx.replica_id_in_sync_group * half
                step_fn(m_vars, m_opt, xb[start:start + half], yb[start:start + half])
            strategy.run(replica_fn)

        # Creating the optimizer for mirrored variables outside the scope is refused.
        try:
            opt_lib.create_optimizer(**kwargs, variables=m_vars, names=NAMES)
            outside_scope_error = ""
        except ValueError as err:
            outside_scope_error = str(err)

        s_vars = _make_variables()
        s_opt, _ = opt_lib.create_optimizer(**kwargs, variables=s_vars, names=NAMES)

        @tf.function
        def single_step(xb, yb):
            step_fn(s_vars, s_opt, xb, yb)

        for i in range(3):
            mirrored_step(tf.constant(x[i]), tf.constant(y[i]))
            single_step(tf.constant(x[i]), tf.constant(y[i]))

        replica_values = [[r.numpy().tolist() for r in strategy.experimental_local_results(v.value)]
                          for v in m_vars]
        results[str(weight_decay)] = {
            "mirrored": replica_values,
            "single": [v.numpy().tolist() for v in s_vars],
            "initial": [v.tolist() for v in _initial_values()],
            "mirrored_iterations": int(m_opt.iterations.numpy()),
            "single_iterations": int(s_opt.iterations.numpy()),
            "outside_scope_error": outside_scope_error,
        }
    print("RESULT " + json.dumps(results))


def test_mirrored_strategy_matches_single_device():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, __file__, "--mirrored-worker"], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    results = json.loads(line[len("RESULT "):])
    for weight_decay, res in results.items():
        assert res["mirrored_iterations"] == 3, weight_decay  # advanced once per step
        assert res["single_iterations"] == 3, weight_decay
        assert "strategy.scope()" in res["outside_scope_error"], weight_decay
        for name, replicas, single, initial in zip(NAMES, res["mirrored"], res["single"],
                                                   res["initial"]):
            assert len(replicas) == 2
            np.testing.assert_array_equal(replicas[0], replicas[1], err_msg=name)
            np.testing.assert_allclose(replicas[0], single, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name} wd={weight_decay}")
            # Training moved every variable (the comparison is not between initial values).
            assert np.max(np.abs(np.array(single) - np.array(initial))) > 1e-3, name


if __name__ == "__main__":
    if sys.argv[1:] == ["--mirrored-worker"]:
        _mirrored_worker()
    else:
        sys.exit(f"usage: python {sys.argv[0]} --mirrored-worker (run the tests with pytest)")
