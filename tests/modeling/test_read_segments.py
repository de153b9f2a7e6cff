"""Long documents read as segments with Transformer-XL memory (``read_segments``) against
the backbone's own full-sequence forward with a block-causal perm_mask, and the
``[B, M + T]`` input_mask that carries padding into the memory."""
import numpy as np
import pytest
import tensorflow as tf

from xlnet_tf.classification import XLNetClassifier
from xlnet_tf.classification.features import pack_ids
from xlnet_tf.modeling.config import XLNetConfig
from xlnet_tf.modeling.model import XLNetModel, read_segments

TINY = dict(n_layer=2, d_model=16, n_head=2, d_head=8, d_inner=24, ff_activation="gelu",
            untie_r=True, n_token=40, dropout=0.0, dropatt=0.0)


def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.normal(0, 0.3, v.shape).astype(np.float32))


def packed_docs(lengths, total, seed=1):
    """Single-text documents of the given piece counts packed to ``total`` positions."""
    rng = np.random.default_rng(seed)
    rows = [pack_ids(rng.integers(9, 40, n).tolist(), None, total) for n in lengths]
    ids, mask, seg = (np.array([r[k] for r in rows]) for k in range(3))
    return {"input_ids": tf.constant(ids, tf.int32), "seg_ids": tf.constant(seg, tf.int32),
            "input_mask": tf.constant(mask, tf.float32)}


def block_causal_perm_mask(batch, num_segments, seg_len):
    """perm_mask [B, S*T, S*T]: query i may not see key j when j's segment is later."""
    block = np.arange(num_segments * seg_len) // seg_len
    pm = (block[None, :] > block[:, None]).astype(np.float32)
    return tf.constant(np.broadcast_to(pm, (batch,) + pm.shape))


def backbone(mem_len, seed=0):
    model = XLNetModel(XLNetConfig(**TINY, mem_len=mem_len))
    randomize(model, seed)
    return model


def test_block_causal_mask_drawn():
    # 2 segments of 2: rows are queries, 1 = blocked
    assert block_causal_perm_mask(1, 2, 2).numpy()[0].tolist() == [
        [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]


@pytest.mark.parametrize("num_segments,seg_len,lengths,graph", [
    (3, 8, [22, 13, 7, 3], False),  # full (no pad), pad in segment 1, only the last one, short
    (2, 5, [8, 6, 1], True),        # in a tf.function (both tf.cond branches traced)
    (4, 4, [14, 9, 5, 2], False),
    (4, 4, [9, 5, 2], False),       # segment 1 is padding in every row: skipped (zeros memory)
    (4, 4, [9, 5, 2], True),
])
def test_segments_with_memory_equal_block_causal_full_forward(num_segments, seg_len, lengths,
                                                              graph):
    total = num_segments * seg_len
    model = backbone(mem_len=(num_segments - 1) * seg_len)
    feats = packed_docs(lengths, total)
    full = model({**feats, "perm_mask": block_causal_perm_mask(len(lengths), num_segments,
                                                                seg_len)})["hidden"]
    if graph:
        hidden, last_mask = tf.function(lambda f: read_segments(model, f, seg_len))(feats)
    else:
        hidden, last_mask = read_segments(model, feats, seg_len)
    np.testing.assert_allclose(hidden.numpy(), full.numpy()[:, -seg_len:], atol=1e-5)
    np.testing.assert_array_equal(last_mask.numpy(), feats["input_mask"].numpy()[:, -seg_len:])
    # the states are not trivially equal to a forward without the earlier segments
    alone = model({k: v[:, -seg_len:] for k, v in feats.items()})["hidden"].numpy()
    assert np.abs(alone[0] - hidden.numpy()[0]).max() > 1e-2


def test_padding_in_memory_is_blocked():
    """A [B, T] input_mask leaves memory columns visible (the original's behaviour); the
    padding of the first segment must be blocked through a [B, M + T] mask."""
    T, S = 6, 2
    model = backbone(mem_len=T)
    feats = packed_docs([9], S * T)                  # 3 padding positions in segment 1
    hidden, _ = read_segments(model, feats, T)
    first = model({k: v[:, :T] for k, v in feats.items()})
    unmasked = model({"input_ids": feats["input_ids"][:, T:], "seg_ids": feats["seg_ids"][:, T:],
                      "input_mask": feats["input_mask"][:, T:],
                      "mems": first["new_mems"]})["hidden"]
    assert np.abs(unmasked.numpy() - hidden.numpy()).max() > 1e-3
    # and the mask over memory + segment reproduces the masked result
    masked = model({"input_ids": feats["input_ids"][:, T:], "seg_ids": feats["seg_ids"][:, T:],
                    "input_mask": feats["input_mask"],
                    "mems": first["new_mems"]})["hidden"]
    np.testing.assert_allclose(masked.numpy(), hidden.numpy(), atol=1e-6)


def test_short_memory_is_not_exact():
    """mem_len < (S-1)*T: the last segment no longer sees the first one (as documented)."""
    S, T = 3, 6
    feats = packed_docs([17], S * T)
    exact, _ = read_segments(backbone(mem_len=(S - 1) * T), feats, T)
    short, _ = read_segments(backbone(mem_len=T), feats, T)
    assert np.abs(exact.numpy() - short.numpy()).max() > 1e-3


def test_memory_classifier_equals_truncate_for_short_documents():
    """A document within one segment: memory mode (all earlier segments padding) gives the
    logits of truncate mode at the segment length; the weights are shared one to one."""
    T, S = 8, 3
    cfg = XLNetConfig(**TINY)
    trunc = XLNetClassifier(cfg, n_class=3, task_name="t", summary_type="attn")
    mem = XLNetClassifier(cfg, n_class=3, task_name="t", summary_type="attn",
                          long_doc="memory", seq_len=T, max_segments=S, mem_len=(S - 1) * T)
    randomize(trunc, 3)
    mem.set_weights(trunc.get_weights())
    assert sorted(mem.original_name_map()) == sorted(trunc.original_name_map())
    lengths = [6, 3, 1]
    short = trunc(packed_docs(lengths, T))["logits"].numpy()
    long = mem(packed_docs(lengths, S * T))["logits"].numpy()
    np.testing.assert_allclose(long, short, atol=1e-5)
    # a longer document changes the logits (the memory is read)
    long2 = mem(packed_docs([20, 3, 1], S * T))["logits"].numpy()
    assert np.abs(long2[0] - long[0]).max() > 1e-3
    cfg_round = XLNetClassifier.from_config(mem.get_config())
    assert (cfg_round.long_doc, cfg_round.seq_len, cfg_round.max_segments,
            cfg_round.mem_len) == ("memory", T, S, (S - 1) * T)


def test_errors():
    with pytest.raises(ValueError, match="mem_len >= 1"):
        read_segments(XLNetModel(XLNetConfig(**TINY)), packed_docs([3], 8), 4)
    with pytest.raises(ValueError, match="not a multiple"):
        read_segments(backbone(mem_len=4), packed_docs([3], 9), 4)
    with pytest.raises(ValueError, match="long_doc='memory' needs"):
        XLNetClassifier(XLNetConfig(**TINY), long_doc="memory", seq_len=8, max_segments=0,
                        mem_len=8)
    with pytest.raises(ValueError, match="long_doc must be"):
        XLNetClassifier(XLNetConfig(**TINY), long_doc="pooled")
