"""The tagger's SavedModel: every window of a long sentence read in-graph, each word tagged
from the window --do_predict takes it from (tags equal, scores 1e-5, on sentences of one to
several windows), its signatures as saved_model_cli shows them (with ``encode``), the REST
request formats TF Serving takes, and the export of a tagger trained with document context
(read without it, said in export_info.json)."""
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from xlnet_tf import XLNetConfig
from xlnet_tf.serving import load_saved_model, rest_predict
from xlnet_tf.tokenization.tokenizer import Tokenizer
from xlnet_tf.token_classification.alignment import align_words
from xlnet_tf.token_classification.data import prepare_data
from xlnet_tf.token_classification.export import export_tagger
from xlnet_tf.token_classification.features import window_starts
from xlnet_tf.token_classification.model import XLNetTokenClassifier
from xlnet_tf.token_classification.readers import read_conll
from xlnet_tf.token_classification.task import Predictor

REPO = pathlib.Path(__file__).resolve().parents[2]
SPM = str(REPO / "tests" / "fixtures" / "spiece_test.model")
T, STRIDE, CONTEXT = 16, 5, 3
TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
SENTENCES = [
    "EU rejects German call to boycott British lamb .",
    "Peter Blackburn",
    "The European Commission said on Thursday it disagreed with German advice to consumers "
    "to shun British lamb until scientists determine whether mad cow disease can be "
    "transmitted to sheep , 1,000 ( naïve ) Café",
    "BRUSSELS 1996-08-22",
    "Germany 's representative to the European Union 's veterinary committee Werner "
    "Zwingmann said on Wednesday consumers should buy sheepmeat from countries other "
    "than Britain until the scientific advice was clearer .",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ner_export")
    keras.utils.set_random_seed(5)
    config = XLNetConfig(n_layer=2, d_model=16, n_head=2, d_head=8, d_inner=32, n_token=32000,
                         dropout=0.0, dropatt=0.0, init_std=0.3)
    model = XLNetTokenClassifier(config, len(TAGS), context_len=CONTEXT)
    rng = np.random.default_rng(0)
    model.logit.kernel.assign(rng.normal(0, 2.0, model.logit.kernel.shape).astype(np.float32))
    path = tmp / "test.txt"
    path.write_text("".join("".join(f"{w} {TAGS[i % len(TAGS)]}\n"
                                    for i, w in enumerate(s.split())) + "\n"
                            for s in SENTENCES))
    sentences = read_conll(str(path))
    tok = Tokenizer(SPM)
    # what --do_predict does for a tagger read without context
    data = prepare_data(str(path), sentences, tok, TAGS, T, STRIDE)
    tags, scores = Predictor(4).predict(model, data, TAGS)
    export = export_tagger(model, str(tmp / "export"), SPM, max_seq_length=T,
                           doc_stride=STRIDE, tag_list=TAGS, tag_scheme="iob2",
                           doc_context_len=CONTEXT)
    return {"path": export, "tags": tags, "scores": scores, "data": data, "tok": tok}


def test_every_window_read_as_do_predict_reads_them(exported):
    data, tok = exported["data"], exported["tok"]
    windows = [len(window_starts(len(align_words(tok, s.split()).ids), T - 2, STRIDE))
               for s in SENTENCES]
    assert windows[1] == 1 and windows[2] >= 5 and windows[4] >= 5, windows
    assert data.counts["num_windows"] == sum(windows)
    assert len(set(exported["tags"][2])) > 1                 # not one tag everywhere
    m = load_saved_model(exported["path"])
    out = m.signatures["serving_default"](text=tf.constant(SENTENCES + [""]))
    n = out["num_words"].numpy().tolist()
    assert n == [len(s.split()) for s in SENTENCES] + [0]
    got = [[t.decode() for t in row[:k]] for row, k in zip(out["tags"].numpy(), n)]
    assert got[:-1] == exported["tags"] and got[-1] == []
    for row, k, want in zip(out["scores"].numpy(), n, exported["scores"]):
        np.testing.assert_allclose(row[:k], want, atol=1e-5, rtol=0)
    # one sentence alone gives the same as in the batch; words in, the same answer
    alone = m.signatures["serving_default"](text=tf.constant([SENTENCES[2]]))
    assert [t.decode() for t in alone["tags"].numpy()[0]] == exported["tags"][2]
    words = [s.split() for s in SENTENCES]
    width = max(map(len, words))
    padded = tf.constant([w + [""] * (width - len(w)) for w in words])
    by_words = m.signatures["predict_words"](words=padded)
    assert [[t.decode() for t in row[:k]] for row, k in zip(by_words["tags"].numpy(), n)] \
        == exported["tags"]


def test_saved_model_cli_show_lists_the_signatures(exported):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-m", "xlnet_tf.serving", "show", "--dir",
                           exported["path"], "--all"], capture_output=True, text=True,
                          cwd=str(REPO), env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = proc.stdout

    def block(sig):
        return shown.split(f"signature_def['{sig}']:")[1].split("signature_def[")[0]

    for sig in ("serving_default", "predict_words", "predict_ids", "encode"):
        assert "Method name is: tensorflow/serving/predict" in block(sig), sig
    sd = block("serving_default")
    assert "inputs['text']" in sd and "DT_STRING" in sd
    assert all(f"outputs['{k}']" in sd for k in ("tags", "scores", "num_words"))
    assert "inputs['words']" in block("predict_words")
    assert "inputs['input_ids']" in block("predict_ids") and f"(-1, {T})" in block("predict_ids")
    enc = block("encode")
    assert all(f"outputs['{k}']" in enc for k in ("pooled", "token_states", "token_mask"))


