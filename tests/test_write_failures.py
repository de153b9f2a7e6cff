"""Write failures: a file size limit (EFBIG, what a full disk's ENOSPC looks like to the
writers) while writing a checkpoint, records, a SentencePiece model or an export; a
read-only output folder; an output path that is a file.  Every one is an error naming the
path (exit 2, one line, no traceback), nothing half-written is left where a later run would
trust it, and a pre-existing folder is byte-for-byte unchanged."""
import errno
import importlib
import os
import stat

import numpy as np
import pytest
import tensorflow as tf

from failure_test_utils import (FIXTURE_SPM, assert_refused, file_size_limit, guarded_folder,
                                run_entry, snapshot, tiny_classifier)
from xlnet_tf import io as io_lib
from xlnet_tf.modeling import checkpoint as ckpt_lib
from xlnet_tf.training import checkpoints

LIMIT = 20_000     # bytes: more than a small JSON file, less than a tiny model's weights


@pytest.fixture(scope="module")
def model():
    return tiny_classifier()


def test_library_errors_carry_the_reason():
    """TensorFlow and SentencePiece report a failed write with the system's message."""
    assert io_lib.write_errno(tf.errors.OutOfRangeError(None, None, "x; File too large")) \
        == errno.EFBIG
    assert io_lib.write_errno(RuntimeError("No space left on device")) == errno.ENOSPC
    assert io_lib.write_errno(ValueError("bad label")) is None
    e = io_lib.describe_write_error("/out/f", RuntimeError("a: No space left on device"))
    assert str(e).startswith("cannot write /out/f: the disk is full")


def test_atomic_output_of_a_tensorflow_writer(tmp_path):
    folder, before = guarded_folder(tmp_path / "records", {"old.tfrecord": "earlier\n"})
    with pytest.raises(io_lib.WriteError, match="new.tfrecord: the file is too large"):
        with file_size_limit(LIMIT):
            with io_lib.atomic_output(str(folder / "new.tfrecord")) as tmp, \
                    tf.io.TFRecordWriter(tmp) as writer:
                for _ in range(10):
                    writer.write(b"x" * 5000)
    assert snapshot(folder) == before


def test_original_checkpoint_write_fails_whole(model, tmp_path):
    folder = tmp_path / "out"
    prefix = ckpt_lib.save_original_checkpoint(model, str(folder / "xlnet_model.ckpt"))
    before = snapshot(folder)
    with pytest.raises(io_lib.WriteError) as e:
        with file_size_limit(LIMIT):
            ckpt_lib.save_original_checkpoint(model, prefix, global_step=9)
    assert str(e.value).startswith(f"cannot write {prefix}: the file is too large")
    assert snapshot(folder) == before        # the earlier checkpoint is intact, no temp left


def test_training_checkpoint_write_fails_cleanly(model, tmp_path):
    ckpt = tf.train.Checkpoint(model=model)
    manager = tf.train.CheckpointManager(ckpt, str(tmp_path / "run"), max_to_keep=3)
    first = checkpoints.save_checkpoint(manager, 10)
    before = snapshot(tmp_path / "run")
    with pytest.raises(io_lib.WriteError) as e:
        with file_size_limit(LIMIT):
            checkpoints.save_checkpoint(manager, 20)
    assert str(tmp_path / "run" / "ckpt-20") in str(e.value) and "too large" in str(e.value)
    assert snapshot(tmp_path / "run") == before          # no ckpt-20_temp, no ckpt-20.*
    assert tf.train.latest_checkpoint(str(tmp_path / "run")) == first


def test_export_write_fails_without_a_version(model, tmp_path):
    from xlnet_tf.classification import export_classifier
    exports, before = guarded_folder(tmp_path / "export", {"notes.txt": "versions here\n"})
    with pytest.raises(io_lib.WriteError) as e:
        with file_size_limit(LIMIT):
            export_classifier(model, str(exports), FIXTURE_SPM, max_seq_length=16,
                              label_list=["0", "1"])
    assert str(e.value).startswith(f"cannot write {exports / '1'}:")
    assert snapshot(exports) == before        # no version 1, no hidden temporary folder


def test_train_spm_disk_full_leaves_no_model(tmp_path):
    """SentencePiece itself ignores the failed write (a short file): the read-back catches
    it, nothing is renamed into place, and the next run trains normally."""
    from xlnet_tf.tokenization import train_spm
    corpus = tmp_path / "corpus.txt"
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghij"), rng.integers(2, 8))) for _ in range(2000)]
    corpus.write_text("\n".join(" ".join(rng.choice(words, 12)) for _ in range(2000)))
    out, before = guarded_folder(tmp_path / "vocab", {"notes.txt": "keep me\n"})
    argv = [f"--input={corpus}", f"--model_prefix={out / 'spiece'}", "--vocab_size=300",
            "--seed=1"]
    with file_size_limit(LIMIT):
        result = run_entry(train_spm.define_flags, train_spm.main, argv, "train_spm")
    assert_refused(result, f"cannot write {out / 'spiece.model'}", "is the disk full")
    assert snapshot(out) == before
    code, _, err = run_entry(train_spm.define_flags, train_spm.main, argv, "train_spm")
    assert code == 0, err[-2000:]
    assert os.path.getsize(out / "spiece.model") > LIMIT


