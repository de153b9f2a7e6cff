"""fill(): on a tiny model trained to memorize one sentence (a random blank, both sides
visible), every single blank is restored, in both orders."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import xlnet_tf
from spm_test_utils import FIXTURE_MODEL
from xlnet_tf.generation import fill
from xlnet_tf.generation import inputs as inputs_lib
from xlnet_tf.generation.infill import blank_ids
from xlnet_tf.tokenization import Tokenizer

SENTENCE = "the quick brown fox jumps over the lazy dog"


@pytest.fixture(scope="module")
def trained():
    tok = Tokenizer(str(FIXTURE_MODEL))
    ids = tok.encode_ids(SENTENCE)
    cfg = xlnet_tf.XLNetConfig(n_layer=2, d_model=32, n_head=2, d_head=16, d_inner=64,
                               n_token=tok.vocab_size, dropout=0.0, dropatt=0.0)
    keras.utils.set_random_seed(1)
    model = xlnet_tf.XLNetLMModel(cfg)
    opt = keras.optimizers.Adam(3e-3)
    T = len(ids)

    @tf.function
    def train_step(feats, labels):
        with tf.GradientTape() as tape:
            logits = model(feats, training=True)["logits"]                     # [1, P, V]
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rng = np.random.default_rng(0)
    losses = []
    for step in range(2000):                      # about 15 s on two CPU cores
        targets = sorted(rng.choice(T, 1, replace=False).tolist())
        x = list(ids)
        for t in targets:
            x[t] = 6
        feats = inputs_lib.fill_inputs(x, targets)
        loss = train_step(feats, np.array([[ids[t] for t in targets]], np.int32))
        losses.append(float(loss))
    assert np.mean(losses[-100:]) < 0.3
    return model, tok, ids


def test_blank_ids_marks_the_blanks():
    tok = Tokenizer(str(FIXTURE_MODEL))
    ids, blanks = blank_ids(tok, "the <mask> fox <mask>", span_length=2)
    n_the, n_fox = len(tok.encode_ids("the")), len(tok.encode_ids("fox"))
    assert blanks == [n_the, n_the + 1, n_the + 2 + n_fox, n_the + 3 + n_fox]
    assert ids == tok.encode_ids("the") + [6, 6] + tok.encode_ids("fox") + [6, 6]
    with pytest.raises(ValueError, match="no <mask>"):
        blank_ids(tok, "no blank here")


@pytest.mark.parametrize("order", ["left_to_right", "confidence"])
def test_fill_restores_the_memorized_words(trained, order):
    model, tok, ids = trained
    words = SENTENCE.split()
    restored = 0
    for i in range(len(words)):
        text = " ".join(words[:i] + ["<mask>"] + words[i + 1:])
        if len(tok.encode_ids(words[i])) != 1:
            continue
        out = fill(model, tok, text, order=order)
        restored += out.text == SENTENCE
    assert restored == sum(len(tok.encode_ids(w)) == 1 for w in words)
    # a left-to-right view of the same model (no right context) does not restore them all
    if order == "left_to_right":
        left_only = sum(fill(model, tok, " ".join(words[:i] + ["<mask>"] + words[i + 1:]),
                             left_context_only=True).text == SENTENCE
                        for i in range(len(words)) if len(tok.encode_ids(words[i])) == 1)
        assert left_only < restored


def test_fill_options_are_checked(trained):
    model, tok, _ = trained
    with pytest.raises(ValueError, match="order"):
        fill(model, tok, "a <mask>", order="random")
    with pytest.raises(ValueError, match="span_length"):
        fill(model, tok, "a <mask>", span_length=0)
