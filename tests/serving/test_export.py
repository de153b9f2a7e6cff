"""The exported SavedModel: raw text in a fresh process (tensorflow_text imported first) gives
the probabilities run_classifier.py --do_predict wrote; batch 1 and 7; empty strings; the
TF1-session loader TF Serving uses (saved_model_cli run); both signatures with the predict
method; the SentencePiece asset; version folders; the TF Serving REST emulation in the
``instances`` and ``inputs`` formats."""
import base64
import importlib
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from xlnet_tf import cli
from xlnet_tf.classification import XLNetClassifier, export_classifier, get_task, pack_ids
from xlnet_tf.modeling import checkpoint as ckpt_lib
from xlnet_tf.modeling.config import XLNetConfig
from xlnet_tf.serving import check_export_dir, rest_predict
from xlnet_tf.tokenization.text import clean_text_tf
from xlnet_tf.tokenization.tokenizer import Tokenizer

SCRIPT = importlib.import_module("run_classifier")

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURE_SPM = str(REPO / "tests" / "fixtures" / "spiece_test.model")
T = 24

# Sentences for the round trip: whitespace runs, LaTeX quotes, accents, digits with commas,
# upper case (the run is --uncased), a text far longer than T, and an empty string.
SENTENCES = [
    "it 's a charming and often affecting journey . ",
    "  Unflinchingly   bleak\u00a0\u3000and desperate  ",
    "``A CAFÉ-naïve'' film, made for $1,000,000, in 2,019 frames",
    " ".join(["the plot keeps going and going"] * 30),
    "",
    "ﬁne ＦＵＬＬ-width text",
    "a bore .",
]


