"""Truncated or foreign files: a checkpoint's .index / .data given to the loaders and to
--init_checkpoint, Hugging Face weights, the variables inside an exported SavedModel, and a
SentencePiece model other than the one the checkpoint folder came with.  Every one is an
error naming the file (exit 2, one line, no traceback) and a refused run leaves its output
folder byte-for-byte unchanged."""
import importlib
import os
import shutil

import pytest
import tensorflow as tf

from failure_test_utils import (FIXTURE_SPM, assert_refused, guarded_folder, run_entry,
                                snapshot, tiny_classifier, truncate)
from xlnet_tf import finetuning
from xlnet_tf.modeling import checkpoint as ckpt_lib
from xlnet_tf.training import init_from_checkpoint

HF_TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "hf_tiny")
DATA = ".data-00000-of-00001"


@pytest.fixture(scope="module")
def model():
    return tiny_classifier()


@pytest.fixture()
def original_ckpt(model, tmp_path):
    """A good original-named checkpoint in its own folder (with the fixture spiece.model)."""
    folder = tmp_path / "pretrained"
    prefix = ckpt_lib.save_original_checkpoint(model, str(folder / "xlnet_model.ckpt"))
    shutil.copy(FIXTURE_SPM, folder / "spiece.model")
    return prefix


@pytest.mark.parametrize("damaged,keep", [(".index", 0.5), (DATA, 0.5), (".index", 0.0)])
def test_truncated_original_checkpoint_is_named(model, original_ckpt, damaged, keep):
    truncate(original_ckpt + damaged, keep)
    for load in (ckpt_lib.load_original_checkpoint, init_from_checkpoint):
        with pytest.raises(ValueError) as e:
            load(model, original_ckpt)
        assert repr(original_ckpt + damaged) in str(e.value) and "truncated" in str(e.value)


def test_foreign_file_as_index(model, tmp_path):
    (tmp_path / "x.index").write_bytes(b"this is no checkpoint\n" * 10)
    with pytest.raises(ValueError, match=r"x\.index'? is truncated or not a TensorFlow checkpoint"):
        ckpt_lib.load_original_checkpoint(model, str(tmp_path / "x"))


def test_truncated_training_checkpoint_as_init_checkpoint(model, tmp_path):
    prefix = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt-3"))
    truncate(prefix + DATA)
    with pytest.raises(ValueError) as e:
        init_from_checkpoint(model, prefix)
    assert repr(prefix + DATA) in str(e.value) and "truncated" in str(e.value)


def test_truncated_hugging_face_weights(tmp_path):
    folder = tmp_path / "hf"
    shutil.copytree(HF_TINY, folder)
    truncate(folder / "model.safetensors", 0.7)
    with pytest.raises(ValueError, match="model.safetensors' is truncated"):
        ckpt_lib.read_safetensors(str(folder / "model.safetensors"))
    truncate(folder / "model.safetensors", 0.0001)
    with pytest.raises(ValueError, match="model.safetensors' is truncated or not"):
        ckpt_lib.read_safetensors(str(folder / "model.safetensors"))


SCRIPTS = {name: importlib.import_module(name) for name in ("run_classifier", "run_squad")}


def _sst2(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.tsv").write_text("sentence\tlabel\n" + "".join(
        f"{'good' if i % 2 else 'bad'} film {i} .\t{i % 2}\n" for i in range(8)))
    return data


TINY_CLS = ["--task=sst-2", "--n_layer=1", "--d_model=16", "--n_head=2", "--d_head=8",
            "--d_inner=32", "--max_seq_length=16", "--train_batch_size=4", "--iterations=1",
            "--do_train", "--train_steps=1"]


def test_run_classifier_truncated_init_checkpoint(original_ckpt, tmp_path):
    truncate(original_ckpt + DATA)
    out, before = guarded_folder(tmp_path / "out")
    result = run_entry(SCRIPTS["run_classifier"].define_flags, SCRIPTS["run_classifier"].main,
                       TINY_CLS + [f"--data_dir={_sst2(tmp_path)}", f"--output_dir={out}",
                                   f"--init_checkpoint={original_ckpt}",
                                   f"--spiece_model={FIXTURE_SPM}"], "run_classifier.py")
    assert_refused(result, "--init_checkpoint", original_ckpt + DATA, "truncated")
    assert snapshot(out) == before


# ---------------------------------------------------------------- another vocabulary
def other_vocabulary(path, swap=(100, 101)):
    """The fixture's SentencePiece model with two pieces swapped: same size, other ids."""
    from sentencepiece import sentencepiece_model_pb2
    proto = sentencepiece_model_pb2.ModelProto()
    with open(FIXTURE_SPM, "rb") as f:
        proto.ParseFromString(f.read())
    a, b = (proto.pieces[i] for i in swap)
    a.piece, b.piece = b.piece, a.piece
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return str(path)


