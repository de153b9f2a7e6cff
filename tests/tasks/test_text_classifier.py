"""XLNetTextClassifier on raw strings: from_preset on the three folder layouts, predict equal
to the library's feature path, fit, .keras round trip, export, regression."""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import xlnet_tf
import xlnet_tf.optimizers
from xlnet_tf.classification.features import convert_single_example
from xlnet_tf.classification.model import XLNetClassifier
from xlnet_tf.classification.readers import InputExample
from xlnet_tf.modeling.model import XLNetModel
from xlnet_tf.presets import backbone_from_preset, detect_preset
from xlnet_tf.tasks import XLNetTextClassifier
from xlnet_tf.tokenization.tokenizer import Tokenizer

from hf_test_utils import write_safetensors
from spm_test_utils import FIXTURE_MODEL

T = 24
TEXTS = ["a gorgeous, witty film", "a bore from start to finish, 2000, really",
         "  It's ``fine''  ", "an instant classic"]
PAIRS = (["the cat sat", "a long first sentence that goes on and on and on and on",
          "x", "same"], ["on the mat", "short", "", "same"])


def tiny_config(**kw):
    return xlnet_tf.XLNetConfig(n_token=2000, n_layer=2, d_model=16, n_head=2, d_head=8,
                                d_inner=32, ff_activation="gelu", untie_r=True, **kw)


def to_hf_state(model):
    """{Hugging Face name: array} of an XLNetModel (written here from HF's layout: dense
    weights [out, in], per-layer relative biases and segment embeddings)."""
    names = model.original_name_map()
    get = lambda n: names[f"model/transformer/{n}"].numpy()  # noqa: E731
    state = {"transformer.word_embedding.weight": get("word_embedding/lookup_table"),
             "transformer.mask_emb": get("mask_emb/mask_emb")}
    for i in range(model.xlnet_config.n_layer):
        p, q = f"transformer.layer.{i}.", f"layer_{i}/"
        for k in ("q", "k", "v", "r", "o"):
            state[p + f"rel_attn.{k}"] = get(q + f"rel_attn/{k}/kernel")
        for k in ("r_w_bias", "r_r_bias", "r_s_bias", "seg_embed"):
            state[p + f"rel_attn.{k}"] = get(k)[i]
        state[p + "rel_attn.layer_norm.weight"] = get(q + "rel_attn/LayerNorm/gamma")
        state[p + "rel_attn.layer_norm.bias"] = get(q + "rel_attn/LayerNorm/beta")
        state[p + "ff.layer_norm.weight"] = get(q + "ff/LayerNorm/gamma")
        state[p + "ff.layer_norm.bias"] = get(q + "ff/LayerNorm/beta")
        for k in ("layer_1", "layer_2"):
            state[p + f"ff.{k}.weight"] = get(q + f"ff/{k}/kernel").T
            state[p + f"ff.{k}.bias"] = get(q + f"ff/{k}/bias")
    return state


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    """The same random backbone in the three layouts, and the reference backbone."""
    root = tmp_path_factory.mktemp("presets")
    tf.keras.utils.set_random_seed(7)
    ref = XLNetModel(tiny_config(dropout=0.0, dropatt=0.0))
    folders = {k: root / k for k in ("original", "ours", "hf")}
    for f in folders.values():
        f.mkdir()
        shutil.copy(FIXTURE_MODEL, f / "spiece.model")
    xlnet_tf.save_original_checkpoint(ref, str(folders["original"] / "xlnet_model.ckpt"))
    ref.xlnet_config.to_json(str(folders["original"] / "xlnet_config.json"))
    # ours: a training checkpoint (ckpt-N) of a whole classifier, as run_classifier.py leaves
    run_model = XLNetClassifier(tiny_config(), n_class=2)
    xlnet_tf.load_original_checkpoint(run_model, str(folders["original"] / "xlnet_model.ckpt"))
    tf.train.CheckpointManager(tf.train.Checkpoint(model=run_model), str(folders["ours"]),
                               max_to_keep=1).save(checkpoint_number=3)
    run_model.xlnet_config.to_json(str(folders["ours"] / "xlnet_config.json"))
    write_safetensors(str(folders["hf"] / "model.safetensors"), to_hf_state(ref))
    c = ref.xlnet_config
    (folders["hf"] / "config.json").write_text(
        '{"model_type": "xlnet", "vocab_size": %d, "d_model": %d, "n_layer": %d, "n_head": %d,'
        ' "d_head": %d, "d_inner": %d, "ff_activation": "gelu_new"}'
        % (c.n_token, c.d_model, c.n_layer, c.n_head, c.d_head, c.d_inner))
    return ref, {k: str(v) for k, v in folders.items()}


