"""XLNetMultipleChoice against the original's RACE head arithmetic written independently in
NumPy (float64: the original transformer equations of tests/numpy_reference.py, the
``<cls>`` summary with its tanh projection, the top-level ``logits/dense`` score per option,
softmax cross-entropy over the options), loaded from a checkpoint written under the
original's names, and our checkpoint written back under those names."""
import numpy as np
import tensorflow as tf

import numpy_reference as ref
from checkpoint_test_utils import write_original_checkpoint
from xlnet_tf.modeling import checkpoint as ckpt_lib
from xlnet_tf.modeling.config import XLNetConfig
from xlnet_tf.multiple_choice import XLNetMultipleChoice, choice_loss

SIZE = dict(n_layer=2, d_model=16, n_head=2, d_head=8, d_inner=24, ff_activation="gelu",
            untie_r=True, n_token=40)
B, C, T = 2, 3, 7


def original_weights(seed=0):
    """{original name: array} of a RACE checkpoint with random values everywhere; the names
    and shapes are the original's (spelled out for the head, taken from a model for the
    backbone, whose names are tested elsewhere)."""
    rng = np.random.default_rng(seed)
    names = XLNetMultipleChoice(XLNetConfig(**SIZE)).original_name_map()
    weights = {n: rng.normal(0, 0.3, v.shape) for n, v in names.items()}
    # a larger head, so that the options' scores spread well beyond the tolerance
    weights["logits/dense/kernel"] = rng.normal(0, 2.0, (SIZE["d_model"], 1))
    d = SIZE["d_model"]
    assert weights["logits/dense/kernel"].shape == (d, 1)
    assert weights["logits/dense/bias"].shape == (1,)
    assert weights["model/sequnece_summary/summary/kernel"].shape == (d, d)
    assert not [n for n in weights if n.startswith("model/logits") or "mask_emb" in n]
    return weights


def race_inputs(seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 40, (B, C, T)).astype(np.int32)
    seg = np.zeros((B, C, T), np.int32)
    mask = np.zeros((B, C, T), np.float32)
    for b in range(B):
        for c in range(C):
            n_pad = (b + 2 * c) % 4
            ids[b, c, :n_pad], seg[b, c, :n_pad], mask[b, c, :n_pad] = 0, 4, 1.0
            seg[b, c, n_pad + 3:] = 1
            ids[b, c, -1], seg[b, c, -1] = 3, 2
    return {"input_ids": ids, "seg_ids": seg, "input_mask": mask}


def numpy_race_head(weights, inputs, labels):
    """The original get_race_loss: [B, C, T] -> [B*C, T] through the transformer, summary
    of the last (<cls>) position, tanh(summary W + b), logits/dense, reshape [B, C], mean
    softmax cross-entropy."""
    flat = {k: v.reshape(B * C, T) for k, v in inputs.items()}
    hidden = ref.forward({**weights, "model/lm_loss/bias": np.zeros(SIZE["n_token"])},
                         dict(SIZE), flat["input_ids"], flat["seg_ids"],
                         flat["input_mask"])["hidden"]                        # [B*C, T, d]
    summary = np.tanh(hidden[:, -1] @ weights["model/sequnece_summary/summary/kernel"]
                      + weights["model/sequnece_summary/summary/bias"])       # [B*C, d]
    logits = (summary @ weights["logits/dense/kernel"]
              + weights["logits/dense/bias"]).reshape(B, C)                   # [B, C]
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return logits, -logp[np.arange(B), labels].mean()


def test_head_parity_with_the_original_arithmetic(tmp_path):
    weights = original_weights()
    prefix = write_original_checkpoint(weights, str(tmp_path / "race_model.ckpt"))
    model = XLNetMultipleChoice(XLNetConfig(**SIZE, dropout=0.0, dropatt=0.0))
    result = ckpt_lib.load_original_checkpoint(model, prefix)
    assert not result.missing, result.missing
    inputs, labels = race_inputs(), np.array([2, 0])
    logits = model({k: tf.constant(v) for k, v in inputs.items()})["logits"].numpy()
    want_logits, want_loss = numpy_race_head(weights, inputs, labels)
    assert logits.shape == (B, C)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-4, atol=1e-5)
    assert np.ptp(want_logits) > 0.1          # the options really score differently
    loss = float(tf.reduce_mean(choice_loss(logits, labels)))
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)


def test_our_checkpoint_writes_the_original_names_and_round_trips(tmp_path):
    model = XLNetMultipleChoice(XLNetConfig(**SIZE, dropout=0.0, dropatt=0.0))
    rng = np.random.default_rng(3)
    for v in model.weights:
        v.assign(rng.normal(0, 0.3, v.shape).astype(np.float32))
    prefix = ckpt_lib.save_original_checkpoint(model, str(tmp_path / "out" / "xlnet_model.ckpt"),
                                               global_step=12)
    saved = dict(tf.train.list_variables(prefix))
    assert saved["logits/dense/kernel"] == [16, 1] and saved["logits/dense/bias"] == [1]
    assert saved["model/sequnece_summary/summary/kernel"] == [16, 16]
    assert "model/transformer/layer_1/rel_attn/q/kernel" in saved
    assert set(saved) == set(model.original_name_map()) | {"global_step"}
    fresh = XLNetMultipleChoice(XLNetConfig(**SIZE, dropout=0.0, dropatt=0.0))
    ckpt_lib.load_original_checkpoint(fresh, prefix)
    inputs = {k: tf.constant(v) for k, v in race_inputs(5).items()}
    np.testing.assert_array_equal(model(inputs)["logits"].numpy(),
                                  fresh(inputs)["logits"].numpy())


def test_keras_config_round_trip_and_option_count_free():
    model = XLNetMultipleChoice(XLNetConfig(**SIZE), summary_type="mean", use_summ_proj=False)
    again = XLNetMultipleChoice.from_config(model.get_config())
    assert again.summary_type == "mean" and not again.use_summ_proj
    # the same weights score any number of options
    ids = tf.fill([1, 5, T], 7)
    assert again({"input_ids": ids, "seg_ids": tf.zeros_like(ids)})["logits"].shape == (1, 5)
