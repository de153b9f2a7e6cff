"""Cached generation (Transformer-XL memory) gives exactly the tokens of the uncached
reference; the query-stream prediction equals the LM's full two-stream forward with a
hand-written perm_mask / target_mapping; a batch does not change a row's tokens."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import xlnet_tf
from spm_test_utils import FIXTURE_MODEL
from xlnet_tf.generation import inputs as inputs_lib
from xlnet_tf.generation.generator import Generator
from xlnet_tf.tokenization import Tokenizer

PROMPTS = ["The cat sat on the mat", "Hello", "a b c d e f g h i j k l m n o p q r s t"]


@pytest.fixture(scope="module")
def gen():
    tok = Tokenizer(str(FIXTURE_MODEL))
    # a large init_std: distinct logits, so greedy choices are not near-ties
    cfg = xlnet_tf.XLNetConfig(n_layer=2, d_model=16, n_head=2, d_head=8, d_inner=32,
                               n_token=tok.vocab_size, init_std=0.5, dropout=0.0,
                               dropatt=0.0)
    keras.utils.set_random_seed(0)
    return Generator(xlnet_tf.XLNetLMModel(cfg), tok)


def test_hand_checked_perm_mask():
    # prompt p0 p1, generated g0, new position n: the prompt never sees g0, nobody sees n
    np.testing.assert_array_equal(inputs_lib.next_token_perm_mask(2, 1), [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [0, 0, 0, 1],
        [0, 0, 0, 1]])
    f = inputs_lib.next_token_inputs([[11, 12], [13]], [[14], []])
    # row 1 is left-padded by 2: padding masked, its 2x2 block in the corner
    np.testing.assert_array_equal(f["input_ids"], [[11, 12, 14, 6], [5, 5, 13, 6]])
    np.testing.assert_array_equal(f["input_mask"], [[0, 0, 0, 0], [1, 1, 0, 0]])
    np.testing.assert_array_equal(f["perm_mask"][1], [
        [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]])
    np.testing.assert_array_equal(f["target_mapping"], [[[0, 0, 0, 1]], [[0, 0, 0, 1]]])


def test_step_logits_equal_full_two_stream_forward(gen):
    """Logits of cached steps 0..3 == XLNetLMModel on the whole sequence with the
    hand-built masks (query stream at the last position)."""
    tok, model = gen.tokenizer, gen.model
    prompt = tok.encode_ids("The cat sat")
    seen = []
    out = gen.generate(prompt, 4)
    for t in range(4):
        n = len(prompt) + t + 1
        perm = np.zeros([n, n], np.float32)
        perm[:, n - 1] = 1.0                           # nobody sees the new position
        for i in range(n):
            for j in range(len(prompt), n - 1):
                if j > i:
                    perm[i, j] = 1.0                   # a generated token is seen only after it
        tm = np.zeros([1, 1, n], np.float32)
        tm[0, 0, n - 1] = 1.0
        ids = np.array([prompt + out.ids[:t] + [6]], np.int32)
        full = model({"input_ids": ids, "perm_mask": perm[None], "target_mapping": tm})
        full = full["logits"][0, 0].numpy()
        seen.append(full)
        assert int(np.argmax(np.where(gen.banned, -np.inf, full))) == out.ids[t]
    # the cached path's own logits, step by step
    logits = []
    g2 = Generator(model, tok)
    orig = g2._step

    def spy(*a):
        r = orig(*a)
        logits.append(r[0].numpy()[0])
        return r
    g2._step = spy
    g2.generate(prompt, 4)
    for t in range(1, 4):
        np.testing.assert_allclose(logits[t - 1], seen[t], atol=2e-4)


@pytest.mark.parametrize("strategy", ["greedy", "sample"])
def test_cached_equals_uncached(gen, strategy):
    kw = dict(strategy=strategy, seed=7, top_k=50, top_p=0.95, temperature=0.8)
    cached = gen.generate(PROMPTS, 10, **kw)
    uncached = gen.generate(PROMPTS, 10, use_cache=False, **kw)
    assert [c.ids for c in cached] == [u.ids for u in uncached]
    assert all(len(c.ids) == 10 for c in cached)
    if strategy == "sample":
        assert len({tuple(c.ids) for c in cached}) == 3


@pytest.mark.parametrize("strategy", ["greedy", "sample"])
def test_batch_composition_does_not_change_a_row(gen, strategy):
    seeds = [3, 4, 5]
    together = gen.generate(PROMPTS, 8, strategy, seed=seeds)
    alone = [gen.generate(p, 8, strategy, seed=s) for p, s in zip(PROMPTS, seeds)]
    assert [t.ids for t in together] == [a.ids for a in alone]
    pair = gen.generate([PROMPTS[2], PROMPTS[1]], 8, strategy, seed=[5, 4])
    assert [p.ids for p in pair] == [alone[2].ids, alone[1].ids]


def test_sampling_is_reproducible_and_seeded(gen):
    a = gen.generate(PROMPTS[0], 10, "sample", seed=1)
    b = gen.generate(PROMPTS[0], 10, "sample", seed=1)
    c = gen.generate(PROMPTS[0], 10, "sample", seed=2)
    assert a.ids == b.ids and a.ids != c.ids


def test_stops_and_streaming(gen):
    first = gen.generate(PROMPTS[0], 6)
    # stop at a token id: the first generated token
    stopped = gen.generate(PROMPTS[0], 6, stop_ids=(first.ids[0],))
    assert stopped.ids == first.ids[:1] and stopped.stop_reason == "stop_id"
    pieces = []
    streamed = gen.generate(PROMPTS[0], 6, callback=lambda row, text: pieces.append(text))
    assert "".join(pieces) == streamed.text == first.text
    assert first.stop_reason == "length"
    word = first.text.split()[0]
    cut = gen.generate(PROMPTS[0], 6, stop_strings=[word])
    assert cut.stop_reason == "stop_string" and word not in cut.text


def test_mem_mask_equals_memory_without_the_masked_slots(gen):
    """Left-padded memory with mem_mask == the same memory without the padding."""
    model = gen.model
    ids = tf.constant([[20, 21, 22]])
    mems = [tf.random.normal([1, 4, 16], seed=i) for i in range(2)]
    pad = [tf.concat([tf.random.normal([1, 3, 16]), m], 1) for m in mems]
    a = model({"input_ids": ids, "mems": mems})["logits"].numpy()
    b = model({"input_ids": ids, "mems": pad,
               "mem_mask": tf.constant([[1.0, 1, 1, 0, 0, 0, 0]])})["logits"].numpy()
    np.testing.assert_allclose(a, b, atol=1e-4)
    c = model({"input_ids": ids, "mems": pad})["logits"].numpy()
    assert np.abs(a - c).max() > 1e-3        # without the mask the padding is seen


def test_bad_options(gen):
    with pytest.raises(ValueError, match="top_p"):
        gen.generate("x", 2, "sample", top_p=0)
    with pytest.raises(ValueError, match="strategy"):
        gen.generate("x", 2, "beam")
    with pytest.raises(ValueError, match="no tokens"):
        gen.generate(["ok", ""], 2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        gen.generate("x", 0)
