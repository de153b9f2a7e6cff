"""The tagger head: its original-style names survive a save/load of an original-name
checkpoint, the loss only counts labelled positions (worked by hand), and the backbone is
the one the classifier uses (a backbone checkpoint loads with only the head missing)."""
import math

import numpy as np
import pytest
import tensorflow as tf

from xlnet_tf import XLNetConfig
from xlnet_tf.modeling.checkpoint import load_original_checkpoint, save_original_checkpoint
from xlnet_tf.token_classification.model import XLNetTokenClassifier
from xlnet_tf.token_classification.task import token_loss
from hf_test_utils import write_safetensors

CONFIG = XLNetConfig(n_layer=1, d_model=16, n_head=2, d_head=8, d_inner=32, n_token=100,
                     dropout=0.0, dropatt=0.0)


def batch(T=6):
    rng = np.random.RandomState(0)
    return {"input_ids": tf.constant(rng.randint(9, 100, (2, T)), tf.int32),
            "seg_ids": tf.zeros((2, T), tf.int32),
            "input_mask": tf.constant([[1, 1, 0, 0, 0, 0], [0] * T], tf.float32)}


def test_names_and_round_trip(tmp_path):
    model = XLNetTokenClassifier(CONFIG, 5)
    names = model.original_name_map()
    assert names["model/token_classification_ner/logit/kernel"].shape == (16, 5)
    assert names["model/token_classification_ner/logit/bias"].shape == (5,)
    assert "model/transformer/mask_emb/mask_emb" not in names
    assert all(k.startswith("model/") for k in names)
    out = model(batch())["logits"]
    assert out.shape == (2, 6, 5) and out.dtype == tf.float32
    prefix = save_original_checkpoint(model, str(tmp_path / "ckpt"))
    other = XLNetTokenClassifier(CONFIG, 5)
    assert not np.allclose(other(batch())["logits"], out)
    load_original_checkpoint(other, prefix)
    np.testing.assert_allclose(other(batch())["logits"], out, rtol=1e-6)
    assert "token_classification_pos" in list(
        XLNetTokenClassifier(CONFIG, 5, scope="pos").original_name_map())[-1]


def test_loss_counts_labelled_positions_only():
    logits = tf.constant([[[2.0, 0.0], [0.0, 0.0], [0.0, 3.0]]])         # [1, 3, 2]
    labels = tf.constant([[0, -1, 0]])
    loss, accuracy, count = token_loss(logits, labels)
    expected = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(3.0))) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert float(accuracy) == 0.5 and float(count) == 2.0
    loss, accuracy, count = token_loss(logits, tf.fill([1, 3], -1))
    assert (float(loss), float(accuracy), float(count)) == (0.0, 0.0, 0.0)


def test_padding_does_not_change_real_positions():
    """Left padding is masked: the logits of the real tokens do not depend on what the
    padding positions hold."""
    model = XLNetTokenClassifier(CONFIG, 3)
    a = batch()
    b = dict(a, input_ids=tf.tensor_scatter_nd_update(a["input_ids"], [[0, 0], [0, 1]],
                                                      [50, 60]))
    np.testing.assert_allclose(model(a)["logits"][0, 2:], model(b)["logits"][0, 2:],
                               rtol=1e-5, atol=1e-6)


def test_hugging_face_token_classification_weights_load(tmp_path):
    """XLNetForTokenClassification = the HF tiny backbone + ``classifier`` [n_tags, d]."""
    import json
    import os

    from xlnet_tf import load_hf_checkpoint
    from xlnet_tf.modeling.checkpoint import read_safetensors
    hf_tiny = os.path.join(os.path.dirname(__file__), "..", "golden", "hf_tiny")
    with open(os.path.join(hf_tiny, "config.json")) as f:
        hf = json.load(f)
    config = XLNetConfig(n_token=hf["vocab_size"], d_model=hf["d_model"], n_layer=hf["n_layer"],
                         n_head=hf["n_head"], d_head=hf["d_model"] // hf["n_head"],
                         d_inner=hf["d_inner"], untie_r=True, dropout=0.0, dropatt=0.0,
                         ff_activation="gelu" if hf["ff_activation"] == "gelu_new" else "relu")
    state = read_safetensors(os.path.join(hf_tiny, "model.safetensors"))
    rng = np.random.RandomState(1)
    state["classifier.weight"] = rng.randn(7, hf["d_model"]).astype(np.float32)
    state["classifier.bias"] = rng.randn(7).astype(np.float32)
    write_safetensors(tmp_path / "model.safetensors", state)
    model = XLNetTokenClassifier(config, 7)
    load_hf_checkpoint(model, str(tmp_path))
    np.testing.assert_array_equal(model.logit.kernel.numpy(), state["classifier.weight"].T)
    np.testing.assert_array_equal(model.logit.bias.numpy(), state["classifier.bias"])
    emb = model.original_name_map()["model/transformer/word_embedding/lookup_table"]
    np.testing.assert_array_equal(emb.numpy(), state["transformer.word_embedding.weight"])