def run_cli(args):
    """Run run_classifier.py's main in this process; returns the exit code."""
    return cli.run(SCRIPT.define_flags, SCRIPT.main, args, prog="run_classifier.py")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short run_classifier.py fine-tuning (single-text task, uncased) with --do_predict on
    SENTENCES and --export_dir."""
    root = tmp_path_factory.mktemp("export")
    data = root / "data"
    data.mkdir()
    train = ["sentence\tlabel"] + [f"good movie number {i} .\t1" if i % 2 else
                                   f"bad film number {i} .\t0" for i in range(24)]
    (data / "train.tsv").write_text("\n".join(train) + "\n")
    (data / "test.tsv").write_text("index\tsentence\n" + "".join(
        f"{i}\t{s}\n" for i, s in enumerate(SENTENCES)))
    # start from large random weights, so that every sentence gets a clearly different
    # probability and a 1e-5 agreement means the same ids went through the same model
    init = XLNetClassifier(XLNetConfig(n_layer=1, d_model=16, n_head=2, d_head=8, d_inner=32,
                                       n_token=2000), n_class=2, task_name="sst-2")
    rng = np.random.default_rng(0)
    for v in init.weights:
        v.assign(rng.normal(0, 0.3, v.shape).astype(np.float32))
    prefix = ckpt_lib.save_original_checkpoint(init, str(root / "init" / "xlnet_model.ckpt"))
    out, exp = root / "out", root / "exported"
    code = run_cli(["--task=sst-2", f"--data_dir={data}", f"--output_dir={out}", "--do_train",
                    "--do_predict", "--train_steps=2", "--iterations=2", "--uncased",
                    "--n_layer=1", "--d_model=16", "--n_head=2", "--d_head=8", "--d_inner=32",
                    f"--max_seq_length={T}", "--train_batch_size=8", "--eval_batch_size=8",
                    "--learning_rate=1e-3", "--dropout=0", "--dropatt=0",
                    f"--init_checkpoint={prefix}", f"--spiece_model={FIXTURE_SPM}",
                    f"--export_dir={exp}"])
    assert code == 0
    with open(out / "predict_results.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == len(SENTENCES)
    probs = np.array([r["probabilities"] for r in rows])
    # the answers spread over far more than the 1e-5 tolerance of the checks below
    assert np.ptp(probs[:, 1]) > 0.03, probs
    return {"out": out, "export_dir": exp, "version_dir": str(exp / "1"), "rows": rows}


def _expected_probs(trained):
    return np.array([r["probabilities"] for r in trained["rows"]])


FRESH_PROCESS = r"""
import json, sys
import tensorflow_text  # registers the tensorflow-text ops before the graph is loaded
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
fn = loaded.signatures["serving_default"]
texts = json.loads(sys.argv[2])
batch = fn(text_a=tf.constant(texts))
singles = [fn(text_a=tf.constant([t])) for t in texts]
print(json.dumps({
    "batch_probs": batch["probabilities"].numpy().tolist(),
    "batch_labels": [x.decode() for x in batch["label"].numpy()],
    "single_probs": [s["probabilities"].numpy()[0].tolist() for s in singles],
    "single_shapes": [list(s["logits"].shape) for s in singles],
    "asset": open(loaded.spiece_model.asset_path.numpy().decode(), "rb").read().hex()[:64],
}))
"""


def _py(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(REPO), env=env, **kw)


def test_fresh_process_and_saved_model_cli_match_do_predict(trained, tmp_path):
    """Fresh processes at once: tf.saved_model.load (batch 7 and 1), saved_model_cli show
    --all, saved_model_cli run of both signatures (the TF1 session loader TF Serving uses)."""
    d = trained["version_dir"]
    load = _py(["-c", FRESH_PROCESS, d, json.dumps(SENTENCES)])
    show = _py(["-m", "xlnet_tf.serving", "show", "--dir", d, "--all"])
    outdir = tmp_path / "cli_out"
    exprs = "text_a=" + json.dumps(SENTENCES)
    assert ";" not in exprs                        # saved_model_cli splits --input_exprs at ';'
    run = _py(["-m", "xlnet_tf.serving", "run", "--dir", d, "--tag_set", "serve",
               "--signature_def", "serving_default", "--input_exprs", exprs,
               "--outdir", str(outdir)])
    tok = Tokenizer(FIXTURE_SPM, lower=True)
    packed = [pack_ids(tok.encode_ids(s), None, T) for s in SENTENCES]
    ids_exprs = ";".join(f"{k}={json.dumps([p[i] for p in packed])}"
                         for i, k in enumerate(("input_ids", "input_mask", "seg_ids")))
    ids_outdir = tmp_path / "cli_ids_out"
    run_ids = _py(["-m", "xlnet_tf.serving", "run", "--dir", d, "--tag_set", "serve",
                   "--signature_def", "predict_ids", "--input_exprs", ids_exprs,
                   "--outdir", str(ids_outdir)])
    results = {name: p.communicate(timeout=300) + (p.returncode,)
               for name, p in (("load", load), ("show", show), ("run", run),
                               ("run_ids", run_ids))}
    for name, (_, err, code) in results.items():
        assert code == 0, f"{name}: {err[-2000:]}"
    want = _expected_probs(trained)
    labels = [r["prediction"] for r in trained["rows"]]

    fresh = json.loads(results["load"][0].strip().splitlines()[-1])
    np.testing.assert_allclose(fresh["batch_probs"], want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(fresh["single_probs"], want, atol=1e-5, rtol=0)
    assert fresh["batch_labels"] == labels
    assert fresh["single_shapes"] == [[1, 2]] * len(SENTENCES)
    assert fresh["asset"] == pathlib.Path(FIXTURE_SPM).read_bytes().hex()[:64]

    shown = results["show"][0]
    for sig in ("serving_default", "predict_ids"):
        block = shown.split(f"signature_def['{sig}']:")[1].split("signature_def[")[0]
        assert "Method name is: tensorflow/serving/predict" in block, block
    sd = shown.split("signature_def['serving_default']:")[1].split("signature_def[")[0]
    assert "inputs['text_a']" in sd and "inputs['text_b']" not in sd
    assert "outputs['probabilities']" in sd and "outputs['label']" in sd
    assert "DT_STRING" in sd
    ids = shown.split("signature_def['predict_ids']:")[1].split("signature_def[")[0]
    assert "inputs['input_ids']" in ids and f"shape: (-1, {T})" in ids

    cli_probs = np.load(outdir / "probabilities.npy")
    np.testing.assert_allclose(cli_probs, want, atol=1e-5, rtol=0)
    assert [x.decode() for x in np.load(outdir / "label.npy", allow_pickle=True)] == labels
    np.testing.assert_allclose(np.load(ids_outdir / "probabilities.npy"), want, atol=1e-5,
                               rtol=0)


def test_rest_instances_and_inputs_match_the_python_pipeline(trained):
    d = trained["version_dir"]
    want = _expected_probs(trained)
    labels = [r["prediction"] for r in trained["rows"]]
    rows = rest_predict(d, json.dumps({"instances": SENTENCES}))
    named = rest_predict(d, {"signature_name": "serving_default",
                             "instances": [{"text_a": s} for s in SENTENCES]})
    cols = rest_predict(d, {"inputs": {"text_a": SENTENCES}})
    bare = rest_predict(d, {"inputs": SENTENCES})
    b64 = rest_predict(d, {"instances": [
        {"text_a": {"b64": base64.b64encode(s.encode()).decode()}} for s in SENTENCES]})
    assert rows == named == b64
    assert cols == bare
    preds = rows["predictions"]
    assert [p["label"] for p in preds] == labels == cols["outputs"]["label"]
    assert set(preds[0]) == {"probabilities", "logits", "label", "label_name"}
    assert [p["label_name"] for p in preds] == [
        {"0": "negative", "1": "positive"}[label] for label in labels]
    np.testing.assert_allclose([p["probabilities"] for p in preds], want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(cols["outputs"]["probabilities"], want, atol=1e-5, rtol=0)
    np.testing.assert_allclose([p["logits"] for p in preds],
                               [r["logits"] for r in trained["rows"]], atol=1e-5, rtol=0)

    # predict_ids with the Python tokenizer + packer gives the same answer
    tok = Tokenizer(FIXTURE_SPM, lower=True)
    packed = [pack_ids(tok.encode_ids(s), None, T) for s in SENTENCES]
    ids = rest_predict(d, {"signature_name": "predict_ids", "inputs": {
        "input_ids": [p[0] for p in packed], "input_mask": [p[1] for p in packed],
        "seg_ids": [p[2] for p in packed]}})
    np.testing.assert_allclose(ids["outputs"]["probabilities"], want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("body,needle", [
    ({"instances": ["a"], "inputs": ["a"]}, "Both"),
    ({"signature_name": "nope", "instances": ["a"]}, "nope"),
    ({"instances": [{"text_b": "a"}]}, "does not have named input(s) ['text_a']"),
    ({"inputs": {"text_a": [1, 2]}}, "expected a string"),
    ({"instances": []}, "non-empty"),
    ("{not json", "JSON Parse error"),
    ({"inputs": {"text_a": "one text"}}, "shape []"),
])
def test_rest_errors(trained, body, needle):
    answer = rest_predict(trained["version_dir"], body)
    assert set(answer) == {"error"} and needle in answer["error"]


def test_serving_command_predict_and_usage_errors(trained, tmp_path, capsys):
    """``python -m xlnet_tf.serving predict`` prints rest_predict's answer (exit 1 for an
    error answer); a missing command or --dir is a one-line usage error (exit 2)."""
    command = importlib.import_module("xlnet_tf.serving.__main__")

    def run(*argv):
        code = cli.run(command.define_flags, command.main, command.command_argv(argv),
                       prog="python -m xlnet_tf.serving")
        out, err = capsys.readouterr()
        return code, out, err

    d = trained["version_dir"]
    body = {"instances": [{"text_a": s} for s in SENTENCES[:3]]}
    code, out, _ = run("predict", "--dir", d, "--request", json.dumps(body))
    assert code == 0 and json.loads(out) == rest_predict(d, body)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"inputs": SENTENCES[:2]}))
    code, out, _ = run("predict", f"--dir={d}", f"--request=@{request}",
                       "--signature_def=predict_ids")
    assert code == 1 and "error" in json.loads(out)
    assert run("--dir", d)[0] == 2 and "give a command first" in run("--dir", d)[2]
    code, _, err = run("show")
    assert code == 2 and "--dir is required" in err
    code, _, err = run("explain", "--dir", d)
    assert code == 2 and "explain" in err
    assert command.saved_model_cli_argv(cli.parse(command.define_flags, command.command_argv(
        ["run", "--dir", "x", "--input_exprs", "a=[1];b=[2]", "--overwrite"]), "t")) == [
        "run", "--dir=x", "--input_exprs=a=[1];b=[2]", "--overwrite"]


def test_saved_model_layout_asset_and_versions(trained):
    d = pathlib.Path(trained["version_dir"])
    assert (d / "assets" / "spiece.model").read_bytes() == pathlib.Path(FIXTURE_SPM).read_bytes()
    info = json.loads((d / "assets.extra" / "export_info.json").read_text())
    assert info["label_list"] == ["0", "1"] and info["max_seq_length"] == T
    assert info["uncased"] is True and info["inputs"] == ["text_a"]
    # export-only from the finished output_dir: next version, same answers
    assert run_cli([f"--output_dir={trained['out']}",
                    f"--export_dir={trained['export_dir']}"]) == 0
    assert sorted(os.listdir(trained["export_dir"])) == ["1", "2"]   # no temporary folders
    a = rest_predict(str(d), {"inputs": SENTENCES})
    b = rest_predict(str(trained["export_dir"] / "2"), {"inputs": SENTENCES})
    np.testing.assert_allclose(a["outputs"]["probabilities"], b["outputs"]["probabilities"],
                               atol=1e-6)
    with pytest.raises(FileExistsError, match="never overwritten"):
        check_export_dir(str(trained["export_dir"]), 2)
    assert run_cli([f"--output_dir={trained['out']}", f"--export_dir={trained['export_dir']}",
                    "--export_version=1"]) == 2


@pytest.mark.parametrize("regression", [False, True])
def test_pair_model_text_b_and_empty_strings(tmp_path, regression):
    """A pair task (text_a + text_b), classification or regression, random weights, against
    the Python pipeline (Tokenizer.encode_ids + pack_ids + the Keras model)."""
    config = XLNetConfig(n_layer=1, d_model=16, n_head=2, d_head=8, d_inner=32, n_token=2000,
                         dropout=0.0, dropatt=0.0)
    model = XLNetClassifier(config, n_class=3, task_name="sts-b" if regression else "mnli",
                            is_regression=regression)
    rng = np.random.default_rng(0)
    for v in model.weights:
        v.assign(rng.normal(0, 0.3, v.shape).astype(np.float32))
    labels = None if regression else ["contradiction", "entailment", "neutral"]
    path = export_classifier(model, str(tmp_path / "exp"), FIXTURE_SPM,
                                    max_seq_length=T, label_list=labels, pair=True,
                                    is_regression=regression, task_name="mnli_matched")
    a = ["The cat sat on the mat.", "", " ".join(["long premise"] * 40), "x"]
    b = ["A cat is sitting.", "", "short", " ".join(["long hypothesis"] * 40)]
    tok = Tokenizer(FIXTURE_SPM)
    packed = [pack_ids(tok.encode_ids(x), tok.encode_ids(y), T) for x, y in zip(a, b)]
    feats = {"input_ids": tf.constant([p[0] for p in packed], tf.int32),
             "input_mask": tf.constant([p[1] for p in packed], tf.float32),
             "seg_ids": tf.constant([p[2] for p in packed], tf.int32)}
    logits = model(feats)["logits"].numpy()
    rows = rest_predict(path, {"instances": [{"text_a": x, "text_b": y}
                                                    for x, y in zip(a, b)]})
    cols = rest_predict(path, {"inputs": {"text_a": a, "text_b": b}})
    np.testing.assert_allclose(cols["outputs"]["logits"], logits, atol=1e-5, rtol=0)
    if regression:
        assert set(cols["outputs"]) == {"score", "logits"}
        np.testing.assert_allclose([p["score"] for p in rows["predictions"]], logits[:, 0],
                                   atol=1e-5, rtol=0)
    else:
        probs = tf.nn.softmax(logits).numpy()
        np.testing.assert_allclose([p["probabilities"] for p in rows["predictions"]], probs,
                                   atol=1e-5, rtol=0)
        assert cols["outputs"]["label"] == [labels[i] for i in logits.argmax(1)]
    bad = rest_predict(path, {"inputs": {"text_a": a, "text_b": b[:2]}})
    assert "same number of texts" in bad["error"]
    missing = rest_predict(path, {"instances": ["only a"]})
    assert "several inputs" in missing["error"]


def test_text_cleanup_in_graph_equals_the_readers():
    texts = ['a<br />b<br /><br />c', 'say \\"hi\\" and ""so"" \\n next', 'plain, 1,000']
    for task in ("imdb", "yelp2", "yelp5", "sst-2"):
        want = [get_task(task).clean_text(t) for t in texts]
        got = [x.decode() for x in clean_text_tf(tf.constant(texts), task).numpy()]
        assert got == want, task


def test_serving_command_export_root_scalar_and_non_string_inputs(trained, capsys):
    """``python -m xlnet_tf.serving``: the export root instead of a version folder says
    "add /1"; a ``run`` input that is a scalar or not a string is one line naming it (exit
    2, no traceback), checked before saved_model_cli runs."""
    command = importlib.import_module("xlnet_tf.serving.__main__")

    def run(*argv):
        code = cli.run(command.define_flags, command.main, command.command_argv(argv),
                       prog="python -m xlnet_tf.serving")
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        return code, err

    root, d = str(trained["export_dir"]), trained["version_dir"]
    # other tests of this module may have exported more versions: the newest is suggested
    newest = max(int(v) for v in os.listdir(root) if v.isdigit())
    for cmd in ("show", "run", "predict"):
        code, err = run(cmd, "--dir", root, "--tag_set=serve", "--request={}")
        assert code == 2 and "is the export root" in err and f"add /{newest}" in err, err
        assert f"--dir={root}" in err
    sig = ["--tag_set=serve", "--signature_def=serving_default"]
    for expr, needle in [
            ('text_a="a fine film"', "text_a is a scalar, the signature takes shape [None]"),
            ("text_a=[1, 2]", "text_a must be strings"),
            ("text_a=[a fine film]", "not a valid python literal"),
            ('text_b=["x"]', "has no input 'text_b'")]:
        code, err = run("run", "--dir", d, *sig, f"--input_exprs={expr}")
        assert code == 2 and needle in err and "--input_exprs" in err, err
    code, err = run("run", "--dir", d, "--tag_set=nope", "--signature_def=serving_default",
                    '--input_exprs=text_a=["x"]')
    assert code == 2 and "--tag_set=nope" in err


def test_empty_batch_is_answered(trained):
    """Both signatures answer a batch of 0 with empty outputs (SQuAD's does the same)."""
    from xlnet_tf.serving import load_saved_model
    sigs = load_saved_model(trained["version_dir"]).signatures
    out = sigs["serving_default"](text_a=tf.constant([], tf.string))
    assert out["label"].shape == [0] and out["probabilities"].shape == [0, 2]
    empty = tf.zeros([0, T], tf.int32)
    out = sigs["predict_ids"](input_ids=empty, seg_ids=empty,
                              input_mask=tf.zeros([0, T], tf.float32))
    assert out["logits"].shape == [0, 2]


def test_encode_signature_gives_the_fine_tuned_backbone_states(trained):
    """``encode`` (raw text in): token states are the fine-tuned backbone's hidden states on
    the packed text, the mask marks the text's pieces only, pooled is their mean; a text
    gives the same pooled vector alone and in a batch (1e-5)."""
    from xlnet_tf.serving import load_saved_model
    from xlnet_tf.training import restore_for_inference

    sig = load_saved_model(trained["version_dir"]).signatures["encode"]
    texts = [s.lower() for s in SENTENCES[:4]]
    out = sig(text_a=tf.constant(texts))
    states, mask, pooled = (out[k].numpy() for k in ("token_states", "token_mask", "pooled"))
    cfg = json.load(open(trained["out"] / "classifier_config.json"))
    model = XLNetClassifier(XLNetConfig.from_dict(cfg["xlnet_config"]), n_class=2,
                            task_name="sst-2")
    restore_for_inference(model, str(trained["out"]), None)
    tok = Tokenizer(str(FIXTURE_SPM), lower=True)
    for i, text in enumerate(texts):
        ids = tok.encode_ids(text)
        input_ids, input_mask, seg_ids = pack_ids(ids, None, T)
        hidden = model.transformer({"input_ids": np.array([input_ids], np.int32),
                                    "seg_ids": np.array([seg_ids], np.int32),
                                    "input_mask": np.array([input_mask], np.float32)},
                                   training=False)["hidden"].numpy()[0]          # [T, d]
        n = min(len(ids), T - 2)
        want_mask = np.zeros(T, np.float32)
        want_mask[T - 2 - n:T - 2] = 1.0
        np.testing.assert_array_equal(mask[i], want_mask)
        np.testing.assert_allclose(states[i], hidden, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(pooled[i], hidden[T - 2 - n:T - 2].mean(0), rtol=1e-5,
                                   atol=1e-5)
        alone = sig(text_a=tf.constant([text]))["pooled"].numpy()[0]
        np.testing.assert_allclose(alone, pooled[i], rtol=1e-5, atol=1e-5)
