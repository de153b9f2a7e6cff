"""run_classifier.py end to end on the real GLUE files (short runs of a tiny model), the
numbers it reports recomputed independently from its prediction files, the original-named
checkpoint it writes, and its refusals of bad input (nothing in output_dir touched).

The script's ``main`` runs in this process (``cli.run``: flags parsed on a fresh FlagValues per
call) to keep the module fast; the fresh-process check of the exported SavedModel lives in
tests/serving/test_export.py.
"""
import contextlib
import csv
import gzip
import importlib
import io
import json
import math
import os
import pathlib

import numpy as np
import pytest

from xlnet_tf import cli
from xlnet_tf.io import sha256_file
from refusal_utils import snapshot

SCRIPT = importlib.import_module("run_classifier")


FIXTURE_SPM = str(pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "spiece_test.model")
TINY = ["--n_layer=1", "--d_model=16", "--n_head=2", "--d_head=8", "--d_inner=32",
        "--max_seq_length=32", "--train_batch_size=8", "--eval_batch_size=64",
        "--learning_rate=1e-3", "--iterations=3", f"--spiece_model={FIXTURE_SPM}"]


def run_cli(args):
    """Run run_classifier.py's main in this process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.run(SCRIPT.define_flags, SCRIPT.main, args, prog="run_classifier.py")
    return code, out.getvalue(), err.getvalue()


def read_tsv(path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def predictions(out_dir):
    rows = read_tsv(os.path.join(out_dir, "predictions.tsv"))
    assert rows[0] == ["index", "prediction"]
    assert [int(r[0]) for r in rows[1:]] == list(range(len(rows) - 1))
    return [r[1] for r in rows[1:]]


def jsonl(out_dir):
    with open(os.path.join(out_dir, "predict_results.jsonl")) as f:
        return [json.loads(line) for line in f]


def mean_xent(rows, label_ids):
    z = np.array([r["logits"] for r in rows], np.float64)
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -np.mean(logp[np.arange(len(label_ids)), label_ids])


# ---------------------------------------------------------------------------- flags
@pytest.mark.parametrize("args,needle", [
    (["--task=sst-2", "--data_dir=x"], "nothing to do"),
    (["--task=sst-2", "--data_dir=x", "--do_train", "--train_steps=5",
      "--num_train_epochs=1"], "either --train_steps or --num_train_epochs"),
    (["--task=sst-2", "--data_dir=x", "--do_train", "--keep_best"], "--keep_best needs"),
    (["--task=sst-2", "--data_dir=x", "--do_eval", "--eval_every=5"], "needs --do_train"),
    (["--task=sst-2", "--data_dir=x", "--do_eval", "--max_seq_length=2"], "too small"),
    (["--task=sst-2", "--data_dir=x", "--do_eval", "--export_dir=/proc/none/export"],
     "--export_dir '/proc/none/export' cannot be written ('/proc' is read-only)"),
    (["--task=sst-2", "--data_dir=x", "--do_train", "--lr_layer_decay_rate=0"],
     "--lr_layer_decay_rate must be in (0, 1]"),
])
def test_flag_errors(tmp_path, args, needle):
    code, _, err = run_cli([f"--output_dir={tmp_path / 'out'}", *args])
    assert code == 2 and needle in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def mrpc_run(shared_data, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("mrpc") / "out")
    code, stdout, err = run_cli([
        "--task=mrpc", f"--data_dir={shared_data / 'glue' / 'MRPC'}", f"--output_dir={out}",
        "--do_train", "--do_eval", "--do_predict", "--predict_split=dev", "--train_steps=6",
        *TINY])
    assert code == 0, err
    return out, stdout


def test_mrpc_reports_accuracy_and_f1_recomputed_from_predictions(mrpc_run, shared_data):
    out, _ = mrpc_run
    with open(os.path.join(out, "eval_results.json")) as f:
        results = json.load(f)
    assert set(results) == {"accuracy", "f1", "loss", "step", "num_examples"}
    assert results["step"] == 6 and results["num_examples"] == 408
    dev = read_tsv(shared_data / "glue" / "MRPC" / "dev.tsv")[1:]
    gold = [row[0] for row in dev]
    pred = predictions(out)
    assert len(pred) == 408
    acc = np.mean([p == g for p, g in zip(pred, gold)])
    tp = sum(p == g == "1" for p, g in zip(pred, gold))
    fp = sum(p == "1" and g == "0" for p, g in zip(pred, gold))
    fn = sum(p == "0" and g == "1" for p, g in zip(pred, gold))
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    assert results["accuracy"] == pytest.approx(acc, abs=1e-12)
    assert results["f1"] == pytest.approx(f1, abs=1e-12)
    rows = jsonl(out)
    assert results["loss"] == pytest.approx(mean_xent(rows, [int(g) for g in gold]), rel=1e-5)
    for r in rows[:5]:
        np.testing.assert_allclose(sum(r["probabilities"]), 1.0, rtol=1e-6)
    # files a finished run leaves
    for name in ("task.json", "classifier_config.json", "xlnet_config.json", "spiece.model",
                 "xlnet_model.ckpt.index", "checkpoint"):
        assert os.path.exists(os.path.join(out, name)), name
    assert os.listdir(os.path.join(out, "train")) and os.listdir(os.path.join(out, "eval"))


def test_eval_from_an_original_named_checkpoint_gives_the_same_results(mrpc_run, shared_data,
                                                                       tmp_path):
    """The final weights are also written under the original TF1 names (heads
    model/sequnece_summary/..., model/classification_mrpc/...); evaluating from that file in a
    new output_dir reproduces the run's numbers."""
    out, _ = mrpc_run
    import tensorflow as tf
    names = dict(tf.train.list_variables(os.path.join(out, "xlnet_model.ckpt")))
    assert {"model/sequnece_summary/summary/kernel", "model/classification_mrpc/logit/kernel",
            "model/classification_mrpc/logit/bias"} <= set(names)
    new = str(tmp_path / "eval_only")
    code, stdout, err = run_cli([
        "--task=mrpc", f"--data_dir={shared_data / 'glue' / 'MRPC'}", f"--output_dir={new}",
        "--do_eval", f"--init_checkpoint={os.path.join(out, 'xlnet_model.ckpt')}", *TINY])
    assert code == 0, err
    with open(os.path.join(out, "eval_results.json")) as f:
        want = json.load(f)
    with open(os.path.join(new, "eval_results.json")) as f:
        got = json.load(f)
    assert got["accuracy"] == want["accuracy"] and got["f1"] == want["f1"]
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-6)
    assert got["step"] == 6          # the global_step stored in the original-named checkpoint


