"""The SQuAD SavedModel: in-graph context alignment, windows and post-processing give what
the Python pipeline (xlnet_tf.squad.features + xlnet_tf.squad.postprocess) gives.

* piece ids and the piece -> raw character maps (``tok_start_to_orig`` /
  ``tok_end_to_orig``) on every context of the SQuAD 2.0 sample files of the shared data and on
  hand-made hard cases (quotes, zero-width characters, accents, unknown characters, ...);
  ``bench/bench_squad_infer.py --check_alignment`` runs the same comparison on all 2,067
  contexts of SQuAD 1.1 dev;
* windows (ids, segments, masks, ``cls_index``, max-context flags) and the best answer,
  its score and the null score for real questions;
* the exported SavedModel in a FRESH process (``import tensorflow_text`` first) and through
  the TF Serving REST emulation.
"""
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from spm_test_utils import model_with_extra_pieces
from xlnet_tf.tokenization import tokenizer as tok_lib
from xlnet_tf.modeling.config import XLNetConfig
from xlnet_tf import squad
from xlnet_tf.squad.export import best_answers, build_windows, export_squad
from xlnet_tf.squad.serving_align import ContextAligner
from xlnet_tf.squad.model import XLNetSquadModel
from xlnet_tf.squad.postprocess import RawResult, write_predictions
from xlnet_tf.tokenization.in_graph import XLNetTokenizerLayer

REPO = pathlib.Path(__file__).resolve().parents[2]
SPM = str(REPO / "tests" / "fixtures" / "spiece_test.model")
V2_FILES = ("dev-v2.0.first2articles.json", "dev-v2.0.normans_rhine.json")
T, STRIDE, QLEN, MAX_ANSWER = 64, 24, 16, 12

HARD_CONTEXTS = [
    "``Quoted'' words and ``more quotes'' here; a '' lone pair and  four.",
    "  Leading and trailing whitespace\tand\ttabs\n\nand   runs of   spaces.  ",
    "Zero\u200bwidth\u200b\u200bspaces, a BOM\ufeff / \ufeffhere and LRM\u200e marks.",
    "Accents: café, cafe\u0301, naïve, Ångström, and a ligature \ufb01ne and \u2026 dots.",
    "Unknown: Władysław Norðmaðr /ˈluːθər/ 東京 and emoji \U0001F600 end.",
    "Numbers 1,000,000 and 000 and 2000, 19, 400,000) then (~450,000) people.",
    "ΟΔΟΣ and Σίσυφος: Greek capitals; İstanbul; ß and ﬀ.",
    "Hangul 한국어 text and full-width ＡＢＣ１２３ letters.",
    "x",
    "a\u00a0non-breaking\u3000ideographic space\u2028line sep",
]


def contexts_of(shared_data, files=V2_FILES):
    out = []
    for name in files:
        with open(shared_data / "squad" / name, encoding="utf-8") as f:
            for article in json.load(f)["data"]:
                out.extend(p["context"] for p in article["paragraphs"])
    return list(dict.fromkeys(out))


def python_maps(tokenizer, context):
    info = squad.prepare_paragraph(tokenizer.sp_model, context, tokenizer.lower, False)
    return (list(info.para_ids), list(info.tok_start_to_orig), list(info.tok_end_to_orig))


def graph_maps(aligner, contexts):
    """One traced call over all contexts."""
    fn = tf.function(aligner.align, input_signature=[tf.TensorSpec([None], tf.string)])
    ids, ts, te = fn(tf.constant(contexts))
    return [(list(a), list(b), list(c)) for a, b, c in zip(ids.numpy(), ts.numpy(),
                                                            te.numpy())]


def mismatches(tokenizer, aligner, contexts):
    bad = []
    for context, got in zip(contexts, graph_maps(aligner, contexts)):
        want = python_maps(tokenizer, context)
        for name, g, w in zip(("ids", "start", "end"), got, want):
            if [int(v) for v in g] != [int(v) for v in w]:
                bad.append((context[:60], name))
    return bad


def test_alignment_equals_python_on_every_squad2_context(shared_data):
    contexts = contexts_of(shared_data)
    assert len(contexts) == 131
    tokenizer = tok_lib.Tokenizer(SPM)
    assert mismatches(tokenizer, ContextAligner(SPM), contexts) == []


@pytest.mark.parametrize("uncased", [False, True])
def test_alignment_equals_python_on_hard_contexts(uncased):
    tokenizer = tok_lib.Tokenizer(SPM, lower=uncased)
    assert mismatches(tokenizer, ContextAligner(SPM, lower=uncased), HARD_CONTEXTS) == []


