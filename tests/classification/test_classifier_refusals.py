"""run_classifier.py refuses what cannot work before it writes, and a failed run does not
tie its folder: an absurd --max_seq_length (with the memory estimate), a second run in the
same --output_dir (naming the first), the corrected rerun after a run that failed at
runtime (accepted), another model in a folder with a checkpoint (naming --output_dir)."""
import os
import pathlib

import pytest

from refusal_utils import (another_run_holding, assert_refused, generic_task, run_script,
                           snapshot)

FIXTURE_SPM = str(pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "spiece_test.model")
TINY = ["--n_layer=1", "--d_model=16", "--n_head=2", "--d_head=8", "--d_inner=32",
        "--max_seq_length=16", "--train_batch_size=4", "--eval_batch_size=8",
        "--learning_rate=1e-3", "--iterations=2", f"--spiece_model={FIXTURE_SPM}",
        "--train_steps=2", "--warmup_steps=0"]


def user_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's file\n")
    return out, snapshot(out)


def test_absurd_max_seq_length_is_refused_with_the_estimate(tmp_path):
    out, before = user_folder(tmp_path)
    code, _, err = run_script("run_classifier", [
        *generic_task(tmp_path), f"--output_dir={out}", "--do_train", *TINY,
        "--max_seq_length=100000"])
    line = assert_refused(code, err, "--max_seq_length=100000", "--train_batch_size=4",
                          "GiB of memory")
    assert "this machine has" in line
    assert snapshot(out) == before
    assert not (tmp_path / "cache").exists()       # no record was built


@pytest.mark.parametrize("action", ["--do_eval", "--do_predict"])
def test_absurd_evaluation_batch_is_refused_without_training_too(tmp_path, action):
    """An eval- or predict-only run gets the estimate of one evaluation batch up front."""
    out, before = user_folder(tmp_path)
    code, _, err = run_script("run_classifier", [
        *generic_task(tmp_path), f"--output_dir={out}", action, *TINY,
        "--max_seq_length=100000"])
    line = assert_refused(code, err, "--eval_batch_size=8 --max_seq_length=100000",
                          "GiB of memory for one evaluation batch")
    assert "this machine has" in line and "smaller evaluation batch" in line
    assert snapshot(out) == before
    assert not (tmp_path / "cache").exists()


def test_inference_estimate_grows_with_batch_length_and_memory():
    from xlnet_tf.training import memory
    shape = dict(n_params=1_000_000, d_model=64, n_head=4, batch_size=8, seq_len=128)
    base = memory.estimate_inference_bytes(**shape)
    # hand-computed: runtime + 4 bytes per weight + one layer's states and scores
    assert base == int(memory.RUNTIME_BYTES + 4e6 + 8 * 128 * 64 * 190 / 2
                       + 8 * 4 * 128 * 128 * 6 / 2)
    assert memory.estimate_inference_bytes(**dict(shape, batch_size=16)) > base
    assert memory.estimate_inference_bytes(**shape, mem_len=128) > base
    # no backward pass: far below a training step of the same shape
    assert base < memory.estimate_training_bytes(**shape, n_layer=4)


def test_second_run_in_the_same_output_dir_is_refused_naming_the_first(tmp_path):
    out, _ = user_folder(tmp_path)
    with another_run_holding(out, "--output_dir") as pid:
        inside = snapshot(out)
        code, _, err = run_script("run_classifier", [
            *generic_task(tmp_path), f"--output_dir={out}", "--do_train", *TINY])
        assert_refused(code, err, f"--output_dir={out} is in use by another run", f"pid {pid}")
        assert snapshot(out) == inside              # the first run's lock files untouched


def test_a_run_that_failed_at_runtime_does_not_tie_its_folder(tmp_path, monkeypatch):
    from xlnet_tf.training import loop

    def failing_loop(*args, **kwargs):
        def run(iterator, n):
            raise RuntimeError("simulated failure in the first training step")
        return run

    task = generic_task(tmp_path)
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        m.setattr(loop, "_make_loop", failing_loop)
        with pytest.raises(RuntimeError, match="simulated failure"):
            run_script("run_classifier", [*task, f"--output_dir={out}", "--do_train", *TINY])
    # nothing in the folder ties it to the failed run's settings
    assert not (out / "task.json").exists()
    assert not (out / "classifier_config.json").exists()
    assert not [p for p in os.listdir(out) if p.startswith(".xlnet_tf.lock")]

    # the corrected rerun (another model size) in the same folder trains
    corrected = [a.replace("--d_model=16", "--d_model=32").replace("--d_head=8", "--d_head=16")
                 for a in TINY]
    code, stdout, err = run_script("run_classifier", [*task, f"--output_dir={out}",
                                                      "--do_train", *corrected])
    assert code == 0, err
    assert (out / "task.json").exists() and (out / "classifier_config.json").exists()
    assert (out / "ckpt-2.index").exists()

    # now the folder holds a checkpoint: another model is refused, naming this script's flag
    before = snapshot(out)
    code, _, err = run_script("run_classifier", [*task, f"--output_dir={out}", "--do_train",
                                                 *TINY, "--train_steps=4"])
    line = assert_refused(code, err, "--output_dir", "d_model")
    assert "--model_dir" not in line
    assert snapshot(out) == before
