"""The ``encode`` signature of the SQuAD and multiple-choice exports (raw ``text`` in): token
states are the fine-tuned backbone's hidden states of the text packed as one segment (the
Python packing), the mask marks the text's pieces only, ``pooled`` is a NumPy mean of them,
and a text gives the same vectors alone and in a batch with longer texts (1e-5)."""
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from xlnet_tf.classification import pack_ids
from xlnet_tf.modeling.config import XLNetConfig
from xlnet_tf.multiple_choice.export import export_multiple_choice
from xlnet_tf.multiple_choice.model import XLNetMultipleChoice
from xlnet_tf.serving import load_saved_model
from xlnet_tf.squad.export import export_squad
from xlnet_tf.squad.model import XLNetSquadModel
from xlnet_tf.tokenization.tokenizer import Tokenizer

REPO = pathlib.Path(__file__).resolve().parents[2]
SPM = str(REPO / "tests" / "fixtures" / "spiece_test.model")
T = 24
TEXTS = ["The cat sat on the mat.",
         "A much longer text, with commas, 1,000 numbers and words that do not fit into "
         "twenty-four pieces at all, so it is cut to its first pieces.",
         "Short.",
         "Fine-tuned states, not the pretrained ones."]


def tiny_config():
    return XLNetConfig(n_layer=2, d_model=16, n_head=2, d_head=8, d_inner=32, n_token=32000,
                       dropout=0.0, dropatt=0.0, init_std=0.3)


def squad_export(tmp):
    keras.utils.set_random_seed(3)
    model = XLNetSquadModel(tiny_config(), start_n_top=2, end_n_top=2)
    path = export_squad(model, str(tmp / "squad"), SPM, max_seq_length=T, doc_stride=8,
                        max_query_length=8, max_answer_length=5)
    return model, path


def mc_export(tmp):
    keras.utils.set_random_seed(4)
    model = XLNetMultipleChoice(tiny_config())
    model({"input_ids": tf.zeros([1, 2, T], tf.int32), "seg_ids": tf.zeros([1, 2, T], tf.int32),
           "input_mask": tf.zeros([1, 2, T], tf.float32)}, training=False)
    path = export_multiple_choice(model, str(tmp / "mc"), SPM, max_seq_length=T,
                                  max_qa_length=8)
    return model, path


@pytest.mark.parametrize("make", [squad_export, mc_export], ids=["squad", "multiple_choice"])
def test_encode_gives_the_backbone_states_of_the_packed_text(make, tmp_path):
    model, path = make(tmp_path)
    sig = load_saved_model(path).signatures["encode"]
    out = sig(text=tf.constant(TEXTS))
    states, mask, pooled = (out[k].numpy() for k in ("token_states", "token_mask", "pooled"))
    tok = Tokenizer(SPM)
    for i, text in enumerate(TEXTS):
        ids = tok.encode_ids(text)
        input_ids, input_mask, seg_ids = pack_ids(ids, None, T)
        hidden = model.transformer({"input_ids": np.array([input_ids], np.int32),
                                    "seg_ids": np.array([seg_ids], np.int32),
                                    "input_mask": np.array([input_mask], np.float32)},
                                   training=False)["hidden"].numpy()[0]      # [T, d]
        n = min(len(ids), T - 2)
        want_mask = np.zeros(T, np.float32)
        want_mask[T - 2 - n:T - 2] = 1.0
        np.testing.assert_array_equal(mask[i], want_mask)
        np.testing.assert_allclose(states[i], hidden, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(pooled[i], hidden[T - 2 - n:T - 2].mean(0), rtol=1e-5,
                                   atol=1e-5)
        alone = sig(text=tf.constant([text]))["pooled"].numpy()[0]
        np.testing.assert_allclose(alone, pooled[i], rtol=1e-5, atol=1e-5)
    assert len(tok.encode_ids(TEXTS[1])) > T - 2          # the truncation case is exercised
    empty = sig(text=tf.constant([], tf.string))
    assert empty["pooled"].shape == [0, 16]
