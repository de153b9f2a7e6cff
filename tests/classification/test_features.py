"""xlnet_tf.classification.features: the original's packing (A <sep> B <sep> <cls>, left
padding), its truncation rule, and the in-graph packer against the Python one."""
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from xlnet_tf import classification as cd
from xlnet_tf.classification import InputExample, PaddingInputExample
from xlnet_tf.tokenization.tokenizer import Tokenizer

FIXTURE_SPM = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "spiece_test.model"


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(str(FIXTURE_SPM))


def test_truncate_seq_pair_rule():
    # (5, 4) to 5: a>b pop a (4,4); tie pop b (4,3); pop a (3,3); tie pop b (3,2).
    a, b = [1, 2, 3, 4, 5], [6, 7, 8, 9]
    cd.truncate_seq_pair(a, b, 5)
    assert (a, b) == ([1, 2, 3], [6, 7])
    a, b = [1, 2, 3, 4, 5, 6], [7]
    cd.truncate_seq_pair(a, b, 5)
    assert (a, b) == ([1, 2, 3, 4], [7])
    a, b = [1, 2], [3, 4, 5, 6, 7, 8, 9]
    cd.truncate_seq_pair(a, b, 5)
    assert (a, b) == ([1, 2], [3, 4, 5])
    a, b = [1, 2, 3], [4, 5, 6]  # tie at the start: B first -> (3,2), then A -> (2,2)
    cd.truncate_seq_pair(a, b, 4)
    assert (a, b) == ([1, 2], [4, 5])


def test_pack_ids_layout_hand():
    ids, mask, seg = cd.pack_ids([10, 11, 12], [20, 21], 10)
    assert ids == [0, 0, 10, 11, 12, 4, 20, 21, 4, 3]
    assert mask == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert seg == [4, 4, 0, 0, 0, 0, 1, 1, 1, 2]
    ids, mask, seg = cd.pack_ids([10, 11, 12], None, 6)
    assert ids == [0, 10, 11, 12, 4, 3]
    assert mask == [1, 0, 0, 0, 0, 0]
    assert seg == [4, 0, 0, 0, 0, 2]
    # Single text: first T-2 tokens kept.
    assert cd.pack_ids(list(range(10, 20)), None, 5) == ([10, 11, 12, 4, 3], [0] * 5, [0, 0, 0, 0, 2])
    # Pair: (5, 4) with T=8 -> budget 5 -> (3, 2) as in test_truncate_seq_pair_rule.
    assert cd.pack_ids([1, 2, 3, 4, 5], [6, 7, 8, 9], 8)[0] == [1, 2, 3, 4, 6, 7, 4, 3]
    # An empty A still gets its SEP (and CLS); an empty B is no B at all.
    assert cd.pack_ids([], [], 4) == ([0, 0, 4, 3], [1, 1, 0, 0], [4, 4, 0, 2])
    with pytest.raises(ValueError, match="max_seq_length=2 is too small: a pair needs at least 3"):
        cd.pack_ids([1], [2], 2)


def test_convert_single_example_with_fixture_spm(tokenizer):
    # Fixture ids: "the cat sat" -> ▁the ▁c at ▁sat = 20 125 134 924;
    #              "good movie"  -> ▁good ▁mo v ie  = 213 433 82 353.
    assert tokenizer.encode_ids("the cat sat") == [20, 125, 134, 924]
    assert tokenizer.encode_ids("good movie") == [213, 433, 82, 353]
    ex = InputExample("x", "the cat sat", "good movie", "b")
    f = cd.convert_single_example(ex, ["a", "b"], 12, tokenizer)
    assert f.input_ids == [0, 20, 125, 134, 924, 4, 213, 433, 82, 353, 4, 3]
    assert f.input_mask == [1] + [0] * 11
    assert f.seg_ids == [4, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2]
    assert f.label_id == 1 and f.is_real_example
    # T=8: budget 5, (4, 4) -> tie pops B (4,3), A (3,3), B (3,2).
    f = cd.convert_single_example(ex, ["a", "b"], 8, tokenizer)
    assert f.input_ids == [20, 125, 134, 4, 213, 433, 4, 3]
    assert f.seg_ids == [0, 0, 0, 0, 1, 1, 1, 2]
    assert f.input_mask == [0] * 8
    # Regression label stays a float; single text.
    f = cd.convert_single_example(InputExample("y", "the cat sat", None, 3.8), None, 7, tokenizer)
    assert f.input_ids == [0, 20, 125, 134, 924, 4, 3] and f.label_id == 3.8
    assert f.seg_ids == [4, 0, 0, 0, 0, 0, 2]
    # Padding example.
    f = cd.convert_single_example(PaddingInputExample(), ["a", "b"], 4, tokenizer)
    assert f == cd.InputFeatures([0] * 4, [1.0] * 4, [0] * 4, 0, False)
    # A text much longer than max_seq_length is truncated, never an error.
    long = InputExample("z", "the cat sat " * 200, None, "a")
    f = cd.convert_single_example(long, ["a", "b"], 16, tokenizer)
    assert f.input_ids == [20, 125, 134, 924] * 3 + [20, 125, 4, 3]
    with pytest.raises(ValueError, match=r"label 'c' is not in the label list"):
        cd.convert_single_example(InputExample("w", "x", None, "c"), ["a", "b"], 8, tokenizer)


