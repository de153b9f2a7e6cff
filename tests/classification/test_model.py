"""XLNetClassifier / SequenceSummary: the original's summary semantics against a numpy
re-implementation, original variable names and checkpoint round trips, Keras config."""
import json

import numpy as np
import pytest
import tensorflow as tf

from xlnet_tf.modeling import checkpoint as ckpt_lib
from xlnet_tf.classification import SequenceSummary, XLNetClassifier, head_scope
from xlnet_tf.modeling.config import XLNetConfig
from xlnet_tf.modeling.model import XLNetLMModel

TINY = dict(n_layer=2, d_model=16, n_head=2, d_head=8, d_inner=24, ff_activation="gelu",
            untie_r=True, n_token=40)


def tiny(**kw):
    return XLNetConfig(**{**TINY, "dropout": 0.0, "dropatt": 0.0, **kw})


def randomize(model, seed=0):
    """Random values in every weight (LayerNorm gammas/betas and biases too), so no term of
    the computation is hidden behind a 0 or 1 initialisation."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.normal(0, 0.3, v.shape).astype(np.float32))


def inputs(b=3, t=7, pad=(2, 0, 4), seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(9, 40, (b, t))
    mask = np.zeros((b, t), np.float32)
    seg = np.zeros((b, t), np.int32)
    for i, p in enumerate(pad):
        mask[i, :p] = 1.0
        seg[i, :p] = 4
        ids[i, :p] = 0
        seg[i, -1] = 2
    return {"input_ids": tf.constant(ids, tf.int32), "seg_ids": tf.constant(seg),
            "input_mask": tf.constant(mask)}


# ------------------------------------------------------------------ numpy reference
def np_layer_norm(x, gamma, beta, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def np_summary(hidden, mask, summary_type, w, use_proj, n_head, d_head):
    """The original summarize_sequence, written independently with numpy loops/einsums."""
    h = hidden.astype(np.float64)
    if summary_type == "last":
        s = h[:, -1]
    elif summary_type == "first":
        s = h[:, 0]
    elif summary_type == "mean":
        s = h.mean(axis=1)
    else:
        b, t, d = h.shape
        s = np.zeros((b, d))
        for i in range(b):
            q = np.einsum("d,dnh->nh", w["summary_bias"], w["q"])            # [H, Dh]
            k = np.einsum("td,dnh->tnh", h[i], w["k"])                       # [T, H, Dh]
            v = np.einsum("td,dnh->tnh", h[i], w["v"])                       # [T, H, Dh]
            vec = np.zeros((n_head, d_head))
            for n in range(n_head):
                score = k[:, n] @ q[n] / np.sqrt(d_head)                     # [T]
                score = score - 1e30 * mask[i]
                p = np.exp(score - score.max())
                p = p / p.sum()
                vec[n] = p @ v[:, n]
            out = np.einsum("nh,dnh->d", vec, w["o"])                        # no residual
            s[i] = np_layer_norm(out, w["gamma"], w["beta"])
    if use_proj:
        s = np.tanh(s @ w["summary_kernel"] + w["summary_bias_proj"])
    return s


def summary_weights(layer):
    w = {}
    if layer.summary_type == "attn":
        w.update(summary_bias=layer.summary_bias.numpy(), q=layer.q_kernel.numpy(),
                 k=layer.k_kernel.numpy(), v=layer.v_kernel.numpy(), o=layer.o_kernel.numpy(),
                 gamma=layer.layer_norm.gamma.numpy(), beta=layer.layer_norm.beta.numpy())
    if layer.use_proj:
        w.update(summary_kernel=layer.summary_kernel.numpy(),
                 summary_bias_proj=layer.summary_bias_proj.numpy())
    return w


@pytest.mark.parametrize("summary_type", ["last", "first", "mean", "attn"])
@pytest.mark.parametrize("use_proj", [True, False])
def test_classifier_logits_match_numpy_summary_and_head(summary_type, use_proj):
    model = XLNetClassifier(tiny(), n_class=3, task_name="mnli_matched",
                            summary_type=summary_type, use_summ_proj=use_proj)
    randomize(model)
    x = inputs()
    logits = model(x)["logits"].numpy()
    hidden = model.transformer(x)["hidden"].numpy()
    s = np_summary(hidden, x["input_mask"].numpy(), summary_type,
                   summary_weights(model.sequence_summary), use_proj, 2, 8)
    expected = s @ model.logit.kernel.numpy() + model.logit.bias.numpy()
    assert logits.shape == (3, 3) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected, rtol=2e-4, atol=2e-5)


def test_summary_semantics_on_hand_made_hidden():
    """last = the CLS slot (end, left padding); mean includes padding (unmasked); attn ignores
    whatever sits at padded positions."""
    hidden = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4) / 10.0
    mask = np.array([[1, 1, 0, 0], [0, 0, 0, 0]], np.float32)
    kw = dict(use_proj=False, dropout=0.0, dropatt=0.0)
    last = SequenceSummary(4, 2, 2, "last", **kw)
    last.build()
    np.testing.assert_array_equal(last(tf.constant(hidden)).numpy(), hidden[:, -1])
    mean = SequenceSummary(4, 2, 2, "mean", **kw)
    mean.build()
    np.testing.assert_allclose(mean(tf.constant(hidden), tf.constant(mask)).numpy(),
                               hidden.mean(1), rtol=1e-6)
    attn = SequenceSummary(4, 2, 2, "attn", **kw)
    attn.build()
    for v in attn.weights:
        v.assign(np.random.default_rng(3).normal(0, 1, v.shape).astype(np.float32))
    changed = hidden.copy()
    changed[0, :2] += 100.0                                  # only the padded slots of row 0
    a = attn(tf.constant(hidden), tf.constant(mask)).numpy()
    b = attn(tf.constant(changed), tf.constant(mask)).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    c = attn(tf.constant(changed)).numpy()                   # without the mask it does change
    assert np.abs(c[0] - a[0]).max() > 1e-3
    np.testing.assert_allclose(c[1], a[1], rtol=1e-5, atol=1e-6)


def test_summary_dropout_applies_in_training_only():
    layer = SequenceSummary(16, 2, 8, "last", use_proj=False, dropout=0.5)
    layer.build()
    h = tf.ones([4, 3, 16])
    np.testing.assert_array_equal(layer(h, training=False).numpy(), np.ones([4, 16]))
    out = layer(h, training=True).numpy()
    assert set(np.unique(out)) <= {0.0, 2.0} and 0 < (out == 0).mean() < 1


def test_bad_summary_type():
    with pytest.raises(ValueError, match="summary_type must be one of"):
        SequenceSummary(16, 2, 8, "max")


# ------------------------------------------------------------------ names
def test_original_names_classification_attn():
    model = XLNetClassifier(tiny(), n_class=3, task_name="MNLI_Matched", summary_type="attn")
    names = model.original_name_map()
    head = {n: tuple(v.shape) for n, v in names.items() if not n.startswith("model/transformer")}
    assert head == {
        "model/sequnece_summary/summary/kernel": (16, 16),
        "model/sequnece_summary/summary/bias": (16,),
        "model/sequnece_summary/summary_bias": (16,),
        "model/sequnece_summary/abs_attn/q/kernel": (16, 2, 8),
        "model/sequnece_summary/abs_attn/k/kernel": (16, 2, 8),
        "model/sequnece_summary/abs_attn/v/kernel": (16, 2, 8),
        "model/sequnece_summary/abs_attn/o/kernel": (16, 2, 8),
        "model/sequnece_summary/abs_attn/LayerNorm/gamma": (16,),
        "model/sequnece_summary/abs_attn/LayerNorm/beta": (16,),
        "model/classification_mnli_matched/logit/kernel": (16, 3),
        "model/classification_mnli_matched/logit/bias": (3,),
    }
    # the fine-tuning graph of the original has no mask_emb; every other weight is named
    assert "model/transformer/mask_emb/mask_emb" not in names
    assert len(names) == len(model.weights) - 1
    assert len(model.trainable_variables) == len(names)


def test_original_names_regression_and_scopes():
    model = XLNetClassifier(tiny(), task_name="STS-B", is_regression=True, use_summ_proj=False)
    head = sorted(n for n in model.original_name_map() if not n.startswith("model/transformer"))
    assert head == ["model/regression_sts-b/logit/bias", "model/regression_sts-b/logit/kernel"]
    assert model(inputs())["logits"].shape == (3, 1)
    assert head_scope("imdb") == "classification_imdb"
    assert head_scope("sst-2", cls_scope="my_head") == "classification_my_head"
    assert head_scope("sts-b", is_regression=True, cls_scope="x") == "regression_sts-b"


@pytest.mark.parametrize("summary_type,regression", [("last", False), ("attn", False),
                                                     ("mean", True)])
def test_original_checkpoint_round_trip(tmp_path, summary_type, regression):
    kw = dict(n_class=4, task_name="yelp5", summary_type=summary_type, is_regression=regression)
    model = XLNetClassifier(tiny(), **kw)
    randomize(model, seed=5)
    x = inputs()
    want = model(x)["logits"].numpy()
    prefix = ckpt_lib.save_original_checkpoint(model, str(tmp_path / "model.ckpt"), 77)
    saved = dict(tf.train.list_variables(prefix))
    assert set(saved) == set(model.original_name_map()) | {"global_step"}
    fresh = XLNetClassifier(tiny(), **kw)
    result = ckpt_lib.load_original_checkpoint(fresh, prefix)
    assert result.missing == [] and result.unused == ["global_step"]
    np.testing.assert_array_equal(fresh(x)["logits"].numpy(), want)


def test_checkpoint_like_the_originals_loads_with_adam_slots(tmp_path):
    """A checkpoint as the original fine-tuning writes it: no mask_emb, Adam slots beside
    every variable, global_step; all weights load, slots are ignored."""
    model = XLNetClassifier(tiny(), n_class=2, task_name="sst-2")
    randomize(model, seed=9)
    x = inputs()
    want = model(x)["logits"].numpy()
    names = model.original_name_map()
    keys, values = [], []
    for n, v in sorted(names.items()):
        keys += [n, n + "/Adam", n + "/Adam_1"]
        values += [v.numpy(), np.zeros(v.shape, np.float32), np.ones(v.shape, np.float32)]
    keys += ["global_step", "beta1_power", "beta2_power"]
    values += [np.int64(1200), np.float32(0.9), np.float32(0.99)]
    prefix = str(tmp_path / "model.ckpt-1200")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=keys, shape_and_slices=[""] * len(keys),
                      tensors=[tf.constant(v) for v in values])
    fresh = XLNetClassifier(tiny(), n_class=2, task_name="sst-2")
    result = ckpt_lib.load_original_checkpoint(fresh, prefix)
    assert result.missing == []
    assert len(result.unused) == 2 * len(names) + 3
    np.testing.assert_array_equal(fresh(x)["logits"].numpy(), want)


def test_pretrained_checkpoint_initialises_backbone_only(tmp_path):
    lm = XLNetLMModel(tiny())
    randomize(lm, seed=2)
    prefix = ckpt_lib.save_original_checkpoint(lm, str(tmp_path / "xlnet_model.ckpt"))
    model = XLNetClassifier(tiny(), n_class=2, task_name="sst-2")
    result = ckpt_lib.load_original_checkpoint(model, prefix)
    assert sorted(result.missing) == sorted(
        n for n in model.original_name_map() if not n.startswith("model/transformer"))
    assert "model/lm_loss/bias" in result.unused
    assert "model/transformer/mask_emb/mask_emb" in result.unused
    x = inputs()
    np.testing.assert_allclose(model.transformer(x)["hidden"].numpy(),
                               lm.transformer(x)["hidden"].numpy(), rtol=1e-6, atol=1e-6)


def test_checkpoint_of_another_size_is_refused(tmp_path):
    big = XLNetClassifier(tiny(d_model=24, d_head=12), n_class=2, task_name="sst-2")
    prefix = ckpt_lib.save_original_checkpoint(big, str(tmp_path / "big.ckpt"))
    with pytest.raises(ValueError, match=r"has shape \[40, 24\] in the checkpoint but \[40, 16\]"):
        ckpt_lib.load_original_checkpoint(XLNetClassifier(tiny(), task_name="sst-2"), prefix)


# ------------------------------------------------------------------ config, options
def test_finetuning_forces_no_memory_no_bidata():
    model = XLNetClassifier(tiny(mem_len=16, reuse_len=8, bi_data=True, same_length=True),
                            task_name="cola")
    c = model.xlnet_config
    assert (c.mem_len, c.reuse_len, c.bi_data, c.same_length, c.attn_type) == \
        (None, None, False, False, "bi")
    out = model(inputs(b=3))                # odd batch: would be refused with bi_data
    assert out["logits"].shape == (3, 2)


def test_keras_config_round_trip(tmp_path):
    model = XLNetClassifier(tiny(clamp_len=5), n_class=5, task_name="yelp5",
                            summary_type="attn", use_summ_proj=False, cls_scope="y")
    cfg = model.get_config()
    json.dumps(cfg)
    clone = XLNetClassifier.from_config(cfg)
    assert clone.get_config() == cfg
    assert set(clone.original_name_map()) == set(model.original_name_map())
    assert clone.xlnet_config.clamp_len == 5
    randomize(model, seed=4)
    path = str(tmp_path / "m.keras")
    model.save(path)
    import keras
    loaded = keras.saving.load_model(path)
    x = inputs()
    np.testing.assert_allclose(loaded(x)["logits"].numpy(), model(x)["logits"].numpy(),
                               rtol=1e-6, atol=1e-6)


def test_hugging_face_weights_initialise_the_backbone(repo_root):
    """--init_checkpoint with HF weights (the tiny XLNetLMHeadModel fixture): the backbone
    loads through training.init_from_checkpoint, the new head keeps its initialisation."""
    from xlnet_tf import training
    config = XLNetConfig(n_layer=2, d_model=32, n_head=4, d_head=8, d_inner=48, n_token=96,
                         ff_activation="gelu", untie_r=True, dropout=0.0, dropatt=0.0)
    model = XLNetClassifier(config, n_class=2, task_name="sst-2")
    result = training.init_from_checkpoint(model, str(repo_root / "tests" / "golden" / "hf_tiny"))
    head = sorted(n for n in model.original_name_map() if not n.startswith("model/transformer"))
    assert sorted(result.missing) == head
    assert not any(n.startswith("model/transformer") for n in result.missing)
    from xlnet_tf.modeling.checkpoint import read_safetensors
    state = read_safetensors(str(repo_root / "tests" / "golden" / "hf_tiny" / "model.safetensors"))
    emb = state.get("transformer.word_embedding.weight", state.get("word_embedding.weight"))
    np.testing.assert_array_equal(model.transformer.word_embedding.numpy(), emb)
