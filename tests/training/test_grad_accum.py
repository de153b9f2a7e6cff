"""Gradient accumulation in the shared loop (``TrainConfig.grad_accum_steps``): N micro-batches
of b rows give the weights of one batch of N x b rows (float32 tolerance) with global-norm
clipping, layer-wise decay and AdamW acting on the accumulated gradient, for a tiny classifier
and a tiny pretraining model (memory carried across steps, bi_data halves, micro-batches
holding unequal numbers of predicted tokens); with mixed_float16 and its loss scale; exact
resume; and MirroredStrategy over two logical CPUs (a subprocess: the devices must be set
before TensorFlow starts, ``python tests/training/test_grad_accum.py --mirrored-worker``).
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from xlnet_tf import training  # noqa: E402
from xlnet_tf.classification.task import ClassifierTask  # noqa: E402
from xlnet_tf.modeling.config import XLNetConfig  # noqa: E402
from xlnet_tf.pretraining.task import PretrainTask  # noqa: E402
from pretrain_test_utils import synthetic_rows  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SIZE = dict(n_layer=2, d_model=16, n_head=2, d_head=8, d_inner=32, n_token=50, dropout=0.0,
            dropatt=0.0)
T, P = 8, 3          # sequence length, predicted tokens per row (pretraining)
STEPS = 4
# clip small enough to act on every step (asserted), decay and AdamW on
OPTIMIZER = dict(learning_rate=1e-2, warmup_steps=1, clip=0.05, lr_layer_decay_rate=0.5,
                 weight_decay=0.01, iterations=2)


class _Processor:
    name, is_regression, label_list = "synthetic", False, ["a", "b", "c"]


class SyntheticClassifierTask(ClassifierTask):
    """The real classifier model and loss on a fixed stream of random rows."""

    def __init__(self):
        super().__init__(XLNetConfig(**SIZE), _Processor(), None, T)
        rng = np.random.default_rng(0)
        n = 64
        self.rows = {"input_ids": rng.integers(0, 50, (n, T)).astype(np.int32),
                     "seg_ids": rng.integers(0, 2, (n, T)).astype(np.int32),
                     "input_mask": (rng.random((n, T)) < 0.2).astype(np.float32),
                     "label": rng.integers(0, 3, n).astype(np.int32)}

    def dataset(self, ctx, per_replica_batch, skip_batches):
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        ds = tf.data.Dataset.from_tensor_slices(self.rows).repeat().batch(
            per_replica_batch, drop_remainder=True)
        return ds.skip(skip_batches * replicas)

    def export(self, model, model_dir):
        pass


class SyntheticPretrainTask(PretrainTask):
    """The real two-stream model, loss and memory on a fixed stream of random rows; some
    rows predict fewer tokens than others (unequal loss denominators per micro-batch)."""

    def __init__(self, bi_data=True):
        config = XLNetConfig(**SIZE, mem_len=6, reuse_len=4, bi_data=bi_data)
        super().__init__(config, None, seq_len=T, reuse_len=4, perm_size=4, num_predict=P,
                         bi_data=bi_data)
        rng = np.random.default_rng(1)
        self.rows = synthetic_rows(rng, 96, T, P, SIZE["n_token"])
        self.rows["target_mask"][rng.random(96) < 0.4, 1:] = 0   # 40 % predict one token

    dataset = SyntheticClassifierTask.dataset

    def export(self, model, model_dir):
        pass


def train(task, model_dir, *, batch, accum, strategy=None, callback=None, **overrides):
    """Train ``STEPS`` steps from the same initial weights; returns (weights, history)."""
    tf.keras.utils.set_random_seed(0)           # the same initial weights every time
    config = training.TrainConfig(model_dir=str(model_dir), train_steps=STEPS,
                                  global_batch_size=batch, grad_accum_steps=accum,
                                  **dict(OPTIMIZER, **overrides))
    result = training.train(task, config, strategy or tf.distribute.get_strategy(),
                            callback=callback)
    weights = {n: v.numpy() for n, v in result["model"].original_name_map().items()}
    return weights, result["history"]


def max_diff(a, b):
    return max(float(np.max(np.abs(a[n] - b[n]))) for n in a)


@pytest.mark.parametrize("make_task", [SyntheticClassifierTask, SyntheticPretrainTask],
                         ids=["classifier", "pretrain_bi_data_memory"])
def test_micro_batches_give_the_weights_of_the_whole_batch(tmp_path, make_task):
    task = make_task()
    whole, hist = train(task, tmp_path / "whole", batch=8, accum=1)
    accumulated, hist4 = train(task, tmp_path / "accum", batch=8, accum=4)
    small, _ = train(task, tmp_path / "small", batch=2, accum=1)   # the micro-batch alone
    assert all(h["grad_norm"] > OPTIMIZER["clip"] for h in hist)   # clipping acted
    assert max_diff(whole, accumulated) < 2e-6
    np.testing.assert_allclose([h["loss"] for h in hist4], [h["loss"] for h in hist],
                               rtol=1e-5)
    np.testing.assert_allclose([h["grad_norm"] for h in hist4], [h["grad_norm"] for h in hist],
                               rtol=1e-4)
    assert max_diff(whole, small) > 1e-3           # the comparison can fail


def test_pretraining_micro_batches_are_weighted_by_their_predicted_tokens(tmp_path,
                                                                          monkeypatch):
    """Weighting every micro-batch equally (by rows) would not give the whole batch's
    gradient: the rows predict different numbers of tokens."""
    task = SyntheticPretrainTask()
    whole, _ = train(task, tmp_path / "whole", batch=8, accum=1)
    monkeypatch.setattr(SyntheticPretrainTask, "loss_weight",
                        training.Task.loss_weight)
    by_rows, _ = train(task, tmp_path / "rows", batch=8, accum=4)
    assert max_diff(whole, by_rows) > 1e-5


def test_bi_data_micro_batches_take_forward_and_backward_rows_alike():
    task = SyntheticPretrainTask(bi_data=True)
    assert task.micro_batch_rows(8, 2) == [[0, 1, 4, 5], [2, 3, 6, 7]]
    assert SyntheticPretrainTask(bi_data=False).micro_batch_rows(8, 2) == [[0, 1, 2, 3],
                                                                           [4, 5, 6, 7]]
    with pytest.raises(ValueError, match=r"--bi_data with --grad_accum_steps=4.*per-replica "
                                         r"batch 4 must be divisible by 2 x 4"):
        task.micro_batch_rows(4, 4)


def test_mixed_float16_accumulates_under_the_loss_scale(tmp_path):
    task = SyntheticClassifierTask()
    training.set_precision("mixed_float16")
    try:
        whole, _ = train(task, tmp_path / "whole", batch=8, accum=1, precision="mixed_float16")
        accumulated, _ = train(task, tmp_path / "accum", batch=8, accum=2,
                               precision="mixed_float16")
    finally:
        training.set_precision("float32")
    float32, _ = train(task, tmp_path / "f32", batch=8, accum=1)
    # float16 activations: the two runs agree to float16 rounding, and differ from float32
    assert max_diff(whole, accumulated) < 2e-3
    reader = [tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / d)))
              for d in ("whole", "accum")]
    scales = [r.get_tensor("loss_scale/.ATTRIBUTES/VARIABLE_VALUE") for r in reader]
    assert scales[0] == scales[1] == 2.0 ** 15
    assert max_diff(whole, float32) > max_diff(whole, accumulated)


def test_resume_continues_exactly_at_an_optimizer_step(tmp_path):
    task = SyntheticPretrainTask()
    uninterrupted, _ = train(task, tmp_path / "straight", batch=8, accum=2)

    def stop(step, metrics, model):
        if step == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(task, tmp_path / "resumed", batch=8, accum=2, save_steps=2, callback=stop)
    assert tf.train.latest_checkpoint(str(tmp_path / "resumed")).endswith("ckpt-2")
    resumed, hist = train(task, tmp_path / "resumed", batch=8, accum=2, save_steps=2)
    assert [h["step"] for h in hist] == [4]                  # only steps 3 and 4 ran
    assert max_diff(uninterrupted, resumed) == 0.0
    # the records' position counts optimizer steps: resuming with another N continues too
    with pytest.raises(KeyboardInterrupt):
        train(task, tmp_path / "other_n", batch=8, accum=2, save_steps=2, callback=stop)
    other_n, _ = train(task, tmp_path / "other_n", batch=8, accum=4, save_steps=2)
    assert max_diff(uninterrupted, other_n) < 2e-6


def test_batch_not_divisible_by_the_micro_batches_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"--train_batch_size=10 is not divisible by "
                                         r"--grad_accum_steps=4"):
        training.TrainConfig(model_dir=str(tmp_path), train_steps=1, learning_rate=1.0,
                             global_batch_size=10, grad_accum_steps=4).validate()
    with pytest.raises(ValueError, match=r"--grad_accum_steps must be >= 1"):
        training.TrainConfig(model_dir=str(tmp_path), train_steps=1, learning_rate=1.0,
                             global_batch_size=10, grad_accum_steps=0).validate()
    assert not os.listdir(tmp_path)


# ---------------------------------------------------------------------------- the scripts
FIXTURE_SPM = str(REPO_ROOT / "tests" / "fixtures" / "spiece_test.model")
CLASSIFIER = ["--n_layer=1", "--d_model=16", "--n_head=2", "--d_head=8", "--d_inner=32",
              "--max_seq_length=16", "--train_batch_size=4", "--learning_rate=1e-3",
              "--iterations=2", f"--spiece_model={FIXTURE_SPM}", "--train_steps=2",
              "--warmup_steps=0", "--do_train"]
PRETRAIN = ["--n_layer=2", "--d_model=32", "--n_head=2", "--d_head=16", "--d_inner=64",
            "--seq_len=32", "--reuse_len=16", "--perm_size=16", "--num_predict=5",
            "--mem_len=16", "--train_batch_size=8", "--vocab_size=500"]


@pytest.mark.parametrize("script,flags,needles", [
    ("run_classifier", ["--grad_accum_steps=3"],
     ["--train_batch_size=4 is not divisible by --grad_accum_steps=3"]),
    ("run_classifier", ["--grad_accum_steps=0"], ["--grad_accum_steps must be >= 1"]),
    ("run_pretrain", ["--grad_accum_steps=3"],
     ["--train_batch_size=8 is not divisible by --grad_accum_steps=3"]),
    ("run_pretrain", ["--grad_accum_steps=-1"], ["--grad_accum_steps must be >= 1"]),
    # bi_data: a micro-batch of 1 row cannot hold a forward and a backward row
    ("run_pretrain", ["--grad_accum_steps=8"],
     ["--bi_data with --train_batch_size=8 --grad_accum_steps=8", "make train_batch_size / "
      "grad_accum_steps even"]),
])
def test_scripts_refuse_micro_batches_that_do_not_divide(tmp_path, script, flags, needles):
    from refusal_utils import assert_refused, generic_task, run_script, snapshot
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's file\n")
    before = snapshot(out)
    if script == "run_classifier":
        args = [*CLASSIFIER, *generic_task(tmp_path), f"--output_dir={out}"]
    else:
        args = [*PRETRAIN, f"--model_dir={out}", f"--data_dir={tmp_path / 'cache'}"]
    code, _, err = run_script(script, [*args, *flags])
    assert_refused(code, err, *needles)
    assert snapshot(out) == before and not (tmp_path / "cache").exists()


def test_run_classifier_trains_with_the_flag(tmp_path, monkeypatch):
    from refusal_utils import generic_task, run_script
    from xlnet_tf.training import loop
    seen, real = [], loop.train

    def spy(task, config, *args, **kwargs):
        seen.append(config)
        return real(task, config, *args, **kwargs)
    monkeypatch.setattr(loop, "train", spy)
    code, _, err = run_script("run_classifier", [*CLASSIFIER, *generic_task(tmp_path),
                                                 f"--output_dir={tmp_path / 'out'}",
                                                 "--grad_accum_steps=2"])
    assert code == 0, err
    assert [(c.global_batch_size, c.grad_accum_steps, c.micro_batch_size) for c in seen] == \
        [(4, 2, 2)]
    assert (tmp_path / "out" / "ckpt-2.index").exists()


def test_memory_estimate_counts_the_micro_batch(monkeypatch):
    from xlnet_tf import finetuning
    from xlnet_tf.training import memory
    config = XLNetConfig(n_layer=24, d_model=1024, n_head=16, d_head=64, d_inner=4096,
                         n_token=32000)
    shape = dict(n_params=config.num_parameters(with_lm_head=False), n_layer=24,
                 d_model=1024, n_head=16, seq_len=512)
    # a machine that holds 4 rows of XLNet-Large x 512 but not 32
    have = memory.estimate_training_bytes(batch_size=4, **shape) / memory.SLACK
    monkeypatch.setattr(memory, "machine_memory_bytes", lambda: int(have) + 1)

    def check(accum):
        finetuning.check_memory(config, training.TrainConfig(
            model_dir="unused", train_steps=1, learning_rate=1.0, global_batch_size=32,
            grad_accum_steps=accum), 512)
    with pytest.raises(ValueError, match=r"--train_batch_size=32 --max_seq_length=512 would "
                                         r"need.*--grad_accum_steps to split the batch"):
        check(1)
    with pytest.raises(ValueError, match=r"--train_batch_size=32 --grad_accum_steps=4 "):
        check(4)
    check(8)                                       # 8 micro-batches of 4 rows fit


# ---------------------------------------------------------------------------- mirrored
def _mirrored_worker(out_dir):
    training.configure_cpu_devices(2)
    strategy = training.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    result = {}
    for name, make_task in (("classifier", SyntheticClassifierTask),
                            ("pretrain", SyntheticPretrainTask)):
        task = make_task()
        runs = {}
        for accum in (1, 2):
            tf.keras.utils.set_random_seed(0)
            config = training.TrainConfig(
                model_dir=os.path.join(out_dir, f"{name}{accum}"), train_steps=STEPS,
                global_batch_size=16, grad_accum_steps=accum, **OPTIMIZER)
            model = training.train(task, config, strategy)["model"]
            runs[accum] = {n: [r.numpy() for r in strategy.experimental_local_results(v.value)]
                           for n, v in model.original_name_map().items()}
        result[name] = {
            "vs_whole_batch": max(float(np.max(np.abs(runs[1][n][0] - runs[2][n][0])))
                                  for n in runs[1]),
            "replica_diff": max(float(np.max(np.abs(r[0] - r[1]))) for r in runs[2].values())}
    print("RESULT " + json.dumps(result), flush=True)


def test_mirrored_strategy_accumulates_like_the_whole_batch(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")]),
               TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, __file__, "--mirrored-worker", str(tmp_path)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    for name, r in result.items():
        assert r["replica_diff"] == 0.0, name
        assert r["vs_whole_batch"] < 2e-6, (name, r)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--mirrored-worker"]:
        _mirrored_worker(sys.argv[2])
    else:
        sys.exit(f"usage: python {sys.argv[0]} --mirrored-worker OUT_DIR (run the tests with "
                 f"pytest)")
