"""Loading a real Hugging Face XLNet folder (``save_pretrained`` output) without torch.

tests/golden/hf_tiny/ holds a tiny randomly initialised ``XLNetLMHeadModel`` saved by
Hugging Face itself (config.json + model.safetensors, float32, tied ``lm_loss.weight`` left
out) and the float64 outputs HF computed from exactly those weights (tools/make_hf_fixture.py).
Our model, built from the HF config and loaded with ``xlnet_tf.load_hf_checkpoint``, must give
the same numbers to 1e-5 relative; bad inputs must fail with errors that name what is wrong;
and the weights must survive the trip through the original checkpoint format.
"""
import dataclasses
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import xlnet_tf
from xlnet_tf import presets
from xlnet_tf.modeling.checkpoint import original_names

HF_TINY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden", "hf_tiny")

def config_from_hf(folder, **overrides):
    """The library's XLNetConfig of a Hugging Face folder, run without memory or dropout,
    with ``overrides`` (any field) applied."""
    config = presets.config_from_hf(os.path.join(folder, "config.json"), mem_len=None,
                                    dropout=0.0, dropatt=0.0)
    return dataclasses.replace(config, **overrides)


@pytest.fixture(scope="module")
def expected():
    return np.load(os.path.join(HF_TINY, "expected.npz"))


@pytest.fixture(scope="module")
def hf_model():
    """Our LM model loaded from the HF folder, and the LoadResult."""
    model = xlnet_tf.XLNetLMModel(config_from_hf(HF_TINY))
    result = xlnet_tf.load_hf_checkpoint(model, HF_TINY)
    return model, result


def case_inputs(z, case):
    p = f"{case}/in/"
    inputs = {}
    for name in ("input_ids", "seg_ids", "input_mask", "perm_mask", "target_mapping"):
        if p + name in z.files:
            dtype = np.int32 if name in ("input_ids", "seg_ids") else np.float32
            inputs[name] = tf.constant(z[p + name].astype(dtype))
    return inputs


def assert_close(actual, expected, what, rtol=1e-5):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(np.abs(expected).max(), 1e-6)
    err = np.abs(actual - expected).max() / scale
    assert err <= rtol, f"{what}: max error {err:.3g} relative to scale {scale:.3g} > {rtol}"


def test_fixture_is_a_real_hf_folder(expected):
    """Guards the fixture itself: HF's own layout, tied LM weight left out, padding differs
    per row (a reshape-for-transpose bug only shows then)."""
    files = set(os.listdir(HF_TINY))
    assert {"config.json", "model.safetensors"} <= files
    assert os.path.getsize(os.path.join(HF_TINY, "model.safetensors")) < 300 * 1024
    state = xlnet_tf.modeling.checkpoint.read_safetensors(os.path.join(HF_TINY, "model.safetensors"))
    assert "lm_loss.weight" not in state and "transformer.word_embedding.weight" in state
    assert all(v.dtype == np.float32 for v in state.values())
    pads = expected["cls/in/input_mask"].sum(axis=1)
    assert len(set(pads.tolist())) == len(pads) >= 2, pads


def test_load_result_is_complete(hf_model):
    model, result = hf_model
    assert result.loaded == sorted(original_names(model))
    assert result.missing == [] and result.unused == []


def test_loaded_weights_follow_the_mapping(hf_model):
    """Spot-check the layout conversions against the raw safetensors arrays: dense kernels
    transposed, r biases stacked per layer, 3-D projections unchanged."""
    model, _ = hf_model
    state = xlnet_tf.modeling.checkpoint.read_safetensors(os.path.join(HF_TINY, "model.safetensors"))
    names = original_names(model)
    np.testing.assert_array_equal(names["model/transformer/layer_1/ff/layer_1/kernel"].numpy(),
                                  state["transformer.layer.1.ff.layer_1.weight"].T)
    np.testing.assert_array_equal(names["model/transformer/r_r_bias"].numpy()[1],
                                  state["transformer.layer.1.rel_attn.r_r_bias"])
    np.testing.assert_array_equal(names["model/transformer/seg_embed"].numpy()[0],
                                  state["transformer.layer.0.rel_attn.seg_embed"])
    np.testing.assert_array_equal(names["model/transformer/layer_0/rel_attn/o/kernel"].numpy(),
                                  state["transformer.layer.0.rel_attn.o"])
    np.testing.assert_array_equal(names["model/lm_loss/bias"].numpy(), state["lm_loss.bias"])


