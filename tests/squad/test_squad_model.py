"""XLNetSquadModel: the SQuAD heads of the original's ``get_qa_outputs`` against a NumPy
transcription of them (float64, literal concatenations), the concat orders shown by zeroing kernel halves, the
answer_class soft start and bias-free dense_1, the loss on a hand-computed case, and the
original-named checkpoint round trip."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from xlnet_tf.modeling import checkpoint as ckpt_lib
from xlnet_tf.modeling.config import XLNetConfig
from xlnet_tf.squad.model import XLNetSquadModel
from xlnet_tf.squad.task import SquadTask, squad_loss
from hf_test_utils import write_safetensors

D = 16
CONFIG = XLNetConfig(n_layer=2, d_model=D, n_head=2, d_head=8, d_inner=32, n_token=50,
                     dropout=0.0, dropatt=0.0)
B, T = 3, 9
HEAD_NAMES = {
    "start_logits/dense/kernel": (D, 1), "start_logits/dense/bias": (1,),
    "end_logits/dense_0/kernel": (2 * D, D), "end_logits/dense_0/bias": (D,),
    "end_logits/LayerNorm/gamma": (D,), "end_logits/LayerNorm/beta": (D,),
    "end_logits/dense_1/kernel": (D, 1), "end_logits/dense_1/bias": (1,),
    "answer_class/dense_0/kernel": (2 * D, D), "answer_class/dense_0/bias": (D,),
    "answer_class/dense_1/kernel": (D, 1),
}


def randomize_heads(model, seed=0, scale=0.5):
    """Non-trivial head weights (biases, LayerNorm gamma/beta included)."""
    rng = np.random.default_rng(seed)
    for name, var in model.heads.original_name_map().items():
        var.assign(rng.normal(0.0, scale, var.shape).astype(np.float32))


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    m = XLNetSquadModel(CONFIG, start_n_top=3, end_n_top=2)
    randomize_heads(m)
    return m


def make_inputs(seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 50, (B, T)).astype(np.int32)
    # P tokens, <sep>, Q, <sep>, <cls>, padding: p_mask 0 on P and <cls>
    plen = np.array([4, 3, 5])
    qlen = np.array([1, 2, 1])
    seg = np.full((B, T), 3, np.int32)
    p_mask = np.ones((B, T), np.float32)
    input_mask = np.ones((B, T), np.float32)
    cls_index = plen + qlen + 2
    for b in range(B):
        seg[b, :plen[b] + 1] = 0
        seg[b, plen[b] + 1:cls_index[b]] = 1
        seg[b, cls_index[b]] = 2
        p_mask[b, :plen[b]] = 0
        p_mask[b, cls_index[b]] = 0
        input_mask[b, :cls_index[b] + 1] = 0
    return {"input_ids": ids, "seg_ids": seg, "input_mask": input_mask, "p_mask": p_mask,
            "cls_index": cls_index.astype(np.int32)}


# ------------------------------------------------------------------ NumPy transcription
def np_weights(model):
    return {k: v.numpy().astype(np.float64) for k, v in model.heads.original_name_map().items()}


def log_softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def layer_norm(x, gamma, beta, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def np_end_logits(w, hidden_b, start_feature, p_mask_b):
    """One example, one start: the original heads with the literal [token, start] concatenation."""
    t = hidden_b.shape[0]
    x = np.concatenate([hidden_b, np.tile(start_feature[None], [t, 1])], -1)   # [T, 2d]
    x = np.tanh(x @ w["end_logits/dense_0/kernel"] + w["end_logits/dense_0/bias"])
    x = layer_norm(x, w["end_logits/LayerNorm/gamma"], w["end_logits/LayerNorm/beta"])
    logits = (x @ w["end_logits/dense_1/kernel"])[:, 0] + w["end_logits/dense_1/bias"][0]
    return logits * (1 - p_mask_b) - 1e30 * p_mask_b


def np_heads(w, hidden, p_mask, cls_index, start_positions=None, k=3, k_end=2):
    out = {}
    start = (hidden @ w["start_logits/dense/kernel"])[..., 0] + w["start_logits/dense/bias"][0]
    start = start * (1 - p_mask) - 1e30 * p_mask
    out["start_logits"] = start
    out["start_log_probs"] = log_softmax(start)
    if start_positions is not None:
        out["end_logits"] = np.stack([
            np_end_logits(w, hidden[b], hidden[b, start_positions[b]], p_mask[b])
            for b in range(len(hidden))])
        out["end_log_probs"] = log_softmax(out["end_logits"])
    else:
        top = np.argsort(-out["start_log_probs"], axis=-1, kind="stable")[:, :k]   # [B, k]
        out["start_top_index"] = top
        out["start_top_log_probs"] = np.take_along_axis(out["start_log_probs"], top, -1)
        end_idx, end_lp = [], []
        for b in range(len(hidden)):
            rows_i, rows_l = [], []
            for i in range(k):
                lp = log_softmax(np_end_logits(w, hidden[b], hidden[b, top[b, i]], p_mask[b]))
                order = np.argsort(-lp, kind="stable")[:k_end]
                rows_i.extend(order)
                rows_l.extend(lp[order])
            end_idx.append(rows_i)
            end_lp.append(rows_l)
        out["end_top_index"] = np.array(end_idx)
        out["end_top_log_probs"] = np.array(end_lp)
    # answer_class: the EXPECTED start state (soft), start first, <cls> second, no dense_1 bias
    p = np.exp(log_softmax(start))
    start_feature = np.einsum("bt,btd->bd", p, hidden)
    cls_feature = hidden[np.arange(len(hidden)), cls_index]
    x = np.concatenate([start_feature, cls_feature], -1)
    x = np.tanh(x @ w["answer_class/dense_0/kernel"] + w["answer_class/dense_0/bias"])
    out["cls_logits"] = (x @ w["answer_class/dense_1/kernel"])[:, 0]
    return out


def hidden_of(model, inputs):
    return model.transformer({"input_ids": inputs["input_ids"],
                              "seg_ids": inputs["seg_ids"],
                              "input_mask": inputs["input_mask"]})["hidden"].numpy()


# ------------------------------------------------------------------ tests
def test_heads_match_numpy_transcription_teacher_forcing(model):
    x = make_inputs()
    start_positions = np.array([2, 0, 4])
    got = model(dict(x, start_positions=start_positions))
    want = np_heads(np_weights(model), hidden_of(model, x).astype(np.float64), x["p_mask"],
                    x["cls_index"], start_positions)
    for key in ("start_logits", "start_log_probs", "end_logits", "end_log_probs",
                "cls_logits"):
        g, w = got[key].numpy(), want[key]
        finite = w > -1e29
        np.testing.assert_allclose(g[finite], w[finite], atol=2e-5, rtol=1e-5, err_msg=key)
        assert np.array_equal(g <= -1e29, ~finite), key
    # masked positions are exactly the original's logit * 0 - 1e30
    assert np.all(got["start_logits"].numpy()[x["p_mask"] == 1] == np.float32(-1e30))


def test_heads_match_numpy_transcription_beam(model):
    x = make_inputs(seed=2)
    got = model(x)
    want = np_heads(np_weights(model), hidden_of(model, x).astype(np.float64), x["p_mask"],
                    x["cls_index"], None, k=3, k_end=2)
    for key in ("start_top_index", "end_top_index"):
        np.testing.assert_array_equal(got[key].numpy(), want[key], err_msg=key)
    for key in ("start_top_log_probs", "end_top_log_probs", "cls_logits"):
        np.testing.assert_allclose(got[key].numpy(), want[key], atol=2e-5, rtol=1e-5,
                                   err_msg=key)
    # the beam never proposes a p_mask position (query, <sep>, padding)
    for b in range(B):
        allowed = set(np.nonzero(x["p_mask"][b] == 0)[0])
        assert set(got["start_top_index"].numpy()[b]) <= allowed
        assert set(got["end_top_index"].numpy()[b]) <= allowed


def test_end_concat_order_token_rows_first_start_rows_second():
    """Zeroing the LAST d rows of end_logits/dense_0 removes every dependence on the start;
    zeroing the FIRST d rows removes every dependence on the token (all unmasked end logits
    of one start become equal)."""
    keras.utils.set_random_seed(3)
    m = XLNetSquadModel(CONFIG, 3, 2)
    randomize_heads(m, seed=4)
    x = make_inputs()
    kernel = m.heads.end_kernel_0
    full = kernel.numpy()

    def end_logits(start_positions):
        return m(dict(x, start_positions=np.asarray(start_positions)))["end_logits"].numpy()

    a, b = end_logits([0, 1, 2]), end_logits([3, 2, 0])
    assert np.abs(a - b).max() > 1e-3                  # depends on the start as built
    kernel.assign(np.concatenate([full[:D], np.zeros_like(full[D:])]))
    np.testing.assert_allclose(end_logits([0, 1, 2]), end_logits([3, 2, 0]), atol=1e-6)
    kernel.assign(np.concatenate([np.zeros_like(full[:D]), full[D:]]))
    e = end_logits([0, 1, 2])
    for row, pm in zip(e, x["p_mask"]):
        vals = row[pm == 0]
        np.testing.assert_allclose(vals, vals[0], atol=1e-6)
    kernel.assign(full)


def test_answer_class_uses_soft_start_not_gold_and_has_no_dense_1_bias(model):
    x = make_inputs()
    c1 = model(dict(x, start_positions=np.array([0, 0, 0])))["cls_logits"].numpy()
    c2 = model(dict(x, start_positions=np.array([3, 2, 4])))["cls_logits"].numpy()
    c3 = model(x)["cls_logits"].numpy()
    np.testing.assert_array_equal(c1, c2)               # the gold start is not used
    np.testing.assert_allclose(c1, c3, atol=1e-6)       # training == inference
    names = model.original_name_map()
    assert "answer_class/dense_1/bias" not in names
    assert tuple(names["answer_class/dense_1/kernel"].shape) == (D, 1)
    # start first: zero the first d rows of answer_class/dense_0 and cls_logits depend on
    # <cls> only, so changing the start head (its kernel) leaves them unchanged
    w0 = model.heads.cls_kernel_0
    full = w0.numpy()
    try:
        w0.assign(np.concatenate([np.zeros_like(full[:D]), full[D:]]))
        before = model(x)["cls_logits"].numpy()
        sk = model.heads.start_kernel
        old = sk.numpy()
        sk.assign(old * -3.0)
        np.testing.assert_allclose(model(x)["cls_logits"].numpy(), before, atol=1e-6)
        sk.assign(old)
    finally:
        w0.assign(full)


def test_loss_formula_on_a_hand_case():
    start_lp = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]], np.float32))
    end_lp = np.log(np.array([[0.2, 0.2, 0.6], [0.9, 0.05, 0.05]], np.float32))
    outputs = {"start_log_probs": tf.constant(start_lp), "end_log_probs": tf.constant(end_lp),
               "cls_logits": tf.constant([0.0, 2.0])}
    total, parts = squad_loss(outputs, [0, 2], [2, 0], [1.0, 0.0])
    ce_start = -(math.log(0.5) + math.log(0.7)) / 2
    ce_end = -(math.log(0.6) + math.log(0.9)) / 2
    # sigmoid xent: label 1, logit 0 -> log 2; label 0, logit 2 -> log(1 + e^2)
    ce_cls = (math.log(2.0) + math.log(1.0 + math.exp(2.0))) / 2
    assert float(parts["start_loss"]) == pytest.approx(ce_start, rel=1e-6)
    assert float(parts["end_loss"]) == pytest.approx(ce_end, rel=1e-6)
    assert float(parts["cls_loss"]) == pytest.approx(ce_cls, rel=1e-6)
    assert float(total) == pytest.approx(0.5 * (ce_start + ce_end) + 0.5 * ce_cls, rel=1e-6)


def test_original_names_and_checkpoint_round_trip(model, tmp_path):
    names = model.original_name_map()
    heads = {n: tuple(v.shape) for n, v in names.items() if not n.startswith("model/")}
    assert heads == HEAD_NAMES                           # top level, no model/ prefix
    assert "model/transformer/mask_emb/mask_emb" not in names
    assert all(n.startswith("model/transformer/") for n in names if n not in HEAD_NAMES)
    assert len(names) == len(model.trainable_variables)  # every trained weight is named
    prefix = str(tmp_path / "squad" / "xlnet_model.ckpt")
    ckpt_lib.save_original_checkpoint(model, prefix, global_step=7)
    stored = dict(tf.train.list_variables(prefix))
    assert set(stored) == set(names) | {"global_step"}
    for n, shape in HEAD_NAMES.items():
        assert tuple(stored[n]) == shape
    fresh = XLNetSquadModel(CONFIG, 3, 2)
    result = ckpt_lib.load_original_checkpoint(fresh, prefix)
    assert not result.missing
    x = make_inputs(seed=5)
    a, b = model(x), fresh(x)
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)


def test_pretrained_checkpoint_leaves_heads_initialised(tmp_path):
    """A pretrained (head-less) checkpoint loads the backbone and reports the 11 head
    variables as missing (they keep their initialisation)."""
    from xlnet_tf.modeling.model import XLNetLMModel
    lm = XLNetLMModel(CONFIG)
    prefix = str(tmp_path / "pre" / "xlnet_model.ckpt")
    ckpt_lib.save_original_checkpoint(lm, prefix)
    m = XLNetSquadModel(CONFIG)
    result = ckpt_lib.load_original_checkpoint(m, prefix)
    assert sorted(result.missing) == sorted(HEAD_NAMES)
    np.testing.assert_array_equal(m.transformer.word_embedding.numpy(),
                                  lm.transformer.word_embedding.numpy())


def test_config_round_trip_and_keras_serialization(model):
    cfg = model.get_config()
    clone = XLNetSquadModel.from_config(cfg)
    assert clone.get_config() == cfg
    assert (clone.start_n_top, clone.end_n_top) == (3, 2)
    ser = keras.saving.serialize_keras_object(model)
    again = keras.saving.deserialize_keras_object(ser)
    assert isinstance(again, XLNetSquadModel) and again.xlnet_config == model.xlnet_config
    # fine-tuning options are forced
    c = XLNetSquadModel(CONFIG.replace(mem_len=8, bi_data=True)).xlnet_config
    assert (c.mem_len, c.bi_data, c.attn_type) == (None, False, "bi")


def test_training_step_reaches_every_weight_and_bfloat16_masks_in_float32():
    keras.utils.set_random_seed(7)
    task = SquadTask(CONFIG, None, T, start_n_top=3, end_n_top=2)
    m = task.build_model()
    x = make_inputs()
    batch = dict(x, start_positions=np.array([1, 5, 4]), end_positions=np.array([2, 5, 4]),
                 is_impossible=np.array([0.0, 1.0, 0.0], np.float32))
    with tf.GradientTape() as tape:
        loss, _, metrics = task.loss(m, batch, (), True)
    grads = tape.gradient(loss, m.trainable_variables)
    missing = [v.path for v, g in zip(m.trainable_variables, grads) if g is None]
    assert not missing
    assert set(metrics) >= {"start_loss", "end_loss", "cls_loss"}
    m16 = task.build_model(dtype="mixed_bfloat16")
    out = m16(x)
    assert out["start_logits"].dtype == tf.float32
    assert np.all(out["start_logits"].numpy()[x["p_mask"] == 1] == np.float32(-1e30))
    assert np.all(np.isfinite(out["end_top_log_probs"].numpy()))


def test_bad_inputs_are_named():
    m = XLNetSquadModel(CONFIG)
    x = make_inputs()
    with pytest.raises(ValueError, match="p_mask"):
        m({k: v for k, v in x.items() if k != "p_mask"})
    with pytest.raises(ValueError, match="start_n_top"):
        XLNetSquadModel(CONFIG, start_n_top=0)
    # one name for the segment ids: the records' on-disk "segment_ids" is not a model input
    renamed = {("segment_ids" if k == "seg_ids" else k): v for k, v in x.items()}
    with pytest.raises(ValueError, match=r"lack \['seg_ids'\]"):
        m(renamed)


def test_hugging_face_question_answering_weights_load_heads_included(model, tmp_path):
    """An XLNetForQuestionAnswering-style state dict (torch layout: dense weights [out, in],
    per-layer r_*_bias) built from our weights loads back into a fresh model, heads
    included, with identical outputs."""
    w = {k: v.numpy() for k, v in model.original_name_map().items()}
    t = "model/transformer"
    state = {"transformer.word_embedding.weight": w[f"{t}/word_embedding/lookup_table"],
             "transformer.mask_emb": np.zeros((1, 1, D), np.float32)}
    for i in range(CONFIG.n_layer):
        p, q = f"transformer.layer.{i}.", f"{t}/layer_{i}/"
        for k in ("q", "k", "v", "r", "o"):
            state[p + f"rel_attn.{k}"] = w[q + f"rel_attn/{k}/kernel"]
        for k in ("r_w_bias", "r_r_bias", "r_s_bias"):
            state[p + f"rel_attn.{k}"] = w[f"{t}/{k}"][i]
        state[p + "rel_attn.seg_embed"] = w[f"{t}/seg_embed"][i]
        state[p + "rel_attn.layer_norm.weight"] = w[q + "rel_attn/LayerNorm/gamma"]
        state[p + "rel_attn.layer_norm.bias"] = w[q + "rel_attn/LayerNorm/beta"]
        state[p + "ff.layer_norm.weight"] = w[q + "ff/LayerNorm/gamma"]
        state[p + "ff.layer_norm.bias"] = w[q + "ff/LayerNorm/beta"]
        for k in ("layer_1", "layer_2"):
            state[p + f"ff.{k}.weight"] = w[q + f"ff/{k}/kernel"].T
            state[p + f"ff.{k}.bias"] = w[q + f"ff/{k}/bias"]
    for name in HEAD_NAMES:
        hf = name.replace("/", ".").replace("LayerNorm.gamma", "LayerNorm.weight").replace(
            "LayerNorm.beta", "LayerNorm.bias").replace(".kernel", ".weight")
        state[hf] = w[name].T if name.endswith("kernel") else w[name]
    path = tmp_path / "model.safetensors"
    write_safetensors(path, state)
    fresh = XLNetSquadModel(CONFIG, 3, 2)
    result = ckpt_lib.load_hf_checkpoint(fresh, str(path))
    assert not result.missing and set(HEAD_NAMES) <= set(result.loaded)
    x = make_inputs(seed=6)
    a, b = model(x), fresh(x)
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)