def test_check_spiece_matches_checkpoint(original_ckpt, tmp_path):
    theirs = os.path.join(os.path.dirname(original_ckpt), "spiece.model")
    finetuning.check_spiece_matches_checkpoint(FIXTURE_SPM, original_ckpt)    # same pieces
    finetuning.check_spiece_matches_checkpoint(theirs, os.path.dirname(original_ckpt))
    other = other_vocabulary(tmp_path / "other.model")
    with pytest.raises(ValueError) as e:
        finetuning.check_spiece_matches_checkpoint(other, original_ckpt)
    msg = str(e.value)
    assert repr(other) in msg and repr(theirs) in msg and "same size (2000 pieces)" in msg
    assert "id 100" in msg
    os.remove(theirs)           # no spiece.model beside the checkpoint: nothing to compare
    finetuning.check_spiece_matches_checkpoint(other, original_ckpt)


@pytest.mark.parametrize("script", ["run_classifier", "run_squad"])
def test_finetuning_refuses_another_vocabulary(script, original_ckpt, tmp_path):
    other = other_vocabulary(tmp_path / "other.model")
    out, before = guarded_folder(tmp_path / "out")
    if script == "run_classifier":
        argv = TINY_CLS + [f"--data_dir={_sst2(tmp_path)}"]
    else:
        train = tmp_path / "train.json"
        train.write_text('{"version": "v2.0", "data": []}')
        argv = ["--do_train", f"--train_file={train}", "--n_layer=1", "--d_model=16",
                "--n_head=2", "--d_head=8", "--d_inner=32", "--max_seq_length=64", "--max_query_length=16",
                "--train_batch_size=4", "--iterations=1", "--train_steps=1"]
    result = run_entry(SCRIPTS[script].define_flags, SCRIPTS[script].main,
                       argv + [f"--output_dir={out}", f"--init_checkpoint={original_ckpt}",
                               f"--spiece_model={other}"], f"{script}.py")
    assert_refused(result, "--spiece_model", other,
                   os.path.join(os.path.dirname(original_ckpt), "spiece.model"))
    assert snapshot(out) == before


def test_run_pretrain_refuses_another_vocabulary(original_ckpt, tmp_path):
    """run_pretrain.py --init_checkpoint with records built from another vocabulary."""
    import run_pretrain

    from xlnet_tf.pretraining import records
    other = other_vocabulary(tmp_path / "other.model")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"line {i} of a small corpus about films .\n\n"[: 60]
                              for i in range(200)))
    save_dir = tmp_path / "records"
    code, _, err = run_entry(records.define_flags, records.main, [
        f"--input_glob={corpus}", f"--save_dir={save_dir}", f"--spiece_model={other}",
        "--seq_len=32", "--reuse_len=16", "--num_predict=5", "--bsz_per_host=4",
        "--num_core_per_host=1", "--nobi_data"],
        "records")
    assert code == 0, err[-2000:]
    model_dir, before = guarded_folder(tmp_path / "model_dir")
    result = run_entry(run_pretrain.define_flags, run_pretrain.main, [
        f"--record_dir={save_dir}", f"--model_dir={model_dir}",
        f"--init_checkpoint={original_ckpt}", "--n_layer=1", "--d_model=16", "--n_head=2",
        "--d_head=8", "--d_inner=32", "--seq_len=32", "--reuse_len=16", "--perm_size=16",
        "--num_predict=5", "--train_batch_size=4", "--train_steps=1", "--warmup_steps=0",
        "--nobi_data"],
        "run_pretrain.py")
    assert_refused(result, other, os.path.join(os.path.dirname(original_ckpt), "spiece.model"))
    assert snapshot(model_dir) == before


# ---------------------------------------------------------------- exported SavedModel
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from xlnet_tf.classification import export_classifier
    return export_classifier(tiny_classifier(), str(tmp_path_factory.mktemp("exp") / "export"),
                             FIXTURE_SPM, max_seq_length=16, label_list=["0", "1"])


@pytest.mark.parametrize("damaged", ["variables/variables" + DATA, "variables/variables.index",
                                     "saved_model.pb"])
def test_damaged_saved_model_is_named(exported, damaged, tmp_path):
    from xlnet_tf.serving import __main__ as serving_cli
    from xlnet_tf.serving import load_saved_model
    version = tmp_path / "export" / "1"
    shutil.copytree(exported, version)
    bad = str(version / damaged)
    truncate(bad, 0.3)
    with pytest.raises(ValueError) as e:
        load_saved_model(str(version))
    assert repr(bad) in str(e.value) and "truncated" in str(e.value)
    before = snapshot(tmp_path)
    for command in ("run", "predict") if damaged != "saved_model.pb" else ("show", "run"):
        argv = serving_cli.command_argv([command, f"--dir={version}", "--tag_set=serve",
                                         "--signature_def=serving_default",
                                         "--input_exprs=text_a=['a film']",
                                         '--request={"instances": [{"text_a": "a film"}]}'])
        result = run_entry(serving_cli.define_flags, serving_cli.main, argv,
                           "python -m xlnet_tf.serving")
        assert_refused(result, bad, "truncated")
    assert snapshot(tmp_path) == before
