"""Exports and run files get the usual permissions (0644 files, 0755 folders under umask
022; whatever the umask leaves otherwise), not the 0600 / 0700 of mkstemp / mkdtemp: TF
Serving or a colleague running as another user must be able to read them."""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from failure_test_utils import FIXTURE_SPM, tiny_classifier
from xlnet_tf import io as io_lib
from xlnet_tf.modeling import checkpoint as ckpt_lib


@pytest.fixture(params=[0o022, 0o002])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def modes(folder):
    """{relative path: permission bits} of ``folder`` itself and everything under it."""
    result = {".": os.stat(folder).st_mode & 0o777}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            result[os.path.relpath(path, folder)] = os.stat(path).st_mode & 0o777
    return result


def assert_default_modes(folder, umask, skip_root=False):
    found = modes(folder)
    if skip_root:
        found.pop(".")
    want = {p: (0o777 if os.path.isdir(os.path.join(folder, p)) else 0o666) & ~umask
            for p in found}
    assert found == want, {p: oct(m) for p, m in found.items()}


def test_default_mode_follows_the_umask(umask, tmp_path):
    assert io_lib.default_mode(True) == 0o777 & ~umask
    assert io_lib.default_mode(False) == 0o666 & ~umask
    import tempfile
    d = tempfile.mkdtemp(dir=tmp_path)
    fd, f = tempfile.mkstemp(dir=tmp_path)
    os.close(fd)
    assert os.stat(d).st_mode & 0o777 == 0o700      # what mkdtemp / mkstemp give
    io_lib.apply_default_mode(d), io_lib.apply_default_mode(f)
    assert os.stat(d).st_mode & 0o777 == 0o777 & ~umask
    assert os.stat(f).st_mode & 0o777 == 0o666 & ~umask


def test_export_version_folder_is_readable_by_others(umask, tmp_path):
    from xlnet_tf.classification import export_classifier
    path = export_classifier(tiny_classifier(), str(tmp_path / "export"), FIXTURE_SPM,
                             max_seq_length=16, label_list=["0", "1"])
    assert os.path.basename(path) == "1"
    assert_default_modes(path, umask)
    assert {"saved_model.pb", "variables/variables.index", "assets/spiece.model",
            "assets.extra/export_info.json"} <= set(modes(path))


def test_run_files_and_checkpoints(umask, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    io_lib.write_json_atomic(str(out / "run_config.json"), {"a": 1})
    io_lib.copy_file_atomic(FIXTURE_SPM, str(out / "spiece.model"))
    model = tiny_classifier()
    ckpt_lib.save_original_checkpoint(model, str(out / "final" / "xlnet_model.ckpt"))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(out), 2)
    from xlnet_tf.training import checkpoints
    checkpoints.save_checkpoint(manager, 1)
    with io_lib.folder_lock(str(out)):
        pass
    assert_default_modes(out, umask, skip_root=True)


def test_trained_sentencepiece_model(umask, tmp_path):
    from xlnet_tf.tokenization.train_spm import train_sentencepiece
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghij"), rng.integers(2, 8))) for _ in range(500)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words, 10)) for _ in range(500)))
    out = tmp_path / "vocab"
    train_sentencepiece([str(corpus)], str(out / "spiece"), vocab_size=200, seed=1)
    assert_default_modes(out, umask)
    shutil.rmtree(out)
