"""Golden parity: our model, loaded through load_original_checkpoint from arrays under the
ORIGINAL TF1 names, reproduces Hugging Face's PyTorch XLNet (float64, see
tools/make_golden.py) and the float64 NumPy transliteration of the original equations
(tests/numpy_reference.py) to 1e-5 relative in float32."""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import xlnet_tf
from checkpoint_test_utils import write_original_checkpoint
from xlnet_tf.modeling.config import CHECKPOINT_KEYS

GOLDEN = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden", "*.npz")))
RUN_KEYS = ("mem_len", "reuse_len", "bi_data", "clamp_len", "same_length", "attn_type")


def config_from_golden(z, **overrides):
    cfg = json.loads(str(z["config_json"]))
    kwargs = {k: cfg[k] for k in CHECKPOINT_KEYS}
    kwargs.update({k: cfg[k] for k in RUN_KEYS if k in cfg})
    kwargs.update(dropout=0.0, dropatt=0.0)
    kwargs.update(overrides)
    return xlnet_tf.XLNetConfig(**kwargs)


def golden_weights(z):
    return {k[2:]: z[k] for k in z.files if k.startswith("w/")}


def step_inputs(z, k, n_layer):
    p = f"s{k}/in/"
    inputs = {}
    for name in ("input_ids", "seg_ids"):
        if p + name in z.files:
            inputs[name] = tf.constant(z[p + name].astype(np.int32))
    for name in ("input_mask", "perm_mask", "target_mapping", "inp_q"):
        if p + name in z.files:
            inputs[name] = tf.constant(z[p + name].astype(np.float32))
    if p + "mems_0" in z.files:
        inputs["mems"] = [tf.constant(z[p + f"mems_{i}"].astype(np.float32))
                          for i in range(n_layer)]
    return inputs


def assert_close(actual, expected, what, rtol=1e-5):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(np.abs(expected).max(), 1e-6)
    err = np.abs(actual - expected).max() / scale
    assert err <= rtol, f"{what}: max error {err:.3g} relative to scale {scale:.3g} > {rtol}"


def num_steps(z):
    return len({k.split("/")[0] for k in z.files if k.startswith("s") and "/" in k})


@pytest.mark.parametrize("path", GOLDEN, ids=[os.path.basename(p)[:-4] for p in GOLDEN])
def test_golden_parity(path, tmp_path):
    z = np.load(path)
    config = config_from_golden(z)
    model = xlnet_tf.XLNetLMModel(config)
    prefix = write_original_checkpoint(golden_weights(z), str(tmp_path / "xlnet_model.ckpt"))
    result = xlnet_tf.load_original_checkpoint(model, prefix)
    assert not result.missing, result.missing
    carried = None
    for k in range(num_steps(z)):
        inputs = step_inputs(z, k, config.n_layer)
        if carried is not None and "mems" in inputs:
            # our own new_mems of the previous step must equal the golden mems fed here
            for i, m in enumerate(carried):
                assert_close(m, inputs["mems"][i], f"step {k} carried mems[{i}]")
        out = model(inputs, training=False)
        p = f"s{k}/out/"
        assert_close(out["hidden"], z[p + "hidden"], f"step {k} hidden")
        assert_close(out["logits"], z[p + "logits"], f"step {k} logits")
        if p + "query_hidden" in z.files:
            assert_close(out["query_hidden"], z[p + "query_hidden"], f"step {k} query_hidden")
        if p + "new_mems_0" in z.files:
            assert len(out["new_mems"]) == config.n_layer
            for i in range(config.n_layer):
                assert_close(out["new_mems"][i], z[p + f"new_mems_{i}"], f"step {k} mems {i}")
        carried = out["new_mems"]


def test_batch_rows_are_independent():
    """Row b of a batch equals that example run alone (catches reshape-for-transpose bugs)."""
    z = np.load([p for p in GOLDEN if "cls_padding_gelu_untied" in p][0])
    model = xlnet_tf.XLNetLMModel(config_from_golden(z))
    inputs = step_inputs(z, 0, 2)
    full = model(inputs)["hidden"].numpy()
    for b in range(full.shape[0]):
        single = {k: v[b:b + 1] for k, v in inputs.items()}
        np.testing.assert_allclose(model(single)["hidden"].numpy()[0], full[b], rtol=1e-5,
                                   atol=1e-5)


def _numpy_reference():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "numpy_reference", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "numpy_reference.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("same_length", [False, True])
@pytest.mark.parametrize("untie_r", [True, False])
def test_uni_with_padding_perm_and_mems_vs_numpy_reference(same_length, untie_r, tmp_path):
    """attn_type='uni' with padding, perm_mask, target_mapping, memory and batch > 1: a case
    Hugging Face cannot run; checked against the float64 NumPy transliteration."""
    ref = _numpy_reference()
    rng = np.random.default_rng(7)
    config = xlnet_tf.XLNetConfig(n_layer=2, d_model=16, n_head=2, d_head=8, d_inner=24,
                                  n_token=40, untie_r=untie_r, ff_activation="gelu",
                                  attn_type="uni", same_length=same_length, mem_len=3,
                                  reuse_len=None, dropout=0.0, dropatt=0.0)
    model = xlnet_tf.XLNetLMModel(config)
    # randomise every weight (biases, LayerNorm) so nothing is trivially 0 or 1
    for name, var in model.original_name_map().items():
        var.assign(rng.normal(0, 0.3, var.shape).astype(np.float32) +
                   (1.0 if name.endswith("gamma") else 0.0))
    weights = {n: np.asarray(v, np.float64) for n, v in model.original_name_map().items()}
    B, T, M, P = 3, 5, 3, 2
    input_mask = np.zeros((B, T), np.float32)
    input_mask[0, :1] = 1
    input_mask[2, :3] = 1
    perm = (rng.random((B, T, T)) < 0.3).astype(np.float32)
    tm = np.zeros((B, P, T), np.float32)
    for b in range(B):
        for p, pos in enumerate(rng.choice(T, P, replace=False)):
            tm[b, p, pos] = 1
    inputs = {"input_ids": rng.integers(0, 40, (B, T)).astype(np.int32),
              "seg_ids": rng.integers(0, 3, (B, T)).astype(np.int32),
              "input_mask": input_mask, "perm_mask": perm, "target_mapping": tm,
              "mems": [rng.normal(0, 1, (B, M, 16)).astype(np.float32) for _ in range(2)]}
    expected = ref.forward(weights, config_dict(config), **inputs)
    out = model({k: (tf.constant(v) if not isinstance(v, list) else [tf.constant(x) for x in v])
                 for k, v in inputs.items()})
    assert_close(out["hidden"], expected["hidden"], "hidden")
    assert_close(out["query_hidden"], expected["query_hidden"], "query_hidden")
    assert_close(out["logits"], expected["logits"], "logits")
    for i in range(2):
        assert_close(out["new_mems"][i], expected[f"new_mems_{i}"], f"new_mems[{i}]")


def config_dict(config):
    return {k: getattr(config, k) for k in CHECKPOINT_KEYS + RUN_KEYS}
