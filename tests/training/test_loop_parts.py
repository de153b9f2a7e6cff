"""The parts of the training loop that need no model: the dynamic loss scale of
mixed_float16, the model_dir / output_dir identity checks, and the lazy public API."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from xlnet_tf import training  # noqa: E402
from xlnet_tf.training.loop import _DynamicLossScale  # noqa: E402


def test_loss_scale_unscales_finite_gradients_and_counts_the_step():
    ls = _DynamicLossScale()
    assert float(ls.scale) == 2.0 ** 15
    grads = ls.unscale([tf.constant([2.0 ** 15, -2.0 ** 14]), tf.constant([[2.0 ** 16]])])
    np.testing.assert_array_equal(grads[0].numpy(), [1.0, -0.5])
    np.testing.assert_array_equal(grads[1].numpy(), [[2.0]])
    assert float(ls.scale) == 2.0 ** 15 and int(ls.good_steps) == 1


def test_loss_scale_overflow_zeroes_the_step_and_halves_the_scale():
    ls = _DynamicLossScale()
    ls.good_steps.assign(7)
    grads = ls.unscale([tf.constant([1.0, np.inf]), tf.constant([3.0])])
    np.testing.assert_array_equal(grads[0].numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(grads[1].numpy(), [0.0])   # every gradient of the step
    assert float(ls.scale) == 2.0 ** 14 and int(ls.good_steps) == 0
    ls.scale.assign(1.0)
    ls.unscale([tf.constant([np.nan])])
    assert float(ls.scale) == 1.0                            # never below 1


def test_loss_scale_doubles_after_growth_steps_finite_steps():
    ls = _DynamicLossScale()
    ls.good_steps.assign(ls.GROWTH_STEPS - 2)
    ls.unscale([tf.constant([1.0])])
    assert float(ls.scale) == 2.0 ** 15 and int(ls.good_steps) == ls.GROWTH_STEPS - 1
    grads = ls.unscale([tf.constant([2.0 ** 15])])
    np.testing.assert_array_equal(grads[0].numpy(), [1.0])   # unscaled by the old scale
    assert float(ls.scale) == 2.0 ** 16 and int(ls.good_steps) == 0
    assert set(ls.checkpoint_items()) == {"loss_scale", "good_steps"}  # checkpoint keys


def test_model_dir_of_another_model_is_refused(tmp_path):
    identity = {"task": "pretrain", "d_model": 32, "seq_len": 64}
    training.check_model_dir(str(tmp_path / "new"), identity)        # nothing there: fine
    (tmp_path / "task.json").write_text(json.dumps(dict(identity, n_token=500)))
    training.check_model_dir(str(tmp_path), identity)                # same settings
    training.check_model_dir(str(tmp_path), {"task": "pretrain"})    # keys it does not name
    # no checkpoint yet (a run that failed before its first one): not tied to anything
    training.check_model_dir(str(tmp_path), dict(identity, d_model=48))
    (tmp_path / "ckpt-10.index").write_bytes(b"")
    with pytest.raises(ValueError, match=r"d_model: model_dir has 32, this run has 48.*"
                                         r"use a new --model_dir"):
        training.check_model_dir(str(tmp_path), dict(identity, d_model=48))
    (tmp_path / "task.json").write_text('{"task": ')
    with pytest.raises(ValueError, match="not valid JSON"):
        training.check_model_dir(str(tmp_path), identity)


def test_output_dir_fine_tuned_with_other_settings_is_refused(tmp_path):
    identity = {"task": "sst-2", "max_seq_length": 128}
    (tmp_path / "classifier.json").write_text(json.dumps({"identity": identity}))
    training.check_output_dir(str(tmp_path), identity, "classifier.json")
    training.check_output_dir(str(tmp_path), dict(identity, task="cola"), "classifier.json")
    (tmp_path / "xlnet_model.ckpt.index").write_bytes(b"")
    with pytest.raises(ValueError, match=r"task: output_dir has 'sst-2', this run has 'cola'.*"
                                         r"new --output_dir"):
        training.check_output_dir(str(tmp_path), dict(identity, task="cola"), "classifier.json")


def test_public_api_is_lazy_and_complete():
    code = ("import sys, xlnet_tf.training as t, xlnet_tf.pretraining as p\n"
            "assert 'tensorflow' not in sys.modules, 'eager TensorFlow import'\n"
            "p.check_settings(seq_len=64, reuse_len=32, perm_size=32)\n"
            "from xlnet_tf.pretraining import records\n"
            "assert 'tensorflow' not in sys.modules, 'records loads TensorFlow'\n"
            "missing = [n for m in (t, p) for n in m.__all__ if not hasattr(m, n)]\n"
            "print('MISSING', missing)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MISSING []" in proc.stdout