def test_pretraining_records_disk_full(tmp_path):
    from xlnet_tf.pretraining import records
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"line {i} of a small corpus about films and books .\n"
                              for i in range(3000)))
    save_dir, before = guarded_folder(tmp_path / "records", {"README": "records here\n"})
    with file_size_limit(LIMIT):
        result = run_entry(records.define_flags, records.main, [
            f"--input_glob={corpus}", f"--save_dir={save_dir}", f"--spiece_model={FIXTURE_SPM}",
            "--seq_len=32", "--reuse_len=16", "--num_predict=5", "--bsz_per_host=4",
            "--num_core_per_host=1", "--nobi_data"], "records")
    assert_refused(result, f"cannot write {save_dir / 'train-0-0.tfrecord'}")
    leftovers = set(snapshot(save_dir)) - set(before)
    assert leftovers <= {".records.lock"}, leftovers        # no record, no manifest part


# ------------------------------------------------------- read-only folders, files in the way
def _read_only(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "earlier.txt").write_text("earlier results\n")
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return folder


SCRIPTS = {name: importlib.import_module(name) for name in
           ("run_pretrain", "run_classifier", "run_squad")}


def _entry(name):
    """(define_flags, main) of an entry point."""
    if name in SCRIPTS:
        return SCRIPTS[name].define_flags, SCRIPTS[name].main
    module = importlib.import_module(name)
    return module.define_flags, module.main


@pytest.mark.parametrize("entry,flag,make_argv", [
    ("run_pretrain", "--model_dir", lambda p, t: [f"--model_dir={p}", "--train_steps=1"]),
    ("run_pretrain", "--data_dir", lambda p, t: [f"--model_dir={t / 'm'}", f"--data_dir={p}",
                                                 "--train_steps=1"]),
    ("run_classifier", "--output_dir", lambda p, t: [
        "--task=sst-2", f"--data_dir={t}", f"--output_dir={p}", "--do_train",
        f"--spiece_model={FIXTURE_SPM}"]),
    ("run_squad", "--export_dir", lambda p, t: [f"--output_dir={t / 'o'}", f"--export_dir={p}",
                                                f"--spiece_model={FIXTURE_SPM}"]),
    ("xlnet_tf.pretraining.records", "--save_dir", lambda p, t: [
        f"--input_glob={t}/*.txt", f"--save_dir={p}", f"--spiece_model={FIXTURE_SPM}"]),
    ("xlnet_tf.tokenization.train_spm", "--model_prefix", lambda p, t: [
        f"--input={t}/c.txt", f"--model_prefix={p}/spiece"]),
    ("xlnet_tf.squad.evaluate", "--out-file", lambda p, t: [
        f"{t}/data.json", f"{t}/pred.json", f"--out-file={p}/eval.json"]),
])
@pytest.mark.parametrize("kind", ["read-only", "file"])
def test_unwritable_output_is_refused_first(entry, flag, make_argv, kind, tmp_path):
    """A read-only folder (mode bits, which even root's runs respect) or a file where the
    output folder should be: refused before any work, naming the flag and the path."""
    given = tmp_path / "given"
    if kind == "read-only":
        target = _read_only(given)
    else:
        given.write_text("a file, not a folder\n")
        target = given
    before = snapshot(tmp_path)
    try:
        result = run_entry(*_entry(entry), make_argv(target, tmp_path), entry)
        line = assert_refused(result, flag, str(target))
        assert ("read-only" if kind == "read-only" else "not a folder") in line
        assert snapshot(tmp_path) == before
    finally:
        if kind == "read-only":
            given.chmod(0o755)


def test_run_classifier_checkpoint_disk_full_then_rerun(tmp_path):
    """A training checkpoint that does not fit: exit 2 naming it, no ckpt-1 files or
    ckpt-1_temp folder, the state file untouched; the same command then trains normally."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.tsv").write_text("sentence\tlabel\n" + "".join(
        f"{'good' if i % 2 else 'bad'} film {i} .\t{i % 2}\n" for i in range(8)))
    out = tmp_path / "out"
    argv = ["--task=sst-2", f"--data_dir={data}", f"--output_dir={out}", "--do_train",
            "--train_steps=1", "--iterations=1", "--n_layer=1", "--d_model=16", "--n_head=2",
            "--d_head=8", "--d_inner=32", "--max_seq_length=16", "--train_batch_size=4",
            f"--spiece_model={FIXTURE_SPM}"]
    with file_size_limit(300_000):    # the run files fit (spiece.model is 273 kB), ckpt-1 not
        result = run_entry(*_entry("run_classifier"), argv, "run_classifier.py")
    assert_refused(result, f"cannot write {out / 'ckpt-1'}", "too large")
    assert not [n for n in os.listdir(out) if n.startswith("ckpt-")], os.listdir(out)
    assert tf.train.latest_checkpoint(str(out)) is None
    code, _, err = run_entry(*_entry("run_classifier"), argv, "run_classifier.py")
    assert code == 0, err[-2000:]
    assert tf.train.latest_checkpoint(str(out)) == str(out / "ckpt-1")
