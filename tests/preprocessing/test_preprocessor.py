"""XLNetPreprocessor (in-graph text -> packed features) against the Python feature builder.

The Python path (``Tokenizer.encode_ids`` + ``classification.features.convert_single_example``)
and the layer must give identical ids, segment ids and masks on real GLUE dev rows, single
texts and pairs, with truncation (a short ``sequence_length`` forces it on most rows), both
called directly and inside ``tf.data.Dataset.map`` before and after ``batch``.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

from xlnet_tf.classification.features import convert_single_example
from xlnet_tf.classification.readers import get_task
from xlnet_tf.preprocessing import XLNetPreprocessor
from xlnet_tf.tokenization.tokenizer import CLS_ID, SEP_ID, Tokenizer

from spm_test_utils import FIXTURE_MODEL

N_ROWS = 200


def python_features(examples, labels, T, tokenizer):
    feats = [convert_single_example(ex, labels, T, tokenizer) for ex in examples]
    return {"input_ids": np.array([f.input_ids for f in feats], np.int32),
            "seg_ids": np.array([f.seg_ids for f in feats], np.int32),
            "input_mask": np.array([f.input_mask for f in feats], np.float32)}


def assert_same(got, want):
    for key in ("input_ids", "seg_ids", "input_mask"):
        np.testing.assert_array_equal(np.asarray(got[key]), want[key], err_msg=key)


@pytest.mark.parametrize("task,T,lower", [("sst-2", 24, True), ("mrpc", 40, False)])
def test_glue_dev_rows_equal_the_python_feature_builder(shared_data, task, T, lower):
    folder = {"sst-2": "SST-2", "mrpc": "MRPC"}[task]
    data_dir = os.path.join(shared_data, "glue", folder)
    if not os.path.isfile(os.path.join(data_dir, "dev.tsv")):
        pytest.skip(f"{data_dir}/dev.tsv is absent")
    processor = get_task(task)
    examples = processor.get_dev_examples(data_dir)[:N_ROWS]
    assert len(examples) == N_ROWS
    tokenizer = Tokenizer(str(FIXTURE_MODEL), lower=lower)
    want = python_features(examples, processor.get_labels(), T, tokenizer)
    pre = XLNetPreprocessor(str(FIXTURE_MODEL), sequence_length=T, lower=lower)
    text_a = [ex.text_a for ex in examples]
    pair = examples[0].text_b is not None
    inputs = (text_a, [ex.text_b for ex in examples]) if pair else text_a
    assert_same(pre(inputs), want)
    # the layout really is the original's: <cls> last, <sep> before it, and truncation hit
    assert (want["input_ids"][:, -1] == CLS_ID).all() and (want["input_ids"][:, -2] == SEP_ID).all()
    n_real = (want["input_mask"] == 0).sum(axis=1)
    if T < 64:
        assert (n_real == T).sum() > N_ROWS // 4, "the short length should truncate many rows"
    # inside tf.data, per example (scalar strings) then batched, and on batches
    ds = tf.data.Dataset.from_tensor_slices(inputs)
    rows = list(ds.map(lambda *x: pre(x if pair else x[0])).batch(N_ROWS))
    assert_same(rows[0], want)
    batches = list(ds.batch(64).map(lambda *x: pre(x if pair else x[0])))
    assert_same({k: np.concatenate([b[k] for b in batches]) for k in want}, want)


def test_hand_checked_pair_and_dict_input():
    tokenizer = Tokenizer(str(FIXTURE_MODEL))
    a, b = tokenizer.encode_ids("a gorgeous film"), tokenizer.encode_ids("it is")
    pre = XLNetPreprocessor(str(FIXTURE_MODEL), sequence_length=len(a) + len(b) + 5)
    out = pre({"text_a": ["a gorgeous film"], "text_b": ["it is"]})
    assert list(out["input_ids"][0]) == [0, 0] + a + [SEP_ID] + b + [SEP_ID, CLS_ID]
    assert list(out["seg_ids"][0]) == [4, 4] + [0] * (len(a) + 1) + [1] * (len(b) + 1) + [2]
    assert list(out["input_mask"][0]) == [1.0, 1.0] + [0.0] * (len(a) + len(b) + 3)
    with pytest.raises(ValueError, match="text_a"):
        pre({"sentence": ["x"]})


def test_config_round_trip_carries_the_vocabulary():
    pre = XLNetPreprocessor(str(FIXTURE_MODEL), sequence_length=16, lower=True)
    again = XLNetPreprocessor.from_config(pre.get_config())
    assert again.serialized_model_proto() == FIXTURE_MODEL.read_bytes()
    assert again.lower and again.sequence_length == 16
    text = ["Hello World, 2000, again"]
    assert_same(again(text), {k: v.numpy() for k, v in pre(text).items()})