def test_refuses_output_dir_of_another_model(mrpc_run, shared_data):
    out, _ = mrpc_run
    before = snapshot(out)
    code, _, err = run_cli(["--task=rte", f"--data_dir={shared_data / 'glue' / 'RTE'}",
                            f"--output_dir={out}", "--do_train", "--train_steps=2", *TINY])
    assert code == 2 and "different model" in err and "task_name" in err
    assert snapshot(out) == before


def test_stsb_regression_reports_pearson_and_spearman(shared_data, tmp_path):
    out = str(tmp_path / "out")
    code, _, err = run_cli([
        "--task=sts-b", f"--data_dir={shared_data / 'glue' / 'STS-B'}", f"--output_dir={out}",
        "--do_train", "--do_eval", "--do_predict", "--predict_split=dev", "--train_steps=3",
        "--train_file=train_part2_noheader.tsv", *TINY])
    assert code == 0, err
    with open(os.path.join(out, "eval_results.json")) as f:
        results = json.load(f)
    assert set(results) == {"pearson", "spearman", "loss", "step", "num_examples"}
    assert results["num_examples"] == 1500
    gold = np.array([float(r[9]) for r in read_tsv(shared_data / "glue" / "STS-B" /
                                                    "dev.tsv")[1:]])
    scores = np.array([float(p) for p in predictions(out)])
    exact = np.array([r["prediction"] for r in jsonl(out)])
    np.testing.assert_allclose(scores, exact, atol=5e-7)
    from scipy import stats
    assert results["pearson"] == pytest.approx(stats.pearsonr(exact, gold)[0], abs=1e-6)
    assert results["spearman"] == pytest.approx(stats.spearmanr(exact, gold)[0], abs=1e-6)
    assert results["loss"] == pytest.approx(np.mean((exact - gold) ** 2), rel=1e-5)
    names = json.load(open(os.path.join(out, "classifier_config.json")))
    assert names["is_regression"] and names["label_list"] is None and names["pair"]