def test_empty_or_truncated_away_text_b_packs_as_the_original(tokenizer):
    """The original tests B's token list: an empty or whitespace-only text_b is packed as a
    single text (A gets the single-text budget T - 2), and a B that the pair truncation pops
    entirely leaves no second <sep> (A keeps the pair budget T - 3); the in-graph packer of
    the exports agrees row by row."""
    single = cd.convert_single_example(InputExample("s", "the cat sat", None, "a"), ["a"], 6,
                                       tokenizer)
    assert single.input_ids == [20, 125, 134, 924, 4, 3]
    for text_b in ("", "   ", " \t\n "):
        f = cd.convert_single_example(InputExample("e", "the cat sat", text_b, "a"), ["a"], 6,
                                      tokenizer)
        assert f == single, repr(text_b)
    # T=4: budget 1, (1, 1) -> the tie pops B: A <sep> <cls> and one pad, no B <sep>
    assert cd.pack_ids([7], [8], 4) == ([0, 7, 4, 3], [1, 0, 0, 0], [4, 0, 0, 2])
    # T=3: budget 0, B and A truncated away: <sep> <cls>
    assert cd.pack_ids([7, 7], [8], 3) == ([0, 4, 3], [1, 0, 0], [4, 0, 2])
    # B survives with one token: its <sep> stays
    assert cd.pack_ids([7, 7], [8], 5) == ([7, 4, 8, 4, 3], [0] * 5, [0, 0, 1, 1, 2])
    rows = [([7], [8], 4), ([7, 7], [8], 3), ([5, 6, 7], [], 5), ([5, 6, 7], [], 6),
            ([], [], 4), ([5, 6, 7, 8], [9], 4), ([5], [9, 9, 9], 4)]
    for a, b, T in rows:
        ids, mask, seg = cd.pack_ids_tf(tf.ragged.constant([a], tf.int32, ragged_rank=1),
                                        tf.ragged.constant([b], tf.int32, ragged_rank=1), T)
        want = cd.pack_ids(a, b, T)
        assert (ids.numpy()[0].tolist(), mask.numpy()[0].tolist(),
                seg.numpy()[0].tolist()) == want, (a, b, T)
    # the records' truncation flag counts an empty B as absent
    _, truncated = cd.features.convert_example(InputExample("t", "the cat sat", "", "a"), ["a"],
                                               6, tokenizer, False)
    assert not truncated


def test_pack_ids_tf_matches_python_grid():
    rng = np.random.RandomState(0)
    a_list, b_list = [], []
    for la in range(9):
        for lb in range(9):
            a_list.append([int(v) for v in rng.randint(10, 1000, la)])
            b_list.append([int(v) for v in rng.randint(10, 1000, lb)])
    ra = tf.ragged.constant(a_list, dtype=tf.int64, ragged_rank=1)
    rb = tf.ragged.constant(b_list, dtype=tf.int64, ragged_rank=1)
    for T in (3, 4, 5, 8, 11, 20):
        for pair in (True, False):
            if not pair and T < 2:
                continue
            ids, mask, seg = cd.pack_ids_tf(ra, rb if pair else None, T)
            assert ids.dtype == tf.int32 and seg.dtype == tf.int32 and mask.dtype == tf.float32
            expected = [cd.pack_ids(a, b if pair else None, T) for a, b in zip(a_list, b_list)]
            np.testing.assert_array_equal(ids.numpy(), [e[0] for e in expected])
            np.testing.assert_array_equal(mask.numpy(), [e[1] for e in expected])
            np.testing.assert_array_equal(seg.numpy(), [e[2] for e in expected])


def test_pack_ids_tf_dense_input_and_errors():
    ids, mask, seg = cd.pack_ids_tf(tf.constant([[5, 6], [7, 8]], tf.int64), None, 5)
    np.testing.assert_array_equal(ids.numpy(), [[0, 5, 6, 4, 3], [0, 7, 8, 4, 3]])
    np.testing.assert_array_equal(mask.numpy(), [[1, 0, 0, 0, 0]] * 2)
    with pytest.raises(ValueError, match="must hold integer token ids"):
        cd.pack_ids_tf(tf.ragged.constant([[1.0]]), None, 4)
    with pytest.raises(ValueError, match="max_seq_length=2 is too small"):
        cd.pack_ids_tf(tf.ragged.constant([[1]]), tf.ragged.constant([[1]]), 2)


def test_pack_ids_tf_in_tf_function():
    fn = tf.function(lambda a, b: cd.pack_ids_tf(a, b, 8), input_signature=[
        tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1),
        tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1)])
    ids, mask, seg = fn(tf.ragged.constant([[5, 6, 7], [9, 9, 9, 9, 9, 9]]), tf.ragged.constant([[8], [7, 7, 7]]))
    np.testing.assert_array_equal(ids.numpy(), [[0, 5, 6, 7, 4, 8, 4, 3], [9, 9, 9, 4, 7, 7, 4, 3]])
    np.testing.assert_array_equal(mask.numpy(), [[1, 0, 0, 0, 0, 0, 0, 0], [0] * 8])
    np.testing.assert_array_equal(seg.numpy(), [[4, 0, 0, 0, 0, 1, 1, 2], [0, 0, 0, 0, 1, 1, 1, 2]])