def test_rest_request_formats(exported):
    path, want = exported["path"], exported["tags"]
    rows = rest_predict(path, json.dumps({"instances": SENTENCES}))
    named = rest_predict(path, {"signature_name": "serving_default",
                                "instances": [{"text": s} for s in SENTENCES]})
    cols = rest_predict(path, {"inputs": {"text": SENTENCES}})
    assert rows == named
    preds = rows["predictions"]
    assert [p["tags"][:p["num_words"]] for p in preds] == want
    assert [t[:k] for t, k in zip(cols["outputs"]["tags"], cols["outputs"]["num_words"])] \
        == want
    for p, scores in zip(preds, exported["scores"]):
        np.testing.assert_allclose(p["scores"][:p["num_words"]], scores, atol=1e-5, rtol=0)
    words = [s.split() for s in SENTENCES[:2]]
    width = max(map(len, words))
    by_words = rest_predict(path, {"signature_name": "predict_words", "inputs": {
        "words": [w + [""] * (width - len(w)) for w in words]}})
    assert [t[:len(w)] for t, w in zip(by_words["outputs"]["tags"], words)] == want[:2]
    enc = rest_predict(path, {"signature_name": "encode", "instances": SENTENCES[:2]})
    direct = load_saved_model(path).signatures["encode"](text=tf.constant(SENTENCES[:2]))
    np.testing.assert_allclose([p["pooled"] for p in enc["predictions"]],
                               direct["pooled"].numpy(), atol=1e-6, rtol=0)
    assert len(enc["predictions"][0]["pooled"]) == 16
    bad = rest_predict(path, {"instances": [{"words": "x"}]})
    assert "text" in bad["error"]


def test_export_info_says_context_is_not_read(exported):
    info = json.loads((pathlib.Path(exported["path"]) / "assets.extra" /
                       "export_info.json").read_text())
    assert (info["max_seq_length"], info["doc_stride"], info["doc_context_len"]) == \
        (T, STRIDE, CONTEXT)
    assert "reads every sentence without document context" in info["context"]
    assert info["tag_list"] == TAGS
