"""Multiple-choice features against hand-written ids: the QA string (``_`` substitution or
question + option), the QA part keeping its LAST max_qa_length ids, the passage cut from its
end, ``passage <sep> qa <sep> <cls>`` with left padding and the original's segment ids; no
aliasing between the options of a short passage; the in-graph packer equal to the Python one
(strings with RE2-special characters included)."""
import numpy as np
import pytest
import tensorflow as tf

from xlnet_tf.multiple_choice.features import (check_lengths, convert_example, pack_choice,
                                               pack_choices_tf, qa_text, qa_text_tf)
from xlnet_tf.multiple_choice.readers import MCExample

CLS, SEP = 3, 4


class WordTokenizer:
    """One id per whitespace word: ``w<k>`` -> 100 + k, other words by a fixed table."""
    TABLE = {"who": 10, "is": 11, "it": 12, "?": 13, "the": 14, "cat": 15, "dog": 16,
             "bird": 17, "a": 18, "sat": 19, "on": 20, "mat": 21, "likes": 22, "_": 23}

    def encode_ids(self, text):
        return [100 + int(w[1:]) if w.startswith("w") and w[1:].isdigit() else self.TABLE[w]
                for w in text.split()]


def test_qa_text_blank_and_append():
    assert qa_text("the _ sat on _ mat", "cat") == "the cat sat on cat mat"
    assert qa_text("who is it ?", "the dog") == "who is it ? the dog"


def test_short_passage_hand_written_ids():
    """T = 12: passage 'the cat sat' (3 ids), question with a blank; every option has its
    own sequence (the original's aliasing would put option A's QA into option B's)."""
    ex = MCExample("q", "the cat sat", "the _ sat", ("cat", "dog"), 1)
    f = convert_example(ex, WordTokenizer(), 12, 5)
    pad = [0, 0, 0]
    assert f.input_ids.tolist() == [
        pad + [14, 15, 19, SEP, 14, 15, 19, SEP, CLS],
        pad + [14, 15, 19, SEP, 14, 16, 19, SEP, CLS]]
    assert f.seg_ids.tolist() == [[4, 4, 4, 0, 0, 0, 0, 1, 1, 1, 1, 2]] * 2
    assert f.input_mask.tolist() == [[1.0] * 3 + [0.0] * 9] * 2
    assert f.label == 1 and not f.truncated
    assert f.input_ids.dtype == np.int32 and f.input_mask.dtype == np.float32


def test_long_passage_both_parts_truncated():
    """T = 10, max_qa_length = 4: the QA 'who is it ? w1 w2 w3' (7 ids) keeps its LAST 4
    ids; the passage w10..w29 (20 ids) keeps its FIRST 10 - 3 - 4 = 3; no padding."""
    passage = " ".join(f"w{k}" for k in range(10, 30))
    ex = MCExample("q", passage, "who is it ?", ("w1 w2 w3", "w4"), None)
    f = convert_example(ex, WordTokenizer(), 10, 4)
    assert f.input_ids.tolist() == [
        [110, 111, 112, SEP, 13, 101, 102, 103, SEP, CLS],
        # option B: QA 'who is it ? w4' (5 ids) -> last 4 'is it ? w4'
        [110, 111, 112, SEP, 11, 12, 13, 104, SEP, CLS]]
    assert f.seg_ids.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 1, 2]] * 2
    assert f.input_mask.tolist() == [[0.0] * 10] * 2
    assert f.truncated and f.label == -1


def test_empty_passage_and_length_checks():
    ids, mask, segs, cut = pack_choice([], [7, 8], 6, 3)
    assert ids == [0, SEP, 7, 8, SEP, CLS] and segs == [4, 0, 1, 1, 1, 2] and not cut
    assert mask == [1.0, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="--max_qa_length=10 must be in"):
        check_lengths(12, 10)
    with pytest.raises(ValueError, match="--max_seq_length=3 is too small"):
        check_lengths(3, 1)


def test_in_graph_packer_equals_python():
    rng = np.random.default_rng(0)
    ctx = [rng.integers(10, 99, n).tolist() for n in (0, 1, 5, 9, 40, 3)]
    qa = [rng.integers(10, 99, n).tolist() for n in (0, 2, 9, 3, 1, 7)]
    for T, Q in ((12, 4), (16, 13), (8, 1)):
        ids, mask, segs = pack_choices_tf(tf.ragged.constant(ctx, tf.int32),
                                          tf.ragged.constant(qa, tf.int32), T, Q)
        for i in range(len(ctx)):
            want = pack_choice(ctx[i], qa[i], T, Q)
            assert ids[i].numpy().tolist() == want[0]
            assert mask[i].numpy().tolist() == want[1]
            assert segs[i].numpy().tolist() == want[2]


def test_in_graph_qa_text_equals_python():
    questions = ["the _ sat on _ mat", "who is it?", "_", "", "a \\1 _ $0 _", "__", "x_"]
    options = ["cat", "the dog", "", "opt", "\\0 $1 \\\\", "é", "y"]
    got = qa_text_tf(tf.constant(questions), tf.constant(options)).numpy()
    assert [g.decode() for g in got] == [qa_text(q, o) for q, o in zip(questions, options)]
