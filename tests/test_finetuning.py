"""xlnet_tf.finetuning: the checks and choices run_classifier.py and run_squad.py share."""
import json
import os
import stat
import sys

import pytest

from xlnet_tf import finetuning as ft

GOOD = dict(output_dir="out", learning_rate=1e-5, train_steps=10, train_steps_given=False,
            num_train_epochs=None, warmup_steps=0, dropout=0.1, dropatt=0.1, save_steps=None,
            lr_layer_decay_rate=1.0, export_dir=None, export_version=None,
            init_checkpoint=None)


def test_the_module_loads_without_tensorflow():
    import subprocess
    code = ("import sys, xlnet_tf.finetuning as f; f.check_training_flags(**%r); "
            "print('tensorflow' in sys.modules)" % GOOD)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("change,needle", [
    ({"learning_rate": 0}, "--learning_rate must be > 0"),
    ({"num_train_epochs": 1.0, "train_steps_given": True}, "either --train_steps"),
    ({"num_train_epochs": 0.0}, "--num_train_epochs must be > 0"),
    ({"train_steps": 0}, "--train_steps must be > 0"),
    ({"warmup_steps": -1}, "--warmup_steps must be >= 0"),
    ({"dropatt": 1.0}, "--dropatt must be in [0, 1)"),
    ({"save_steps": 0}, "--save_steps must be > 0"),
    ({"lr_layer_decay_rate": 0.0}, "--lr_layer_decay_rate must be in (0, 1]"),
    ({"lr_layer_decay_rate": 1.5}, "--lr_layer_decay_rate must be in (0, 1]"),
    ({"export_version": 3}, "--export_version needs --export_dir"),
    ({"init_checkpoint": "out/xlnet_model.ckpt"}, "is the folder of --init_checkpoint"),
])
def test_training_flag_errors(change, needle):
    ft.check_training_flags(**GOOD)
    with pytest.raises(ValueError) as e:
        ft.check_training_flags(**dict(GOOD, **change))
    assert needle in str(e.value)


def test_epochs_instead_of_steps_is_fine():
    ft.check_training_flags(**dict(GOOD, num_train_epochs=2.5, train_steps=0))


def test_writable_dir_checks(tmp_path):
    ft.check_writable_dir(str(tmp_path / "new" / "deeper"), "output_dir")   # created later
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        ft.check_writable_dir(str(tmp_path / "file"), "export_dir")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert not ft.is_writable_dir(str(locked))     # mode bits count, even for root
        with pytest.raises(ValueError, match="--export_dir .* is read-only"):
            ft.check_writable_dir(str(locked / "exports"), "export_dir")
    finally:
        locked.chmod(stat.S_IRWXU)
    # caches never go into the data folder, writable or not: OUTPUT_DIR/data_cache
    assert ft.default_cache_dir(None, "o") == os.path.join("o", "data_cache")
    assert ft.default_cache_dir("c", "o") == "c"


def test_which_model_config_wins(tmp_path):
    out, pre = tmp_path / "out", tmp_path / "pretrained"
    out.mkdir()
    pre.mkdir()
    ckpt = str(pre / "xlnet_model.ckpt")
    (pre / "xlnet_config.json").write_text("{}")
    assert ft.resolve_model_config("m.json", str(out), True, ckpt) == ("m.json", "--model_config")
    assert ft.resolve_model_config(None, str(out), True, ckpt) == (None, "the size flags")
    assert ft.resolve_model_config(None, str(out), False, ckpt) == (
        str(pre / "xlnet_config.json"), "the folder of --init_checkpoint")
    (out / "xlnet_config.json").write_text("{}")
    assert ft.resolve_model_config(None, str(out), False, ckpt) == (
        str(out / "xlnet_config.json"), "--output_dir")
    assert ft.resolve_model_config(None, str(tmp_path / "none"), False, None) == (
        None, "the size flags' defaults")


def test_spiece_model_and_run_files(tmp_path):
    from xlnet_tf import XLNetConfig
    with pytest.raises(ValueError, match="--spiece_model is required"):
        ft.resolve_spiece_model(None, str(tmp_path))
    spm = tmp_path / "my.model"
    spm.write_bytes(b"\x00piece bytes")
    config = XLNetConfig(n_layer=1, d_model=8, n_head=2, d_head=4, d_inner=16, n_token=40)
    out = tmp_path / "out"
    ft.write_run_files(str(out), "run.json", {"a": 1}, config, str(spm))
    assert json.loads((out / "run.json").read_text()) == {"a": 1}
    assert (out / "spiece.model").read_bytes() == b"\x00piece bytes"
    assert XLNetConfig.from_json(str(out / "xlnet_config.json")).n_token == 40
    assert sorted(os.listdir(out)) == ["run.json", "spiece.model", "xlnet_config.json"]
    assert ft.resolve_spiece_model(None, str(out)) == str(out / "spiece.model")
    # a second run from the copied files: copying spiece.model onto itself is a no-op
    ft.write_run_files(str(out), "run.json", {"a": 2}, config, str(out / "spiece.model"))
    assert (out / "spiece.model").read_bytes() == b"\x00piece bytes"
    assert ft.read_run_config(str(out), "run.json", "x.py") == {"a": 2}
    with pytest.raises(FileNotFoundError, match="written by x.py"):
        ft.read_run_config(str(tmp_path), "run.json", "x.py")


def test_build_config_checks_the_vocabulary():
    size = dict(n_layer=1, d_model=8, n_head=2, d_head=4, d_inner=16, ff_activation="gelu",
                untie_r=True)
    config = ft.build_config(None, size, {"dropout": 0.0}, 50)
    assert (config.n_token, config.dropout) == (50, 0.0)
    assert ft.finetune_config(config.to_dict()).attn_type == "bi"


def test_format_results():
    assert ft.format_results({"accuracy": 0.5, "num_examples": 3, "step": 2},
                             skip=("step",)) == "accuracy 0.5000 | num_examples 3"
