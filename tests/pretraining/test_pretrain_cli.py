"""The command lines of pretraining in process (``cli.run``): run_pretrain.py's checks that
need no TensorFlow work, and ``python -m xlnet_tf.pretraining.records``'s usage errors."""
import gzip
import importlib
import os

import pytest

from pretrain_test_utils import FIXTURE_MODEL, write_corpus
from xlnet_tf import cli
from xlnet_tf.pretraining import records


def run_pretrain(argv, capsys):
    script = importlib.import_module("run_pretrain")
    code = cli.run(script.define_flags, script.main, argv, prog="run_pretrain.py")
    return code, capsys.readouterr()


def test_run_pretrain_contradicting_flags_are_one_line_errors(tmp_path, capsys):
    out = tmp_path / "m"
    for argv, message in [
        (["--seq_len=32", "--reuse_len=40"], "--reuse_len=40 is larger than --seq_len=32"),
        (["--seq_len=64", "--reuse_len=32", "--perm_size=24"],
         "--perm_size=24 must divide --reuse_len=32 and --seq_len - --reuse_len=32"),
        (["--record_dir=r", "--input_text=t.txt"],
         "give either --record_dir or --input_text, not both"),
        (["--n_layer=many"], "--n_layer"),
    ]:
        code, io = run_pretrain(argv + [f"--model_dir={out}"], capsys)
        assert code == 2, (argv, io.err)
        lines = io.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("run_pretrain.py: error: "), io.err
        assert message in lines[0]
        assert not out.exists()


def test_run_pretrain_help_lists_its_flags(capsys):
    code, io = run_pretrain(["--help"], capsys)
    assert code == 0
    for flag in ("--train_batch_size:", "--perm_size:", "--strategy:", "--[no]recompute:",
                 "--max_save:"):
        assert flag in io.out, flag
    assert "runs/pretrain_demo" in io.out             # the defaults are the script's


def test_records_command_usage_errors(tmp_path, capsys):
    code = cli.run(records.define_flags, records.main, ["--save_dir=x"], prog="records")
    err = capsys.readouterr().err
    assert code == 2 and "records: error:" in err and "input_glob" in err

    write_corpus(tmp_path / "c", num_files=1, docs_per_file=6)
    argv = [f"--input_glob={tmp_path / 'c' / '*.txt'}", f"--save_dir={tmp_path / 'out'}",
            f"--spiece_model={FIXTURE_MODEL}", "--seq_len=32", "--reuse_len=16",
            "--num_predict=6", "--bsz_per_host=4", "--num_core_per_host=1", "--num_workers=1"]
    assert cli.run(records.define_flags, records.main, argv, prog="records") == 0
    first = (tmp_path / "out" / "train-0-0.tfrecord").read_bytes()
    capsys.readouterr()
    # the same task again: refused in one line, the records are left as they were
    assert cli.run(records.define_flags, records.main, argv, prog="records") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pass --overwrite" in err[0]
    assert (tmp_path / "out" / "train-0-0.tfrecord").read_bytes() == first
    code = cli.run(records.define_flags, records.main, argv + ["--seq_len=4"], prog="records")
    assert code == 2 and "--seq_len must be an integer >= 5" in capsys.readouterr().err


def test_printed_fine_tuning_command_parses_with_run_classifier_flags(tmp_path):
    """What run_pretrain.py prints is a valid run_classifier.py command line: the small-model
    flagfile (it exists), the model's files by absolute path, --uncased for an uncased
    vocabulary, and only the data folder left to the user."""
    import shlex

    from xlnet_tf.modeling.config import XLNetConfig
    from xlnet_tf.pretraining.run import DEMO_FINETUNE_FLAGS, finetune_command

    classifier = importlib.import_module("run_classifier")
    small = XLNetConfig(n_token=2000, n_layer=3, d_model=128, n_head=4, d_head=32, d_inner=512)
    cmd = finetune_command(tmp_path / "demo", small, uncased=True, data_dir=str(tmp_path))
    args = shlex.split(cmd)
    assert args[:2] == ["python", "run_classifier.py"] and "../shared" not in cmd
    F = cli.parse(classifier.define_flags, args[2:], "run_classifier.py")
    assert f"--flagfile={DEMO_FINETUNE_FLAGS}" in args
    assert F.task == "sst-2" and F.do_train and F.do_eval and F.uncased
    assert F.learning_rate == 5e-4 and F.max_seq_length == 64 and F.train_batch_size == 32
    assert F.init_checkpoint == str(tmp_path / "demo" / "xlnet_model.ckpt")
    assert F.model_config == str(tmp_path / "demo" / "xlnet_config.json")
    assert F.spiece_model == str(tmp_path / "demo" / "spiece.model")
    # a large model keeps the original's defaults; a cased vocabulary has no --uncased
    big = XLNetConfig(n_token=32000, n_layer=12, d_model=768, n_head=12, d_head=64,
                      d_inner=3072)
    F = cli.parse(classifier.define_flags,
                  shlex.split(finetune_command(tmp_path / "b", big, uncased=False))[2:],
                  "run_classifier.py")
    assert F.task == "sst-2" and not F.uncased and F.learning_rate == 1e-5


def _tree(folder):
    """{relative path: (bytes, mtime_ns)} of every file under ``folder``."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = (f.read(), os.stat(path).st_mtime_ns)
    return out


@pytest.mark.parametrize("kind,needle", [
    ("utf16", "is UTF-16 LE text (it starts with the UTF-16 LE byte-order mark FF FE)"),
    ("gzip", "is gzip-compressed (it starts with the gzip magic bytes 1F 8B)")])
def test_records_command_names_utf16_and_gzip_input(tmp_path, capsys, kind, needle):
    """A UTF-16 or gzip file among the --input_glob files: one line naming it and what it is,
    exit 2, before anything is written (an existing save_dir is left as it was)."""
    write_corpus(tmp_path / "c", num_files=1, docs_per_file=6)
    text = "A sentence.\nAnother one.\n"
    bad = tmp_path / "c" / "zz-bad.txt"
    bad.write_bytes(text.encode("utf-16") if kind == "utf16" else gzip.compress(text.encode()))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    before = _tree(out)
    argv = [f"--input_glob={tmp_path / 'c' / '*.txt'}", f"--save_dir={out}",
            f"--spiece_model={FIXTURE_MODEL}", "--seq_len=32", "--reuse_len=16",
            "--num_predict=6", "--bsz_per_host=4", "--num_core_per_host=1", "--num_workers=1"]
    code = cli.run(records.define_flags, records.main, argv, prog="records")
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert needle in err and str(bad) in err and "--input_glob" in err
    assert _tree(out) == before