def test_sst2_keep_best_and_long_texts(shared_data, tmp_path):
    """SST-2 (real train part + dev): --eval_every/--keep_best keep the best evaluation, the
    final eval/predict use it; a text far longer than max_seq_length is truncated."""
    data = tmp_path / "sst2"
    data.mkdir()
    src = shared_data / "glue" / "SST-2"
    for name in ("train_part2.tsv", "dev.tsv"):
        (data / name).symlink_to(src / name)
    long_text = " ".join(["an astonishingly long and winding sentence"] * 200)
    (data / "test.tsv").write_text(f"index\tsentence\n0\t{long_text}\n1\tfine .\n")
    out = str(tmp_path / "out")
    code, stdout, err = run_cli([
        "--task=sst-2", f"--data_dir={data}", f"--output_dir={out}", "--do_train", "--do_eval",
        "--do_predict", "--train_steps=9", "--eval_every=3", "--keep_best",
        "--train_file=train_part2.tsv", *TINY])
    assert code == 0, err
    assert "1 truncated to 32 tokens" in stdout           # the long test text
    evals = [line for line in stdout.splitlines() if line.startswith("eval at step")]
    assert [line.split()[3] for line in evals] == ["3", "6", "9"]
    accs = [float(line.split("accuracy ")[1].split()[0]) for line in evals]
    best = json.load(open(os.path.join(out, "best", "eval_results.json")))
    final = json.load(open(os.path.join(out, "eval_results.json")))
    assert best["accuracy"] == pytest.approx(max(accs), abs=5e-5)
    assert final["step"] == best["step"] == 3 * (1 + accs.index(max(accs)))
    assert final["accuracy"] == best["accuracy"]
    assert set(final) == {"accuracy", "loss", "step", "num_examples"}
    assert len(predictions(out)) == 2
    # the final metrics as a small table: a title line, then one aligned row per metric
    lines = stdout.splitlines()
    at = lines.index(f"final eval at step {final['step']} (dev):")
    rows = dict(line.split() for line in lines[at + 1:at + 4])
    assert rows == {"accuracy": f"{final['accuracy']:.4f}", "loss": f"{final['loss']:.4f}",
                    "num_examples": str(final["num_examples"])}


# ---------------------------------------------------------------------------- bad input
def _sst2_dir(tmp_path, train, dev="sentence\tlabel\ngood .\t1\nbad .\t0\n"):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "train.tsv").write_text(train)
    (data / "dev.tsv").write_text(dev)
    return data


