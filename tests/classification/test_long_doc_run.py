"""run_classifier.py --long_doc=memory end to end on real IMDB reviews (a tiny model, a few
steps): its records and manifest, its predictions recomputed from the saved weights with the
backbone's full forward over the whole document (block-causal perm_mask), the exported
SavedModel on raw text against them, and the refusals of its flags."""
import contextlib
import importlib
import io
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from xlnet_tf import cli

SCRIPT = importlib.import_module("run_classifier")
FIXTURE_SPM = str(pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "spiece_test.model")
T, S = 16, 3
TINY = ["--n_layer=2", "--d_model=16", "--n_head=2", "--d_head=8", "--d_inner=32",
        f"--max_seq_length={T}", "--train_batch_size=4", "--eval_batch_size=8",
        "--learning_rate=1e-3", "--iterations=3", f"--spiece_model={FIXTURE_SPM}",
        "--dropout=0", "--dropatt=0"]


def run_cli(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.run(SCRIPT.define_flags, SCRIPT.main, args, prog="run_classifier.py")
    return code, out.getvalue(), err.getvalue()


def imdb_dir(shared_data, tmp_path, n=6):
    """n neg + n pos reviews of the IMDB train and test samples (real, mostly long texts)."""
    data = tmp_path / "imdb"
    data.mkdir()
    for src, dst in (("train_sample.tsv", "train.tsv"), ("test_sample.tsv", "dev.tsv")):
        lines = (shared_data / "imdb" / src).read_text(encoding="utf-8").splitlines()
        half = (len(lines) - 1) // 2
        rows = [lines[0]] + lines[1:1 + n] + lines[1 + half:1 + half + n]
        (data / dst).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return data


@pytest.fixture(scope="module")
def memory_run(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("longdoc")
    data = imdb_dir(shared_data, tmp)
    out = tmp / "out"
    code, stdout, err = run_cli([
        "--task=imdb", f"--data_dir={data}", f"--output_dir={out}", "--do_train",
        "--do_eval", "--do_predict", "--predict_split=dev", "--train_steps=3",
        "--long_doc=memory", f"--max_segments={S}", f"--export_dir={tmp / 'export'}", *TINY])
    assert code == 0, err
    return {"data": data, "out": out, "stdout": stdout, "export": tmp / "export"}


def test_records_manifest_and_config(memory_run):
    out = memory_run["out"]
    cache = out / "data_cache"
    names = sorted(p.name for p in cache.glob("*.tf_record"))
    assert names and all(f".len-{T}x{S}." in n for n in names)
    manifest = json.loads((cache / (names[0] + ".manifest.json")).read_text())
    assert manifest["settings"]["long_doc"] == {"mode": "memory", "max_segments": S}
    cfg = json.loads((out / "classifier_config.json").read_text())
    assert cfg["long_doc"] == {"mode": "memory", "max_segments": S, "mem_len": (S - 1) * T}
    assert f"truncated to {S * T} tokens" in memory_run["stdout"]


def block_causal(batch):
    block = np.arange(S * T) // T
    return tf.constant(np.broadcast_to((block[None] > block[:, None]).astype(np.float32),
                                       (batch, S * T, S * T)))


def test_predictions_equal_full_forward_over_the_document(memory_run):
    """The logits of predict_results.jsonl, recomputed from xlnet_model.ckpt with ONE forward
    over all S*T positions (block-causal attention), the head on its last T states."""
    from xlnet_tf.classification import XLNetClassifier, classifier_dataset
    from xlnet_tf.modeling.checkpoint import load_original_checkpoint
    from xlnet_tf.modeling.config import XLNetConfig
    out = memory_run["out"]
    cfg = json.loads((out / "classifier_config.json").read_text())
    model = XLNetClassifier(XLNetConfig.from_dict(cfg["xlnet_config"]), n_class=2,
                            task_name="imdb")                        # truncate mode: one pass
    load_original_checkpoint(model, str(out / "xlnet_model.ckpt"))
    record = next((out / "data_cache").glob("*.dev.eval.tf_record"))
    logits = []
    for batch in classifier_dataset(str(record), 8, False, T, max_segments=S):
        feats = {k: batch[k] for k in ("input_ids", "seg_ids", "input_mask")}
        hidden = model.transformer({**feats, "perm_mask": block_causal(len(batch["label"]))},
                                   training=False)["hidden"][:, -T:]
        summary = model.sequence_summary(hidden, feats["input_mask"][:, -T:])
        logits.append(model.logit(summary).numpy()[batch["is_real_example"].numpy() > 0])
    logits = np.concatenate(logits)
    rows = [json.loads(line) for line in (out / "predict_results.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    np.testing.assert_allclose(np.array([r["logits"] for r in rows]), logits, atol=1e-5)
    results = json.loads((out / "eval_results.json").read_text())
    assert results["num_examples"] == 12 and results["step"] == 3


def test_saved_model_reads_raw_text_with_memory(memory_run):
    """serving_default on the raw reviews gives the run's own predictions."""
    import csv
    version = sorted(p for p in memory_run["export"].iterdir() if p.name.isdigit())[-1]
    info = json.loads((version / "assets.extra" / "export_info.json").read_text())
    assert info["max_seq_length"] == S * T and info["segment_length"] == T
    loaded = tf.saved_model.load(str(version))
    with open(memory_run["data"] / "dev.tsv", encoding="utf-8") as f:
        texts = [r["sentence"] for r in csv.DictReader(f, delimiter="\t",
                                                          quoting=csv.QUOTE_NONE)]
    got = loaded.signatures["serving_default"](text_a=tf.constant(texts))["logits"].numpy()
    rows = [json.loads(line)
            for line in (memory_run["out"] / "predict_results.jsonl").read_text().splitlines()]
    np.testing.assert_allclose(got, np.array([r["logits"] for r in rows]), atol=1e-5)
    one = loaded.signatures["serving_default"](text_a=tf.constant(texts[:1]))["logits"].numpy()
    np.testing.assert_allclose(one, got[:1], atol=1e-5)


def test_flag_refusals_and_warning(memory_run, shared_data, tmp_path):
    base = ["--task=imdb", f"--data_dir={memory_run['data']}", "--do_eval", *TINY]
    code, _, err = run_cli(base + [f"--output_dir={tmp_path / 'a'}", "--long_doc=memory",
                                   "--max_segments=0"])
    assert code == 2 and "--max_segments must be >= 1, got 0" in err
    code, _, err = run_cli(base + [f"--output_dir={tmp_path / 'b'}", "--long_doc=memory",
                                   "--mem_len=0"])
    assert code == 2 and "--mem_len must be >= 1" in err
    code, _, err = run_cli(base + [f"--output_dir={tmp_path / 'c'}", "--max_segments=2"])
    assert code == 2 and "apply to --long_doc=memory only" in err
    code, _, err = run_cli([
        "--task=mrpc", f"--data_dir={shared_data / 'glue' / 'MRPC'}", "--do_eval", *TINY,
        f"--output_dir={tmp_path / 'd'}", "--long_doc=memory"])
    assert code == 2 and "--task=mrpc has a second text" in err
    assert not any((tmp_path / n).exists() and any((tmp_path / n).iterdir())
                   for n in "abcd")
    # a short memory trains and evaluates, with a warning naming the flags
    code, stdout, err = run_cli(base + [f"--output_dir={tmp_path / 'e'}", "--do_train",
                                        "--train_steps=1", "--long_doc=memory",
                                        f"--max_segments={S}", f"--mem_len={T}"])
    assert code == 0, err
    assert f"warning: --mem_len={T} < (--max_segments - 1) * --max_seq_length = {2 * T}" \
        in stdout + err


def test_records_and_output_dir_are_tied_to_the_mode(memory_run):
    from xlnet_tf.classification import classifier_dataset
    record = next((memory_run["out"] / "data_cache").glob("*.dev.eval.tf_record"))
    with pytest.raises(ValueError, match="written with long_doc=memory with max_segments=3, "
                                         "but long_doc=truncate was requested"):
        classifier_dataset(str(record), 8, False, T)
    # a truncate run is refused in the memory run's folder (task.json holds long_doc)
    before = (memory_run["out"] / "eval_results.json").read_text()
    code, _, err = run_cli(["--task=imdb", f"--data_dir={memory_run['data']}", "--do_eval",
                            f"--output_dir={memory_run['out']}", *TINY])
    assert code == 2 and "long_doc" in err, err
    assert (memory_run["out"] / "eval_results.json").read_text() == before