def test_padded_batch_with_segments_matches_hf(hf_model, expected):
    model, _ = hf_model
    out = model(case_inputs(expected, "cls"), training=False)
    assert_close(out["hidden"], expected["cls/out/hidden"], "hidden")
    assert_close(out["logits"], expected["cls/out/logits"], "logits")


def test_two_stream_matches_hf(hf_model, expected):
    model, _ = hf_model
    out = model(case_inputs(expected, "perm"), training=False)
    assert_close(out["hidden"], expected["perm/out/hidden"], "hidden")
    assert_close(out["query_hidden"], expected["perm/out/query_hidden"], "query_hidden")
    assert_close(out["logits"], expected["perm/out/logits"], "logits")


def test_backbone_only_model_loads_and_matches(expected):
    """XLNetModel (no LM head): the checkpoint's lm_loss.bias is reported unused."""
    model = xlnet_tf.XLNetModel(config_from_hf(HF_TINY))
    result = xlnet_tf.load_hf_checkpoint(model, os.path.join(HF_TINY, "model.safetensors"))
    assert result.missing == [] and result.unused == ["model/lm_loss/bias"]
    out = model(case_inputs(expected, "cls"), training=False)
    assert_close(out["hidden"], expected["cls/out/hidden"], "hidden")


@pytest.mark.parametrize("override,variable", [
    (dict(d_inner=40), "model/transformer/layer_0/ff/layer_1/kernel"),
    (dict(n_token=100), "model/transformer/word_embedding/lookup_table"),
    (dict(n_head=2, d_head=16), "model/transformer/r_w_bias"),
])
def test_wrong_size_model_names_the_variable(override, variable):
    model = xlnet_tf.XLNetLMModel(config_from_hf(HF_TINY, **override))
    with pytest.raises(ValueError) as info:
        xlnet_tf.load_hf_checkpoint(model, HF_TINY)
    message = str(info.value)
    assert variable in message and "shape" in message, message


@pytest.mark.parametrize("n_layer", [1, 3])
def test_wrong_layer_count_is_an_error(n_layer):
    """A model with fewer or more layers than the checkpoint must not load: fewer would
    silently drop the checkpoint's last layers, more would leave layers at random."""
    model = xlnet_tf.XLNetLMModel(config_from_hf(HF_TINY, n_layer=n_layer))
    with pytest.raises(ValueError, match="layer"):
        xlnet_tf.load_hf_checkpoint(model, HF_TINY)


def test_folder_without_weights_is_file_not_found(tmp_path):
    shutil.copy(os.path.join(HF_TINY, "config.json"), tmp_path / "config.json")
    model = xlnet_tf.XLNetLMModel(config_from_hf(HF_TINY))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        xlnet_tf.load_hf_checkpoint(model, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        xlnet_tf.load_hf_checkpoint(model, str(tmp_path / "no_such_folder"))


def test_corrupt_safetensors_names_the_file(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    model = xlnet_tf.XLNetLMModel(config_from_hf(HF_TINY))
    with pytest.raises(ValueError, match="model.safetensors"):
        xlnet_tf.load_hf_checkpoint(model, str(tmp_path))


def test_round_trip_through_original_checkpoint(hf_model, expected, tmp_path):
    """HF folder -> our model -> save_original_checkpoint -> a fresh model ->
    load_original_checkpoint: identical weights and identical outputs."""
    model, _ = hf_model
    prefix = xlnet_tf.save_original_checkpoint(model, str(tmp_path / "ckpt" / "xlnet_model.ckpt"))
    names = set(tf.train.load_checkpoint(prefix).get_variable_to_shape_map())
    assert names == set(original_names(model)) | {"global_step"}

    fresh = xlnet_tf.XLNetLMModel(config_from_hf(HF_TINY))
    before = original_names(fresh)["model/transformer/layer_0/rel_attn/q/kernel"].numpy()
    assert not np.array_equal(before, original_names(model)[
        "model/transformer/layer_0/rel_attn/q/kernel"].numpy())  # really a different start
    result = xlnet_tf.load_original_checkpoint(fresh, prefix)
    assert result.missing == [] and result.unused == ["global_step"]
    for name, var in original_names(model).items():
        np.testing.assert_array_equal(original_names(fresh)[name].numpy(), var.numpy(),
                                      err_msg=name)
    for case in ("cls", "perm"):
        inputs = case_inputs(expected, case)
        a, b = model(inputs, training=False), fresh(inputs, training=False)
        for key in ("hidden", "logits"):
            np.testing.assert_array_equal(b[key].numpy(), a[key].numpy(), err_msg=f"{case} {key}")
        assert_close(b["logits"], expected[f"{case}/out/logits"], f"{case} logits after trip")
