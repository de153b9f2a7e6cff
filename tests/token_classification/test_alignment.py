"""Words to pieces (xlnet_tf.token_classification.alignment) with the pieces written out by
hand, the windows of long sentences (features), and the in-graph alignment of the
SavedModel equal to the Python one."""
import pathlib

import numpy as np
import pytest

from xlnet_tf.tokenization.tokenizer import CLS_ID, SEP_ID, UNK_ID, Tokenizer
from xlnet_tf.token_classification.alignment import align_words, underline_id
from xlnet_tf.token_classification.features import IGNORE, sentence_windows, window_starts

FIXTURE_SPM = str(pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "spiece_test.model")


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(FIXTURE_SPM)


# pieces of the test vocabulary, by hand: (word, pieces, index of the label piece)
CASES = [
    ("EU", ["▁E", "U"], 0),                          # several pieces: the first
    ("rejects", ["▁re", "j", "ect", "s"], 0),
    ("(", ["▁", "("], 1),                            # punctuation after a lone ▁
    ("1,000,", ["▁", "1", ",", "0", "00", ","], 1),  # digits with commas (digit-comma rule)
    ("Café", ["▁C", "a", "fe"], 0),                  # accents removed by the text rules
    ("naïve", ["▁", "na", "ive"], 1),
    ("\u200b", [], 0),                               # no piece at all: read as <unk>
]


@pytest.mark.parametrize("word,pieces,label", CASES)
def test_pieces_written_by_hand(tok, word, pieces, label):
    assert tok.encode_pieces(word) == pieces
    a = align_words(tok, [word])
    expected = [tok.piece_to_id(p) for p in pieces] or [UNK_ID]
    assert a.ids == expected
    assert a.word_starts == [0] and a.label_pieces == [label]
    assert a.num_empty == int(not pieces)
    assert a.num_lone_underline == int(bool(pieces) and pieces[0] == "▁")


def test_sentence_alignment(tok):
    words = [w for w, _, _ in CASES]
    a = align_words(tok, words)
    starts, n = [], 0
    for _, pieces, _ in CASES:
        starts.append(n)
        n += max(len(pieces), 1)
    assert a.word_starts == starts and len(a.ids) == n
    assert a.label_pieces == [s + label for s, (_, _, label) in zip(starts, CASES)]
    assert (a.num_empty, a.num_lone_underline) == (1, 3)
    # the label piece holds the word's first characters
    assert tok.id_to_piece(a.ids[a.label_pieces[2]]) == "("


def test_a_word_of_lone_underlines_is_labelled_on_its_first(tok):
    lone = underline_id(tok)
    assert tok.id_to_piece(lone) == "▁"

    class Fake:
        def encode_ids(self, word):
            return [lone, lone] if word == "x" else [5]
    a = align_words(Fake(), ["y", "x"], lone)
    assert a.label_pieces == [0, 1] and a.num_lone_underline == 1


# ---------------------------------------------------------------------------- windows
def test_window_layout_by_hand(tok):
    """3 words, pieces [▁E U] [▁ (] [▁re j ect s] = 8 pieces; T = 12 -> 2 padding."""
    a = align_words(tok, ["EU", "(", "rejects"])
    (w,) = sentence_windows(0, a, [1, 0, 2], 12, 4)
    ids = a.ids
    assert w.input_ids == [0, 0] + ids + [SEP_ID, CLS_ID]
    assert w.input_mask == [1.0, 1.0] + [0.0] * 10
    assert w.seg_ids == [4, 4] + [0] * 9 + [2]
    assert w.label_ids == [IGNORE, IGNORE, 1, IGNORE, IGNORE, 0, 2] + [IGNORE] * 5
    assert w.positions == {0: 2, 1: 5, 2: 6}
    (w,) = sentence_windows(0, a, [1, 0, 2], 12, 4, label_all_pieces=True)
    assert w.label_ids == [IGNORE, IGNORE, 1, 1, 0, 0, 2, 2, 2, 2, IGNORE, IGNORE]


def test_window_starts():
    assert window_starts(5, 8, 4) == [0]
    assert window_starts(20, 8, 4) == [0, 4, 8, 12]
    assert window_starts(21, 8, 6) == [0, 6, 12, 13]


def test_5000_word_sentence_every_word_once(tok):
    rng = np.random.RandomState(0)
    vocab = ["EU", "rejects", "German", "call", "(", "1,000,", "Blackburn", "."]
    words = [vocab[i] for i in rng.randint(0, len(vocab), 5000)]
    tags = list(rng.randint(0, 5, 5000))
    a = align_words(tok, words)
    T, stride = 64, 20
    windows = sentence_windows(0, a, tags, T, stride)
    assert len(windows) > 100
    seen = {}
    for k, w in enumerate(windows):
        assert len(w.input_ids) == T and w.input_ids[-2:] == [SEP_ID, CLS_ID]
        for word, pos in w.positions.items():
            assert word not in seen
            seen[word] = (k, pos)
            assert w.label_ids[pos] == tags[word]
            assert w.input_ids[pos] == a.ids[a.label_pieces[word]]
        # exactly the predicted words are in the loss
        assert sorted(p for p in range(T) if w.label_ids[p] != IGNORE) == \
            sorted(w.positions.values())
    assert sorted(seen) == list(range(5000))


# ---------------------------------------------------------------------------- in-graph
def test_in_graph_alignment_equals_python(tok, shared_data):
    import tensorflow as tf

    from xlnet_tf.tokenization.in_graph import XLNetTokenizerLayer
    from xlnet_tf.token_classification.export import align_words_tf
    from xlnet_tf.token_classification.readers import read_conll
    sentences = [s.words for s in read_conll(
        str(shared_data / "ner" / "conll2003" / "eng.testa"))[:300]]
    sentences += [[w for w, _, _ in CASES], ["\u200b"], ["(", "\u200b", "x"]]
    layer = XLNetTokenizerLayer(FIXTURE_SPM)
    lone = underline_id(tok)
    ids, label = align_words_tf(layer, tf.ragged.constant(sentences), lone)
    ids, label = ids.to_list(), label.numpy().tolist()
    k = 0
    for n, words in enumerate(sentences):
        a = align_words(tok, words)
        assert ids[n] == a.ids, words
        assert label[k:k + len(words)] == a.label_pieces, words
        k += len(words)