def test_alignment_with_digit_comma_pieces(tmp_path):
    """A vocabulary with pieces such as ``▁2000,`` (the original's digit-comma rule splits
    them): the comma gets its own raw character, the digits theirs."""
    path = tmp_path / "digits.model"
    path.write_bytes(model_with_extra_pieces())
    tokenizer = tok_lib.Tokenizer(str(path))
    contexts = ["In 2000, the city had 19, then 2000,000 and 1200, people; ٣, too.",
                "2000, at the start", "x 100, 2, 12,"]
    pieces = [tok_lib.encode_pieces(tokenizer.sp_model, tok_lib.preprocess_text(c))
              for c in contexts]
    assert any(p == "," for ps in pieces for p in ps)     # the rule did split pieces
    assert mismatches(tokenizer, ContextAligner(str(path)), contexts) == []


# ------------------------------------------------------------------ windows + answers
def wide_model(seed=0):
    """Random weights with a large init so that scores are far from ties."""
    keras.utils.set_random_seed(seed)
    cfg = XLNetConfig(n_layer=1, d_model=16, n_head=2, d_head=8, d_inner=32, n_token=2000,
                      init_std=0.5, dropout=0.0, dropatt=0.0)
    return XLNetSquadModel(cfg, start_n_top=3, end_n_top=3)


def python_pipeline(model, examples, tokenizer):
    feats = squad.convert_examples_to_features(examples, tokenizer, T, STRIDE, QLEN, False,
                                            num_workers=1)
    arrays = {k: np.stack([getattr(f, k) for f in feats])
              for k in ("input_ids", "seg_ids", "input_mask", "p_mask")}
    arrays["cls_index"] = np.array([f.cls_index for f in feats], np.int32)
    out = model(arrays)
    results = [RawResult(f.unique_id, out["start_top_log_probs"][i].numpy(),
                         out["start_top_index"][i].numpy(), out["end_top_log_probs"][i].numpy(),
                         out["end_top_index"][i].numpy(), float(out["cls_logits"][i]))
               for i, f in enumerate(feats)]
    preds, nbest, null = write_predictions(examples, feats, results, 5, MAX_ANSWER, 3, 3)
    return feats, arrays, preds, nbest, null


def test_windows_and_answers_equal_the_python_pipeline(shared_data):
    tokenizer = tok_lib.Tokenizer(SPM)
    examples = squad.read_squad_examples(shared_data / "squad" / V2_FILES[0], False)[:120]
    model = wide_model()
    feats, arrays, preds, nbest, null = python_pipeline(model, examples, tokenizer)
    aligner, qtok = ContextAligner(SPM), XLNetTokenizerLayer(SPM)

    @tf.function
    def serve(questions, contexts):
        para, ts, te = aligner.align(contexts)
        windows = build_windows(para, qtok(questions)[:, :QLEN], T, STRIDE)
        out = model({k: windows[k] for k in ("input_ids", "seg_ids", "input_mask",
                                             "p_mask", "cls_index")})
        return windows, best_answers(out, windows, contexts, ts, te, tf.shape(contexts)[0],
                                     MAX_ANSWER)

    windows, (answer, start, score, null_score) = serve(
        tf.constant([e.question_text for e in examples]),
        tf.constant([e.paragraph_text for e in examples]))
    assert windows["input_ids"].shape[0] == len(feats) > len(examples)   # several windows
    for key in ("input_ids", "seg_ids", "input_mask", "p_mask", "cls_index"):
        np.testing.assert_array_equal(windows[key].numpy(), arrays[key], err_msg=key)
    is_max = np.zeros((len(feats), T), bool)
    for i, f in enumerate(feats):
        is_max[i, :f.paragraph_len] = f.token_is_max_context
    np.testing.assert_array_equal(windows["is_max_context"].numpy(), is_max)
    np.testing.assert_array_equal(windows["paragraph_len"].numpy(),
                                  [f.paragraph_len for f in feats])
    for i, e in enumerate(examples):
        text = answer[i].numpy().decode("utf-8")
        best = nbest[e.qas_id][0]
        assert text == preds[e.qas_id], e.qas_id
        assert float(score[i]) == pytest.approx(best["start_log_prob"] + best["end_log_prob"],
                                                abs=1e-4)
        assert float(null_score[i]) == pytest.approx(null[e.qas_id], abs=1e-5)
        if text:
            assert e.paragraph_text[int(start[i]):int(start[i]) + len(text)] == text
    assert len({answer[i].numpy() for i in range(len(examples))}) > 20   # not degenerate


