"""xlnet_tf.classification.task: the losses by hand and the prediction files (the GLUE
submission format); training and evaluation end to end are in test_run_classifier.py."""
import json
import os

import numpy as np
import tensorflow as tf

from xlnet_tf.classification import classification_loss, regression_loss, write_predictions


def test_losses_by_hand():
    logits = tf.constant([[2.0, 0.0], [0.0, 1.0]])
    labels = tf.constant([0, 0])
    want = [np.log(1 + np.exp(-2.0)), np.log(1 + np.exp(1.0))]
    np.testing.assert_allclose(classification_loss(logits, labels).numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(classification_loss(logits, labels, [1.0, 0.0]).numpy(),
                               [want[0], 0.0], rtol=1e-6)
    np.testing.assert_allclose(
        regression_loss(tf.constant([[1.5], [3.0]]), tf.constant([1.0, 5.0])).numpy(),
        [0.25, 4.0])


def test_write_predictions(tmp_path):
    logits = np.array([[0.0, 2.0], [1.0, -1.0]], np.float32)
    tsv, jsonl = write_predictions(str(tmp_path), logits, ["neg", "pos"], False)
    assert open(tsv).read() == "index\tprediction\n0\tpos\n1\tneg\n"
    rows = [json.loads(line) for line in open(jsonl)]
    p = 1 / (1 + np.exp(-2.0))
    np.testing.assert_allclose(rows[0]["probabilities"], [1 - p, p], rtol=1e-6)
    assert rows[1]["prediction"] == "neg" and rows[1]["logits"] == [1.0, -1.0]
    tsv, _ = write_predictions(str(tmp_path), np.array([[3.25], [0.5]]), None, True)
    assert open(tsv).read() == "index\tprediction\n0\t3.250000\n1\t0.500000\n"
    assert sorted(os.listdir(tmp_path)) == ["predict_results.jsonl", "predictions.tsv"]
