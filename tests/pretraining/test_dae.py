"""The DAE baseline objective (xlnet_tf.pretraining.dae): BERT's 80/10/10 corruption of the
recorded positions, unpermuted bidirectional attention, and its loss from the content
stream."""
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

import xlnet_tf
from xlnet_tf.modeling.masks import attention_masks
from xlnet_tf.pretraining import dae
from xlnet_tf.tokenization.tokenizer import MASK_ID


def test_predicted_positions_are_the_target_mapping_rows():
    tm = np.zeros((2, 3, 6), np.float32)
    tm[0, 0, 1] = tm[0, 1, 4] = 1          # row 0: positions 1 and 4, one padding slot
    tm[1, 0, 0] = tm[1, 1, 2] = tm[1, 2, 5] = 1
    got = dae.predicted_positions(tf.constant(tm)).numpy()
    want = np.array([[0, 1, 0, 0, 1, 0], [1, 0, 1, 0, 0, 1]], bool)
    np.testing.assert_array_equal(got, want)


def test_corruption_touches_exactly_the_predicted_positions_with_80_10_10():
    rng = np.random.default_rng(0)
    b, t, vocab = 64, 128, 500
    ids = rng.integers(dae.FIRST_REGULAR_ID, vocab, (b, t)).astype(np.int32)
    predicted = rng.random((b, t)) < 0.16
    out, kind = dae.corrupt(tf.constant(ids), tf.constant(predicted), tf.constant([3, 4]), vocab)
    out, kind = out.numpy(), kind.numpy()
    # nothing outside the predicted positions changes
    np.testing.assert_array_equal(out[~predicted], ids[~predicted])
    assert (kind[~predicted] == dae.KEPT).all()
    n = int(predicted.sum())
    counts = [int(((kind == k) & predicted).sum()) for k in (dae.MASKED, dae.RANDOM, dae.KEPT)]
    assert sum(counts) == n
    # the split follows 0.8 / 0.1 / 0.1 (chi-square goodness of fit, 2 dof)
    expected = [0.8 * n, 0.1 * n, 0.1 * n]
    assert stats.chisquare(counts, expected).pvalue > 1e-3, (counts, expected)
    # each kind did what it says
    assert (out[(kind == dae.MASKED) & predicted] == MASK_ID).all()
    np.testing.assert_array_equal(out[(kind == dae.KEPT) & predicted],
                                  ids[(kind == dae.KEPT) & predicted])
    rnd = out[(kind == dae.RANDOM) & predicted]
    assert rnd.min() >= dae.FIRST_REGULAR_ID and rnd.max() < vocab
    # a random replacement is a uniform draw: it equals the original only by chance
    assert np.mean(rnd == ids[(kind == dae.RANDOM) & predicted]) < 0.05


def test_corruption_is_a_function_of_seed_and_step():
    batch = {"input_k": tf.fill([4, 16], 20), "seg_ids": tf.zeros([4, 16], tf.int32),
             "target_mapping": tf.tile(tf.eye(8, 16)[None], [4, 1, 1]),
             "target": tf.fill([4, 8], 20), "target_mask": tf.ones([4, 8])}
    a = dae.dae_batch(batch, 0, 5, 100)["input_ids"].numpy()
    b = dae.dae_batch(batch, 0, 5, 100)["input_ids"].numpy()
    c = dae.dae_batch(batch, 0, 6, 100)["input_ids"].numpy()
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    ds = dae.dae_dataset(tf.data.Dataset.from_tensors(batch).repeat(3), 0, 100, start_step=4)
    steps = [x["input_ids"].numpy() for x in ds]
    np.testing.assert_array_equal(steps[1], a)           # element 1 of a resume at 4 = step 5


def test_dae_attention_is_unpermuted_and_bidirectional():
    batch = {"input_ids": tf.constant([[10, 11, 12, 13, 14]]),
             "seg_ids": tf.zeros([1, 5], tf.int32)}
    inputs = dae.model_inputs(batch)
    assert set(inputs) == {"input_ids", "seg_ids"}        # no perm_mask, no target_mapping
    # the hand-checked mask: with neither padding nor perm_mask nothing is blocked
    assert attention_masks(5, 0, input_mask=None, perm_mask=None) == (None, None)
    # and in the model every position reads every other one, the future included
    tf.keras.utils.set_random_seed(0)
    config = xlnet_tf.XLNetConfig(n_layer=1, d_model=16, n_head=2, d_head=8, d_inner=32,
                                  n_token=50, dropout=0.0, dropatt=0.0)
    model = xlnet_tf.XLNetLMModel(config)
    h = model.transformer(inputs)["hidden"].numpy()
    for j in range(5):
        ids = batch["input_ids"].numpy().copy()
        ids[0, j] = 30
        h2 = model.transformer({"input_ids": ids, "seg_ids": batch["seg_ids"]})["hidden"].numpy()
        changed = np.abs(h2 - h).max(axis=-1)[0]          # [T]
        assert (changed > 1e-6).all(), (j, changed)


def test_dae_loss_is_the_lm_head_on_the_content_stream():
    tf.keras.utils.set_random_seed(1)
    config = xlnet_tf.XLNetConfig(n_layer=2, d_model=16, n_head=2, d_head=8, d_inner=32,
                                  n_token=40, mem_len=3, dropout=0.0, dropatt=0.0)
    model = xlnet_tf.XLNetLMModel(config)
    rng = np.random.default_rng(2)
    ids = rng.integers(9, 40, (2, 6)).astype(np.int32)
    tm = np.zeros((2, 2, 6), np.float32)
    tm[0, 0, 1] = tm[0, 1, 5] = tm[1, 0, 3] = 1          # row 1 has one padding slot
    batch = {"input_ids": tf.constant(ids), "seg_ids": tf.zeros([2, 6], tf.int32),
             "target_mapping": tf.constant(tm), "target": tf.constant([[12, 13], [14, 0]]),
             "target_mask": tf.constant([[1.0, 1.0], [1.0, 0.0]])}
    mems = [tf.constant(rng.normal(size=(2, 3, 16)).astype(np.float32))] * 2
    loss, new_mems = dae.dae_loss(model, batch, mems, training=False)
    # by hand: full logits of the content stream, picked at the predicted positions
    full = model({"input_ids": ids, "seg_ids": batch["seg_ids"], "mems": mems})["logits"].numpy()
    logp = full - np.log(np.exp(full - full.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - full.max(-1, keepdims=True)
    want = -(logp[0, 1, 12] + logp[0, 5, 13] + logp[1, 3, 14]) / 3
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    assert len(new_mems) == 2 and new_mems[0].shape == (2, 3, 16)


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