def library_features(texts, texts_b=None, lower=False):
    tok = Tokenizer(str(FIXTURE_MODEL), lower=lower)
    feats = [convert_single_example(InputExample(str(i), a, None if texts_b is None else
                                                 texts_b[i], "0"), ["0", "1", "2"], T, tok)
             for i, a in enumerate(texts)]
    return {"input_ids": np.array([f.input_ids for f in feats], np.int32),
            "seg_ids": np.array([f.seg_ids for f in feats], np.int32),
            "input_mask": np.array([f.input_mask for f in feats], np.float32)}


def test_from_preset_three_layouts_give_the_reference_backbone(presets):
    ref, folders = presets
    feats = library_features(TEXTS)
    want = ref(feats)["hidden"].numpy()
    layouts = {}
    for kind, folder in folders.items():
        model, preset = backbone_from_preset(folder, dropout=0.0, dropatt=0.0)
        layouts[kind] = preset.layout
        np.testing.assert_allclose(model(feats)["hidden"].numpy(), want, atol=1e-5,
                                   err_msg=kind)
        clf = XLNetTextClassifier.from_preset(folder, num_classes=2, sequence_length=T,
                                              dropout=0.0, dropatt=0.0)
        np.testing.assert_allclose(clf.classifier.transformer(feats)["hidden"].numpy(), want,
                                   atol=1e-5, err_msg=kind)
    assert layouts == {"original": "original", "ours": "xlnet_tf run", "hf": "huggingface"}


def test_from_preset_errors_name_what_is_missing(presets, tmp_path):
    _, folders = presets
    with pytest.raises(FileNotFoundError, match="neither xlnet_config.json"):
        detect_preset(str(tmp_path))
    shutil.copy(os.path.join(folders["original"], "xlnet_config.json"), tmp_path)
    with pytest.raises(FileNotFoundError, match="lacks a checkpoint.*spiece.model"):
        detect_preset(str(tmp_path))
    with pytest.raises(ValueError, match="num_classes"):
        XLNetTextClassifier.from_preset(folders["original"], num_classes=0)


