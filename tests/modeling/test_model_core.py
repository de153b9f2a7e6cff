"""Config, parameter counts, checkpoints (original names, native), Keras config round trip
and the clear errors of the model core."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import xlnet_tf
from xlnet_tf.modeling.config import XLNET_BASE, XLNET_LARGE, XLNetConfig
from xlnet_tf.modeling.layers import rel_shift, relative_positional_encoding
from xlnet_tf.modeling.masks import attention_masks

TINY = dict(n_layer=2, d_model=16, n_head=2, d_head=8, d_inner=24, ff_activation="gelu",
            untie_r=True, n_token=40)


def tiny(**kw):
    return XLNetConfig(**{**TINY, "dropout": 0.0, "dropatt": 0.0, **kw})


def random_inputs(b=2, t=6, seed=0):
    rng = np.random.default_rng(seed)
    return {"input_ids": tf.constant(rng.integers(0, 40, (b, t)), tf.int32),
            "seg_ids": tf.constant(rng.integers(0, 2, (b, t)), tf.int32)}


# ---------------------------------------------------------------- config
ORIGINAL_STYLE_JSON = """{
    "d_head": 64, 
    "d_inner": 3072, 
    "d_model": 768, 
    "ff_activation": "gelu", 
    "n_head": 12, 
    "n_layer": 12, 
    "n_token": 32000, 
    "untie_r": true
}"""


def test_config_json_byte_round_trip(tmp_path):
    src = tmp_path / "xlnet_config.json"
    src.write_text(ORIGINAL_STYLE_JSON)
    config = XLNetConfig.from_json(str(src), mem_len=384)
    assert config.checkpoint_dict() == XLNET_BASE and config.mem_len == 384
    out = tmp_path / "out.json"
    config.to_json(str(out))
    assert out.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("content,needle", [
    ({k: v for k, v in XLNET_BASE.items() if k != "d_head"}, "missing keys ['d_head']"),
    ({**XLNET_BASE, "d_embed": 768}, "unknown keys ['d_embed']"),
    ({**XLNET_BASE, "ff_activation": "swish"}, "ff_activation"),
    ({**XLNET_BASE, "n_layer": 0}, "n_layer"),
])
def test_config_file_errors_name_the_problem(tmp_path, content, needle):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError) as e:
        XLNetConfig.from_json(str(path))
    assert needle in str(e.value) and str(path) in str(e.value)


def test_config_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.json"):
        XLNetConfig.from_json("/nonexistent/nope.json")


# ---------------------------------------------------------------- sizes
def test_xlnet_base_and_large_parameter_counts():
    base = xlnet_tf.XLNetLMModel(XLNetConfig(**XLNET_BASE))
    assert base.count_params() == 116_750_336
    names = base.original_name_map()
    assert "model/lm_loss/bias" in names and "model/transformer/mask_emb/mask_emb" in names
    assert sum(int(np.prod(v.shape)) for v in names.values()) == 116_750_336
    del base
    assert XLNetConfig(**XLNET_LARGE).num_parameters() == 360_300_800


def test_xlnet_large_builds_with_exact_parameter_count():
    large = xlnet_tf.XLNetLMModel(XLNetConfig(**XLNET_LARGE))
    assert large.count_params() == 360_300_800


# ---------------------------------------------------------------- pieces, hand-computed
def test_rel_shift_closed_form():
    t, k = 3, 5
    r = k + t
    x = np.arange(2 * 1 * t * r, dtype=np.float32).reshape(2, 1, t, r)
    out = rel_shift(tf.constant(x), k).numpy()
    for i in range(t):
        for j in range(k):
            assert out[0, 0, i, j] == x[0, 0, i, t - i + j]


def test_positional_encoding_hand_computed():
    # qlen 1, klen 2, d 4: pos_seq = [2, 1, 0]; inv_freq = [1, 1/100]
    pe = relative_positional_encoding(1, 2, 4, "bi", bi_data=True, batch_size=2).numpy()
    pos = np.array([2.0, 1.0, 0.0])
    inv = np.array([1.0, 0.01])
    fwd = np.concatenate([np.sin(np.outer(pos, inv)), np.cos(np.outer(pos, inv))], -1)
    bwd = np.concatenate([np.sin(np.outer(-pos, inv)), np.cos(np.outer(-pos, inv))], -1)
    np.testing.assert_allclose(pe[0], fwd, atol=1e-6)
    np.testing.assert_allclose(pe[1], bwd, atol=1e-6)
    clamped = relative_positional_encoding(1, 2, 4, "bi", clamp_len=1).numpy()[0]
    np.testing.assert_allclose(clamped[0], fwd[1], atol=1e-6)  # distance 2 clipped to 1


def test_mask_drawn_example():
    """The example drawn in xlnet_tf/masks.py: T=3, M=1, third token padding."""
    content, query = attention_masks(3, 1, input_mask=tf.constant([[0.0, 0.0, 1.0]]))
    np.testing.assert_array_equal(content.numpy()[0, 0].astype(int),
                                  [[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(np.broadcast_to(query.numpy()[0, 0], (3, 4)).astype(int),
                                  [[1, 1, 1, 0]] * 3)


def test_mask_uni_same_length_hand_computed():
    content, query = attention_masks(3, 2, attn_type="uni", same_length=True)
    # query i sees keys i .. M+i (M+1 keys each); content also always sees itself
    expected = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1]])
    np.testing.assert_array_equal(query.numpy()[0, 0].astype(int), expected)
    np.testing.assert_array_equal(content.numpy()[0, 0].astype(int), expected)


# ---------------------------------------------------------------- checkpoints
def test_save_original_then_load_round_trip(tmp_path):
    a = xlnet_tf.XLNetLMModel(tiny())
    b = xlnet_tf.XLNetLMModel(tiny())
    prefix = str(tmp_path / "xlnet_model.ckpt")
    xlnet_tf.save_original_checkpoint(a, prefix)
    names = dict(tf.train.list_variables(prefix))
    assert names["model/transformer/layer_1/rel_attn/o/kernel"] == [16, 2, 8]
    assert names["model/transformer/r_w_bias"] == [2, 2, 8]
    assert "global_step" in names
    result = xlnet_tf.load_original_checkpoint(b, prefix)
    assert not result.missing and result.unused == ["global_step"]
    inputs = random_inputs()
    np.testing.assert_array_equal(a(inputs)["logits"].numpy(), b(inputs)["logits"].numpy())
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".ckpt_tmp_")]


def test_load_errors_name_the_variable(tmp_path):
    prefix = str(tmp_path / "xlnet_model.ckpt")
    xlnet_tf.save_original_checkpoint(xlnet_tf.XLNetLMModel(tiny(d_inner=32)), prefix)
    model = xlnet_tf.XLNetLMModel(tiny())
    before = model.transformer.blocks[0].ff.kernel_1.numpy().copy()
    with pytest.raises(ValueError, match=r"ff/layer_1/(kernel|bias).*\[\d+.*another model size"):
        xlnet_tf.load_original_checkpoint(model, prefix)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        xlnet_tf.load_original_checkpoint(model, str(tmp_path / "missing.ckpt"))
    # untie_r mismatch
    with pytest.raises(ValueError, match="r_w_bias"):
        xlnet_tf.load_original_checkpoint(xlnet_tf.XLNetLMModel(tiny(d_inner=32, untie_r=False)),
                                          prefix)
    # a checkpoint with fewer layers: partial backbone refused
    prefix2 = str(tmp_path / "small.ckpt")
    xlnet_tf.save_original_checkpoint(xlnet_tf.XLNetLMModel(tiny(n_layer=1)), prefix2)
    with pytest.raises(ValueError, match="partial backbone"):
        xlnet_tf.load_original_checkpoint(xlnet_tf.XLNetLMModel(tiny()), prefix2)
    # ... and a checkpoint with more layers than the model is refused too
    with pytest.raises(ValueError, match="larger model"):
        xlnet_tf.load_original_checkpoint(xlnet_tf.XLNetLMModel(tiny(n_layer=1)), prefix)
    del before


def _save_arrays(prefix, arrays):
    keys = sorted(arrays)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=keys, shape_and_slices=[""] * len(keys),
                      tensors=[tf.constant(arrays[k]) for k in keys])


def test_bare_model_loads_an_original_finetuning_checkpoint_without_mask_emb(tmp_path, caplog):
    """The original's fine-tuning checkpoints have no mask_emb (only the pretraining query
    stream uses it): a bare XLNetModel loads them, reports mask_emb as missing and warns;
    every other backbone variable is still required and the layer count still checked."""
    a = xlnet_tf.XLNetModel(tiny(init_std=0.5))
    inputs = random_inputs()
    want = a(inputs)["hidden"].numpy()
    names = a.original_name_map(include_mask_emb=False)
    arrays = {n: v.numpy() for n, v in names.items()}
    arrays.update({"model/classification_sst-2/logit/kernel": np.ones((16, 2), np.float32),
                   "global_step": np.int64(7)})
    prefix = str(tmp_path / "model.ckpt-7")
    _save_arrays(prefix, arrays)
    b = xlnet_tf.XLNetModel(tiny())
    b(inputs)
    mask_before = b.mask_emb.numpy().copy()
    with caplog.at_level("WARNING", logger="xlnet_tf"):
        result = xlnet_tf.load_original_checkpoint(b, prefix)
    assert result.missing == ["model/transformer/mask_emb/mask_emb"]
    assert len(result.loaded) == len(names)
    assert "mask_emb" in caplog.text and prefix in caplog.text
    np.testing.assert_array_equal(b.mask_emb.numpy(), mask_before)
    np.testing.assert_array_equal(b(inputs)["hidden"].numpy(), want)
    # any other absent backbone variable is still a partial backbone
    del arrays["model/transformer/layer_1/ff/layer_2/bias"]
    _save_arrays(str(tmp_path / "partial.ckpt"), arrays)
    with pytest.raises(ValueError, match=r"layer_1/ff/layer_2/bias.*partial backbone"):
        xlnet_tf.load_original_checkpoint(xlnet_tf.XLNetModel(tiny()),
                                          str(tmp_path / "partial.ckpt"))
    # ... and more layers than the model has is refused
    with pytest.raises(ValueError, match="larger model"):
        xlnet_tf.load_original_checkpoint(xlnet_tf.XLNetModel(tiny(n_layer=1)), prefix)


def test_native_checkpoint_and_keras_config_round_trip(tmp_path):
    a = xlnet_tf.XLNetLMModel(tiny(mem_len=4))
    ckpt = tf.train.Checkpoint(model=a)
    path = ckpt.save(str(tmp_path / "native"))
    cfg = a.get_config()
    b = xlnet_tf.XLNetLMModel.from_config(json.loads(json.dumps(cfg)))
    assert b.xlnet_config == a.xlnet_config and isinstance(b, xlnet_tf.XLNetLMModel)
    tf.train.Checkpoint(model=b).restore(path).assert_existing_objects_matched()
    inputs = random_inputs()
    np.testing.assert_array_equal(a(inputs)["logits"].numpy(), b(inputs)["logits"].numpy())
    with pytest.raises(ValueError, match="object-based"):
        xlnet_tf.load_original_checkpoint(b, path)


# ---------------------------------------------------------------- input errors
def test_bad_inputs_give_clear_errors():
    model = xlnet_tf.XLNetLMModel(tiny(bi_data=True))
    with pytest.raises(ValueError, match="even batch"):
        model(random_inputs(b=3))
    model = xlnet_tf.XLNetLMModel(tiny())
    inputs = random_inputs(b=2, t=6)
    with pytest.raises(ValueError, match="perm_mask has shape"):
        model({**inputs, "perm_mask": tf.zeros([2, 5, 5])})
    with pytest.raises(ValueError, match="input_mask has shape"):
        model({**inputs, "input_mask": tf.zeros([2, 7])})
    with pytest.raises(ValueError, match="mems must be a list of n_layer=2"):
        model({**inputs, "mems": [tf.zeros([2, 3, 16])]})
    with pytest.raises(ValueError, match="unknown input keys"):
        model({**inputs, "token_type_ids": inputs["seg_ids"]})


def test_memory_carries_reuse_part_without_gradient():
    model = xlnet_tf.XLNetLMModel(tiny(mem_len=5, reuse_len=4))
    inputs = random_inputs(b=2, t=6)
    with tf.GradientTape() as tape:
        out = model(inputs)
        loss = tf.reduce_sum(out["new_mems"][1])
    assert all(g is None for g in tape.gradient(loss, model.trainable_variables))
    assert out["new_mems"][0].shape == (2, 4, 16)
    out2 = model({**inputs, "mems": out["new_mems"]})
    # memory = last 5 of [previous 4 | current first 4]
    emb = tf.gather(model.transformer.word_embedding, inputs["input_ids"]).numpy()
    np.testing.assert_allclose(out2["new_mems"][0].numpy(),
                               np.concatenate([emb[:, :4], emb[:, :4]], 1)[:, -5:], rtol=1e-6)


# ---------------------------------------------------------------- dropout, recompute
def _grads(model, inputs):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            out = model(inputs, training=True)
            loss = tf.reduce_mean(tf.square(out["logits"]))
        grads = tape.gradient(loss, model.trainable_variables)
        return loss, [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                      for g, v in zip(grads, model.trainable_variables)]
    return step()


@pytest.mark.parametrize("query_chunk", [None, 2, 4])
def test_recompute_gives_the_same_loss_and_gradients_with_dropout(query_chunk):
    """recompute (optionally with the content-stream attention in blocks of query rows,
    4 = uneven blocks of 4 + 2) equals the plain path, dropout masks included.  Large
    initial weights so that every attention term (positions included) moves the result.
    Seeded, so the initial weights do not depend on which tests ran before."""
    tf.keras.utils.set_random_seed(0)
    base = tiny(dropout=0.2, dropatt=0.2, mem_len=4, init_std=0.5)
    a = xlnet_tf.XLNetLMModel(base)
    b = xlnet_tf.XLNetLMModel(base.replace(recompute=True), query_chunk=query_chunk)
    assert [blk.rel_attn.query_chunk for blk in b.transformer.blocks] == [query_chunk] * 2
    for va, vb in zip(a.weights, b.weights):
        vb.assign(va)
    b.transformer.seed_generator.state.assign(a.transformer.seed_generator.state)
    rng = np.random.default_rng(3)
    tm = np.zeros((2, 2, 6), np.float32)
    tm[:, 0, 1] = tm[:, 1, 4] = 1
    inputs = {**random_inputs(), "perm_mask": tf.constant((rng.random((2, 6, 6)) < 0.3)
                                                          .astype(np.float32)),
              "target_mapping": tf.constant(tm),
              "mems": [tf.constant(rng.normal(size=(2, 3, 16)).astype(np.float32))] * 2}
    la, ga = _grads(a, inputs)
    lb, gb = _grads(b, inputs)
    np.testing.assert_allclose(lb.numpy(), la.numpy(), rtol=1e-6)
    for x, y in zip(ga, gb):
        # the blocks sum their key/value/position gradients block by block: float32 rounding
        # of a different summation order, so the tolerance is relative to each gradient's
        # scale (an element-wise rtol fails on small elements of a large gradient); a shifted
        # position window or a lost block changes gradients by O(scale)
        x, y = tf.convert_to_tensor(x).numpy(), tf.convert_to_tensor(y).numpy()
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-5 * max(np.abs(x).max(), 1e-6))
    # dropout is really on (a second draw differs) and the seed state reproduces it
    l2, _ = _grads(a, inputs)
    assert abs(float(l2) - float(la)) > 1e-6
    a.transformer.seed_generator.state.assign(b.transformer.seed_generator.state)
    b.transformer.seed_generator.state.assign(a.transformer.seed_generator.state)
    l3, _ = _grads(a, inputs)
    l4, _ = _grads(b, inputs)
    np.testing.assert_allclose(l3.numpy(), l4.numpy(), rtol=1e-6)


@pytest.mark.parametrize("untie_r", [True, False])
def test_recompute_content_stream_only_matches_in_eager_and_graph(untie_r):
    """The recompute path without a query stream or memory (fine-tuning), in blocks of 4
    query rows (4 + 2), eagerly and traced.  untie_r=False: the r-biases shared by all
    layers are variables, not per-layer slices, when they reach the blocks (eager training
    once failed there with "grad_fn must accept keyword argument 'variables'")."""
    base = tiny(dropout=0.2, dropatt=0.2, init_std=0.5, untie_r=untie_r)
    a = xlnet_tf.XLNetModel(base)
    b = xlnet_tf.XLNetModel(base.replace(recompute=True), query_chunk=4)
    for va, vb in zip(a.weights, b.weights):
        vb.assign(va)
    inputs = random_inputs()

    def run(model, state):
        model.seed_generator.state.assign(state)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(inputs, training=True)["hidden"]))
        return loss, tape.gradient(loss, model.trainable_variables)

    state = a.seed_generator.state.numpy()
    for wrap in (lambda f: f, tf.function):
        la, ga = wrap(lambda: run(a, state))()
        lb, gb = wrap(lambda: run(b, state))()
        np.testing.assert_allclose(lb.numpy(), la.numpy(), rtol=1e-6)
        n = 0
        for x, y in zip(ga, gb):
            if x is None:
                assert y is None
                continue
            n += 1
            np.testing.assert_allclose(tf.convert_to_tensor(y).numpy(),
                                       tf.convert_to_tensor(x).numpy(), rtol=1e-4, atol=1e-7)
        assert n >= len(ga) - 2


def test_dropout_rate_scale_and_determinism():
    from xlnet_tf.modeling.ops import dropout
    x = tf.ones([256, 512])
    seed = tf.constant([3, 4])
    y = dropout(x, 0.1, seed, True).numpy()
    kept = y > 0
    assert abs(kept.mean() - 0.9) < 0.005                      # keep rate
    assert abs(y.mean() - 1.0) < 0.01                           # inverted: expectation kept
    np.testing.assert_array_equal(dropout(x, 0.1, seed, True).numpy(), y)   # same seed
    assert (dropout(x, 0.1, tf.constant([3, 5]), True).numpy() != y).any()  # other seed
    np.testing.assert_array_equal(dropout(x, 0.1, seed, False).numpy(), x.numpy())