def _guarded_out(tmp_path):
    """An output_dir holding results of an earlier run, which a failing run must not touch."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "eval_results.json").write_text('{"accuracy": 0.9}')
    (out / "predictions.tsv").write_text("index\tprediction\n0\t1\n")
    return out, snapshot(out)


@pytest.mark.parametrize("train,needle", [
    ("sentence\tlabel\ngood .\t1\nmeh .\t2\n", "line 3: label '2' is not in the label list"),
    ("", "is empty"),
    ("sentence\tlabel\ngood .\t1\nbad\t.\t0\n", "line 3: expected 2 tab-separated fields"),
])
def test_bad_training_files_are_named(tmp_path, train, needle):
    data = _sst2_dir(tmp_path, train)
    out, before = _guarded_out(tmp_path)
    code, _, err = run_cli(["--task=sst-2", f"--data_dir={data}", f"--output_dir={out}",
                            "--do_train", "--do_eval", "--train_steps=2", *TINY])
    assert code == 2
    assert needle in err and str(data / "train.tsv") in err
    assert snapshot(out) == before


@pytest.mark.parametrize("kind,needle", [("utf16", "is UTF-16 LE text"),
                                         ("gzip", "is gzip-compressed")])
def test_utf16_and_gzip_data_files_are_named(tmp_path, kind, needle):
    data = _sst2_dir(tmp_path, "")
    text = "sentence\tlabel\ngood .\t1\nbad .\t0\n"
    (data / "train.tsv").write_bytes(text.encode("utf-16") if kind == "utf16"
                                     else gzip.compress(text.encode()))
    out, before = _guarded_out(tmp_path)
    code, _, err = run_cli(["--task=sst-2", f"--data_dir={data}", f"--output_dir={out}",
                            "--do_train", "--train_steps=2", *TINY])
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert needle in err and str(data / "train.tsv") in err
    assert snapshot(out) == before


def test_generic_task_missing_column(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("review,stars\ngreat,5\nawful,1\n")
    (data / "dev.csv").write_text("review,stars\nok,3\n")
    out, before = _guarded_out(tmp_path)
    code, _, err = run_cli(["--task=generic", f"--data_dir={data}", f"--output_dir={out}",
                            "--text_a_column=text", "--label_column=stars",
                            "--label_list=1,2,3,4,5", "--do_train", "--train_steps=2", *TINY])
    assert code == 2
    assert "column 'text' (text_a_column) is not in the header" in err
    assert str(data / "train.csv") in err
    assert snapshot(out) == before


def test_init_checkpoint_of_another_size(tmp_path):
    from xlnet_tf.modeling import checkpoint as ckpt_lib
    from xlnet_tf.classification.model import XLNetClassifier
    from xlnet_tf.modeling.config import XLNetConfig
    big = XLNetClassifier(XLNetConfig(n_layer=1, d_model=24, n_head=2, d_head=12, d_inner=32,
                                      n_token=2000), task_name="sst-2")
    prefix = ckpt_lib.save_original_checkpoint(big, str(tmp_path / "big" / "xlnet_model.ckpt"))
    data = _sst2_dir(tmp_path, "sentence\tlabel\ngood .\t1\nbad .\t0\n")
    out, before = _guarded_out(tmp_path)
    code, _, err = run_cli(["--task=sst-2", f"--data_dir={data}", f"--output_dir={out}",
                            "--do_train", "--do_eval", "--train_steps=2",
                            f"--init_checkpoint={prefix}", *TINY])
    assert code == 2
    assert "does not fit the model" in err and "[2000, 24] in the checkpoint but [2000, 16]" in err
    assert snapshot(out) == before
    assert sorted(os.listdir(data)) == ["dev.tsv", "train.tsv"]   # no records built either


def test_eval_without_weights_is_refused(tmp_path):
    data = _sst2_dir(tmp_path, "sentence\tlabel\ngood .\t1\n")
    out, before = _guarded_out(tmp_path)
    code, _, err = run_cli(["--task=sst-2", f"--data_dir={data}", f"--output_dir={out}",
                            "--do_eval", *TINY])
    assert code == 2 and "nothing to evaluate" in err
    assert snapshot(out) == before


def test_num_train_epochs_sets_steps(tmp_path):
    rows = "".join(f"text number {i} .\t{i % 2}\n" for i in range(20))
    data = _sst2_dir(tmp_path, "sentence\tlabel\n" + rows)
    data_before = snapshot(data)
    out = tmp_path / "out"
    code, stdout, err = run_cli(["--task=sst-2", f"--data_dir={data}", f"--output_dir={out}",
                                 "--do_train", "--num_train_epochs=1.5", *TINY])
    assert code == 0, err
    # without --cache_dir the records go to OUTPUT_DIR/data_cache, never beside the data
    assert snapshot(data) == data_before
    assert [n for n in os.listdir(out / "data_cache") if n.endswith(".tf_record")] == [
        f"sst-2.sp-{sha256_file(FIXTURE_SPM)[:12]}.len-32.train.tf_record"]
    assert f"-> {math.ceil(20 * 1.5 / 8)} steps" in stdout
    assert "step 4/4" in stdout


def test_predict_text_prints_label_names_and_the_probabilities_of_do_predict(mrpc_run,
                                                                             shared_data):
    """--predict_text on a finished folder: the same probabilities as --do_predict gave for
    those dev pairs, with MRPC's label names; nothing written."""
    out, _ = mrpc_run
    dev = read_tsv(shared_data / "glue" / "MRPC" / "dev.tsv")[1:4]
    before = sorted(os.listdir(out))
    args = [f"--output_dir={out}"] + [f"--predict_text={r[3]} ||| {r[4]}" for r in dev]
    code, stdout, err = run_cli(args)
    assert code == 0, err
    assert sorted(os.listdir(out)) == before
    rows = jsonl(out)[:3]
    table = [line for line in stdout.splitlines() if line.startswith(("0 ", "1 "))]
    assert len(table) == 3, stdout
    names = {"0": "not_equivalent", "1": "equivalent"}
    for line, row, pair in zip(table, rows, dev):
        probs = np.array(row["probabilities"])
        label = str(int(probs.argmax()))
        assert line.split()[:3] == [label, names[label], f"{probs.max():.4f}"], line
        assert line.endswith(f"{pair[3]} ||| {pair[4]}")
    from xlnet_tf.classification.run import ClassifierRun, predict_texts
    got = predict_texts(ClassifierRun(output_dir=out), [f"{r[3]} ||| {r[4]}" for r in dev],
                        say=lambda _: None)
    for g, row in zip(got, rows):
        np.testing.assert_allclose([g["probabilities"][n] for n in names.values()],
                                   row["probabilities"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("extra,needle", [
    (["--predict_text=only one text"], "takes a pair of texts; separate them with ' ||| '"),
    (["--predict_text=a ||| b", "--do_eval"], "--predict_text predicts from a finished "
     "--output_dir; run --do_eval separately"),
])
def test_predict_text_errors(mrpc_run, extra, needle):
    out, _ = mrpc_run
    code, _, err = run_cli([f"--output_dir={out}", *extra])
    assert code == 2 and needle in err, err
    code, _, err = run_cli(["--output_dir=/nonexistent/run", "--predict_text=x"])
    assert code == 2 and "does not exist: fine-tune first" in err