# ------------------------------------------------------------------ SavedModel
FRESH = r"""
import json, sys
import tensorflow_text  # registers the SentencePiece ops before the graph is loaded
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
pairs = json.load(open(sys.argv[2]))
f = m.signatures["serving_default"]
out = f(question=tf.constant([q for q, _ in pairs]), context=tf.constant([c for _, c in pairs]))
one = f(question=tf.constant([pairs[0][0]]), context=tf.constant([pairs[0][1]]))
print(json.dumps({"answer": [a.decode("utf-8") for a in out["answer"].numpy()],
                  "answer_start": out["answer_start"].numpy().tolist(),
                  "score": out["score"].numpy().tolist(),
                  "null_score": out["null_score"].numpy().tolist(),
                  "single": one["answer"].numpy()[0].decode("utf-8"),
                  "signatures": sorted(m.signatures)}))
"""


@pytest.fixture(scope="module")
def exported(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("squad_export")
    tokenizer = tok_lib.Tokenizer(SPM)
    examples = list(squad.read_squad_examples(shared_data / "squad" / V2_FILES[1], False))
    examples = examples[::12][:40]                      # spread over both articles
    examples.append(squad.SquadExample("empty", "What?", " "))
    model = wide_model(seed=1)
    _, _, preds, nbest, null = python_pipeline(model, examples[:-1], tokenizer)
    path = export_squad(model, str(tmp / "export"), SPM, max_seq_length=T, doc_stride=STRIDE,
                        max_query_length=QLEN, max_answer_length=MAX_ANSWER)
    return {"path": path, "examples": examples, "preds": preds, "nbest": nbest, "null": null,
            "tmp": tmp}


def test_fresh_process_answers_equal_the_python_pipeline(exported):
    examples = exported["examples"]
    pairs = exported["tmp"] / "pairs.json"
    pairs.write_text(json.dumps([[e.question_text, e.paragraph_text] for e in examples]))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", FRESH, exported["path"], str(pairs)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["signatures"] == ["encode", "predict_features", "serving_default"]
    for i, e in enumerate(examples[:-1]):
        best = exported["nbest"][e.qas_id][0]
        assert got["answer"][i] == exported["preds"][e.qas_id], e.qas_id
        assert got["score"][i] == pytest.approx(best["start_log_prob"] + best["end_log_prob"],
                                                abs=1e-4)
        assert got["null_score"][i] == pytest.approx(exported["null"][e.qas_id], abs=1e-5)
        text, start = got["answer"][i], got["answer_start"][i]
        assert e.paragraph_text[start:start + len(text)] == text
    assert got["single"] == got["answer"][0]             # batch size 1 works too
    # a blank context: one window without paragraph, no answer, a real null score
    assert got["answer"][-1] == "" and got["answer_start"][-1] == -1
    assert got["score"][-1] == -2e6 and abs(got["null_score"][-1]) < 1e6


def test_rest_emulation_and_predict_features(exported):
    from xlnet_tf.serving import rest_predict
    e = exported["examples"][3]
    body = {"instances": [{"question": e.question_text, "context": e.paragraph_text}]}
    reply = rest_predict(exported["path"], json.dumps(body))
    assert reply["predictions"][0]["answer"] == exported["preds"][e.qas_id]
    assert reply["predictions"][0]["null_score"] == pytest.approx(exported["null"][e.qas_id],
                                                                  abs=1e-5)
    bad = rest_predict(exported["path"], {"instances": [{"question": "x"}]})
    assert "context" in bad["error"]
    mismatch = rest_predict(exported["path"], {"inputs": {"question": ["a", "b"],
                                                          "context": ["c"]}})
    assert "same number" in mismatch["error"]
    info = json.loads((pathlib.Path(exported["path"]) / "assets.extra" /
                       "export_info.json").read_text())
    assert (info["max_seq_length"], info["doc_stride"], info["max_query_length"]) == \
        (T, STRIDE, QLEN)


def test_empty_batch_is_answered(exported):
    """A batch of 0 questions gets 0 answers (as the classifier export), not an error."""
    from xlnet_tf.serving import load_saved_model
    fn = load_saved_model(exported["path"]).signatures["serving_default"]
    out = fn(question=tf.constant([], tf.string), context=tf.constant([], tf.string))
    assert {k: v.shape.as_list() for k, v in out.items()} == {
        "answer": [0], "answer_start": [0], "score": [0], "null_score": [0]}
    # and a batch with one question still gives what it gave before
    e = exported["examples"][3]
    one = fn(question=tf.constant([e.question_text]), context=tf.constant([e.paragraph_text]))
    assert one["answer"].numpy()[0].decode() == exported["preds"][e.qas_id]