def test_tokenizer_and_preprocessor_from_preset_give_the_library_features(presets, tmp_path):
    """``Tokenizer.from_preset`` / ``XLNetPreprocessor.from_preset`` on each layout: the
    folder's spiece.model, the ids and packed features of the library's feature builder."""
    _, folders = presets
    want = library_features(TEXTS, lower=True)
    direct = Tokenizer(str(FIXTURE_MODEL), lower=True)
    for kind, folder in folders.items():
        tok = Tokenizer.from_preset(folder, lower=True)
        assert [tok.encode_ids(t) for t in TEXTS] == [direct.encode_ids(t) for t in TEXTS]
        pre = xlnet_tf.XLNetPreprocessor.from_preset(folder, sequence_length=T, lower=True)
        got = pre(TEXTS)
        for key in ("input_ids", "seg_ids", "input_mask"):
            np.testing.assert_array_equal(got[key].numpy(), want[key], err_msg=(kind, key))
    with pytest.raises(FileNotFoundError, match="lacks spiece.model"):
        Tokenizer.from_preset(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        xlnet_tf.XLNetPreprocessor.from_preset(str(tmp_path / "absent"))


@pytest.fixture(scope="module")
def clf(presets):
    _, folders = presets
    tf.keras.utils.set_random_seed(3)
    return XLNetTextClassifier.from_preset(folders["original"], num_classes=3,
                                           sequence_length=T, dropout=0.0, dropatt=0.0,
                                           label_names=["neg", "neu", "pos"])


def reference_classifier(clf, presets):
    """The library's own path: an XLNetClassifier loaded by load_original_checkpoint, with
    the (new, random) head of ``clf`` copied in by original names."""
    _, folders = presets
    model = XLNetClassifier(tiny_config(dropout=0.0, dropatt=0.0), n_class=3)
    xlnet_tf.load_original_checkpoint(model, os.path.join(folders["original"],
                                                           "xlnet_model.ckpt"))
    theirs = clf.classifier.original_name_map()
    for name, var in model.original_name_map().items():
        if not name.startswith("model/transformer/"):
            var.assign(theirs[name].numpy())
    return model


def test_predict_on_raw_strings_equals_features_and_xlnet_classifier(clf, presets):
    ref = reference_classifier(clf, presets)
    for x, b in ((TEXTS, None), (PAIRS[0], PAIRS[1])):
        want = ref(library_features(x, b))["logits"].numpy()
        got = clf.predict(x if b is None else (x, b), batch_size=3, verbose=0)
        np.testing.assert_allclose(got, want, atol=1e-5)
        if b is not None:
            # in tf.data a pair is a dict (Keras reads a 2-tuple element as (x, y))
            ds = tf.data.Dataset.from_tensor_slices({"text_a": x, "text_b": b}).batch(2)
            np.testing.assert_allclose(clf.predict(ds, verbose=0), want, atol=1e-5)
    probs = clf.predict_proba(TEXTS, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_keras_round_trip_and_export_give_identical_outputs(clf, tmp_path):
    want = clf.predict(TEXTS, verbose=0)
    path = str(tmp_path / "clf.keras")
    clf.save(path)
    again = tf.keras.models.load_model(path)
    assert isinstance(again, XLNetTextClassifier) and again.label_names == ["neg", "neu", "pos"]
    assert again.preprocessor.serialized_model_proto() == FIXTURE_MODEL.read_bytes()
    np.testing.assert_allclose(again.predict(TEXTS, verbose=0), want, atol=1e-6)
    out = clf.export(str(tmp_path / "export"))
    assert out.endswith(os.path.join("export", "1"))
    served = tf.saved_model.load(out).signatures["serving_default"](
        text_a=tf.constant(TEXTS))
    np.testing.assert_allclose(served["logits"].numpy(), want, atol=1e-5)
    assert [s.decode() for s in served["label"].numpy()] == \
        [["neg", "neu", "pos"][i] for i in want.argmax(axis=1)]


def test_fit_reduces_the_loss_on_a_separable_toy_set(presets):
    _, folders = presets
    tf.keras.utils.set_random_seed(11)
    model = XLNetTextClassifier.from_preset(folders["hf"], num_classes=2, sequence_length=16,
                                            dropout=0.0, dropatt=0.0)
    good = [f"good movie number {i}" for i in range(16)]
    bad = [f"terrible awful thing {i}" for i in range(16)]
    x, y = good + bad, np.array([1] * 16 + [0] * 16)
    model.compile(learning_rate=1e-2, warmup_steps=2, train_steps=40)
    history = model.fit(x, y, batch_size=8, epochs=6, shuffle=True, verbose=0).history
    after = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert len(history["loss"]) == 6
    # the first epoch's mean loss starts near log(2) for a new head
    assert history["loss"][0] > 0.6 and after["loss"] < 0.5 * history["loss"][0], history
    assert after["accuracy"] == 1.0


def test_regression_with_one_class(presets):
    _, folders = presets
    model = XLNetTextClassifier.from_preset(folders["ours"], num_classes=1, sequence_length=16)
    assert model.is_regression and model.classifier.n_class == 1
    model.compile(learning_rate=1e-3, weight_decay=0.01)
    opt = model.optimizer
    assert isinstance(opt, xlnet_tf.optimizers.AdamWeightDecay)
    decayed = dict(zip(opt._variable_names, opt._decay_flags))
    assert decayed["model/transformer/layer_0/ff/layer_1/kernel"]
    assert not decayed["model/transformer/layer_0/ff/LayerNorm/gamma"]
    assert not decayed["model/regression_task/logit/bias"]
    x = (["a", "b c", "d", "e f g"], ["x", "y", "z", "w"])
    y = np.array([0.0, 1.0, 2.5, 5.0], np.float32)
    history = model.fit(x, y, batch_size=4, epochs=5, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    scores = model(x).numpy()
    assert scores.shape == (4, 1)
    np.testing.assert_allclose(np.mean((scores[:, 0] - y) ** 2), history["loss"][-1],
                               rtol=0.5)
