"""run_squad.py end to end on real SQuAD 2.0 questions (a tiny model trained from scratch on
45 questions learns them far above the "no answer everywhere" baseline), its output files
against the official formats and an independent re-evaluation, prediction from
--init_checkpoint alone, the export in a fresh process, and the refusals of bad input (the
output_dir left untouched).

The script runs in this process (``xlnet_tf.cli.run``: its flags parsed on a fresh
FlagValues per call) to keep the module fast.
"""
import contextlib
import importlib
import io
import json
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from xlnet_tf import cli
from xlnet_tf.squad import evaluate as squad_eval
from refusal_utils import snapshot

REPO = pathlib.Path(__file__).resolve().parents[2]
SPM = str(REPO / "tests" / "fixtures" / "spiece_test.model")
TINY = ["--n_layer=2", "--d_model=64", "--n_head=2", "--d_head=32", "--d_inner=128",
        "--max_seq_length=128", "--doc_stride=64", "--max_query_length=32",
        "--train_batch_size=16", "--predict_batch_size=64", "--learning_rate=2e-3",
        "--warmup_steps=30", "--lr_layer_decay_rate=1.0", "--dropout=0", "--dropatt=0",
        "--iterations=100", f"--spiece_model={SPM}"]


run_squad = importlib.import_module("run_squad")


def run_cli(args, capsys):
    """Run run_squad.py with ``args``; returns (exit code, stdout, stderr)."""
    code = cli.run(run_squad.define_flags, run_squad.main, [str(a) for a in args],
                   prog="run_squad.py")
    out = capsys.readouterr()
    return code, out.out, out.err


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def subset(shared_data, tmp_path_factory):
    """The first 8 paragraphs of "Normans" (SQuAD 2.0 dev): 45 questions, 27 unanswerable."""
    data = load(shared_data / "squad" / "dev-v2.0.first2articles.json")
    article = data["data"][0]
    path = tmp_path_factory.mktemp("data") / "normans8.json"
    path.write_text(json.dumps({"version": "v2.0", "data": [
        dict(article, paragraphs=article["paragraphs"][:8])]}))
    return path


@pytest.fixture(scope="module")
def trained(subset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("squad_run")
    out, export = tmp / "out", tmp / "export"
    capsys = _Capture()
    with contextlib.redirect_stdout(capsys.out), contextlib.redirect_stderr(capsys.err):
        code, stdout, stderr = run_cli(
        [*TINY, f"--train_file={subset}", f"--predict_file={subset}",
         "--version_2_with_negative", f"--output_dir={out}", f"--cache_dir={tmp / 'cache'}",
             "--train_steps=500", "--do_train", "--do_predict", f"--export_dir={export}"],
            capsys)
    assert code == 0, stderr
    return {"out": out, "export": export, "stdout": stdout, "tmp": tmp, "data": subset}


class _Capture:
    """capsys stand-in for the module-scoped fixture (capsys is per test)."""

    def __init__(self):
        self.out, self.err = io.StringIO(), io.StringIO()

    def readouterr(self):
        return types.SimpleNamespace(out=self.out.getvalue(), err=self.err.getvalue())


# ---------------------------------------------------------------------------- learning
def test_training_set_em_far_above_the_null_baseline(trained):
    results = load(trained["out"] / "eval_results.json")
    data = load(trained["data"])["data"]
    qas = [q for a in data for p in a["paragraphs"] for q in p["qas"]]
    null_baseline = 100.0 * sum(q["is_impossible"] for q in qas) / len(qas)
    assert results["total"] == len(qas) == 45
    assert results["NoAns_total"] == 27 and null_baseline == pytest.approx(60.0)
    assert results["best_exact"] >= null_baseline + 25.0, results
    assert results["has_ans_exact"] >= 0.6, results          # raw EM on answerable ones
    # the numbers are the official evaluation of the written files
    again = squad_eval.evaluate_files(trained["data"], trained["out"] / "predictions.json",
                                      trained["out"] / "null_odds.json", xlnet_v2=True)
    assert dict(again) == pytest.approx(results)


def test_scores_go_to_tensorboard_at_the_final_step(trained):
    """OUTPUT_DIR/eval holds the EM/F1 of eval_results.json as scalars at step 500."""
    import tensorflow as tf
    results = load(trained["out"] / "eval_results.json")
    events = sorted((trained["out"] / "eval").glob("events.out.tfevents*"))
    assert events, "no TensorBoard file in OUTPUT_DIR/eval"
    scalars = {}
    for path in events:
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                scalars[value.tag] = (event.step, float(tf.make_ndarray(value.tensor)))
    for key in ("exact", "f1", "best_exact", "best_f1", "HasAns_exact", "NoAns_f1"):
        assert scalars[key] == (500, pytest.approx(results[key], rel=1e-6)), key


def test_output_files_have_the_official_formats(trained):
    out = trained["out"]
    data = load(trained["data"])["data"]
    ids = [q["id"] for a in data for p in a["paragraphs"] for q in p["qas"]]
    preds = load(out / "predictions.json")
    nbest = load(out / "nbest_predictions.json")
    null = load(out / "null_odds.json")
    assert list(preds) == ids and list(nbest) == ids and list(null) == ids
    assert all(isinstance(v, str) for v in preds.values())
    assert all(isinstance(v, float) for v in null.values())
    for qid, entries in nbest.items():
        assert 1 <= len(entries) <= 5
        assert entries[0]["text"] == preds[qid]
        assert sum(e["probability"] for e in entries) == pytest.approx(1.0)
        scores = [e["start_log_prob"] + e["end_log_prob"] for e in entries]
        assert scores == sorted(scores, reverse=True)
        assert len({e["text"] for e in entries}) == len(entries)
    names = dict(tf.train.list_variables(str(out / "xlnet_model.ckpt")))
    for scope in ("start_logits/dense/kernel", "end_logits/dense_0/kernel",
                  "end_logits/LayerNorm/gamma", "answer_class/dense_1/kernel"):
        assert scope in names
    assert "answer_class/dense_1/bias" not in names
    cfg = load(out / "squad_config.json")
    assert (cfg["max_seq_length"], cfg["doc_stride"], cfg["max_query_length"]) == (128, 64, 32)
    assert "fine-tuning on SQuAD: 500 steps" in trained["stdout"]
    assert "null baseline (no answer everywhere): exact = f1 = 60.00" in trained["stdout"]


def test_predict_only_uses_init_checkpoint(trained, tmp_path, capsys):
    """Unlike the original, --do_predict alone predicts with --init_checkpoint."""
    out = tmp_path / "predict_only"
    code, stdout, stderr = run_cli(
        [*TINY, f"--predict_file={trained['data']}", "--version_2_with_negative",
         f"--model_config={trained['out'] / 'xlnet_config.json'}",
         f"--init_checkpoint={trained['out'] / 'xlnet_model.ckpt'}", f"--output_dir={out}",
         f"--cache_dir={trained['tmp'] / 'cache'}", "--do_predict"], capsys)
    assert code == 0, stderr
    assert "using " in stdout and "xlnet_model.ckpt" in stdout
    assert load(out / "predictions.json") == load(trained["out"] / "predictions.json")
    np.testing.assert_allclose(list(load(out / "null_odds.json").values()),
                               list(load(trained["out"] / "null_odds.json").values()),
                               atol=1e-5)
    assert load(out / "eval_results.json")["best_exact"] == pytest.approx(
        load(trained["out"] / "eval_results.json")["best_exact"])


FRESH = r"""
import json, sys
import tensorflow_text  # the SentencePiece ops must be registered first
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
pairs = json.load(open(sys.argv[2]))
out = m.signatures["serving_default"](question=tf.constant([q for _, q, _ in pairs]),
                                      context=tf.constant([c for _, _, c in pairs]))
print(json.dumps({"answer": [a.decode("utf-8") for a in out["answer"].numpy()],
                  "null_score": out["null_score"].numpy().tolist()}))
"""


def test_export_answers_like_predictions_json_in_a_fresh_process(trained, tmp_path, capsys):
    data = load(trained["data"])["data"]
    triples = [(q["id"], q["question"], p["context"]) for a in data for p in a["paragraphs"]
               for q in p["qas"]]
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps(triples))
    version = trained["export"] / "1"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", FRESH, str(version), str(pairs)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    preds = load(trained["out"] / "predictions.json")
    null = load(trained["out"] / "null_odds.json")
    assert got["answer"] == [preds[qid] for qid, _, _ in triples]
    np.testing.assert_allclose(got["null_score"], [null[qid] for qid, _, _ in triples],
                               atol=1e-4)
    # export only, from the finished output_dir: the next version, same answers
    code, stdout, stderr = run_cli([f"--output_dir={trained['out']}",
                                    f"--export_dir={trained['export']}"], capsys)
    assert code == 0, stderr
    from xlnet_tf.serving import rest_predict
    reply = rest_predict(str(trained["export"] / "2"), {"instances": [
        {"question": q, "context": c} for _, q, c in triples[:5]]})
    assert [r["answer"] for r in reply["predictions"]] == [preds[i] for i, _, _ in triples[:5]]


# ---------------------------------------------------------------------------- bad input
@pytest.fixture
def user_dir(tmp_path):
    """An output_dir that already holds a user's files."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.json").write_text('{"keep": "me"}')
    (out / "notes.txt").write_text("mine")
    return out


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return path


def _squad_with(qa=None, context="The Normans gave their name to Normandy."):
    qa = qa if qa is not None else {"id": "q1", "question": "Who?", "answers": [
        {"text": "The Normans", "answer_start": 0}]}
    return {"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": [qa]}]}]}


# input files a user may hand over by mistake: (case, file bytes, what the error says)
BAD_FILES = {
    "no_id": (json.dumps(_squad_with({"question": "Who?", "answers": []})).encode(),
              "data[0].paragraphs[0].qas[0] has no 'id'"),
    "null_context": (json.dumps(_squad_with(context=None)).encode(),
                     "data[0].paragraphs[0].context is null"),
    "start_not_a_number": (json.dumps(_squad_with({"id": "q", "question": "Who?", "answers": [
        {"text": "The", "answer_start": "first"}]})).encode(),
        "qas[0].answers[0].answer_start is the JSON string \"first\""),
    "utf16": (json.dumps(_squad_with()).encode("utf-16"), "is UTF-16 LE text"),
    "json_lines": (b"\n".join(json.dumps(_squad_with()).encode() for _ in range(2)),
                   "one JSON value per line (JSON Lines"),
    "gzip": (__import__("gzip").compress(json.dumps(_squad_with()).encode()),
             "is gzip-compressed"),
}


@pytest.mark.parametrize("case", ["no_spm", "no_data_key", "missing_file", "not_json",
                                  "all_empty", "bad_init", "nothing_to_predict", *BAD_FILES])
def test_bad_input_fails_clearly_and_touches_nothing(case, user_dir, tmp_path, subset, capsys):
    before = snapshot(user_dir)
    args = [f"--output_dir={user_dir}", f"--cache_dir={tmp_path / 'cache'}", "--do_train",
            f"--train_file={subset}", *TINY, "--train_steps=2", "--warmup_steps=0"]
    needle = None
    if case == "no_spm":
        args = [a for a in args if not a.startswith("--spiece_model")]
        needle = "--spiece_model is required"
    elif case == "no_data_key":
        bad = write_json(tmp_path / "nodata.json", {"version": "v2.0", "articles": []})
        args.append(f"--train_file={bad}")
        needle = "no top-level 'data' list"
    elif case == "missing_file":
        args.append(f"--train_file={tmp_path / 'absent.json'}")
        needle = "does not exist"
    elif case == "not_json":
        bad = tmp_path / "broken.json"
        bad.write_text('{"data": [')
        args.append(f"--train_file={bad}")
        needle = "not valid JSON"
    elif case == "all_empty":
        bad = write_json(tmp_path / "empty.json", {"data": [{"title": "t", "paragraphs": [
            {"context": "   ", "qas": [{"id": "q1", "question": "Why?", "answers": [],
                                       "is_impossible": True}]}]}]})
        args.append(f"--train_file={bad}")
        needle = "holds no usable questions"
    elif case == "bad_init":
        from xlnet_tf.modeling import checkpoint as ckpt_lib
        from xlnet_tf.modeling.config import XLNetConfig
        from xlnet_tf.modeling.model import XLNetLMModel
        other = XLNetLMModel(XLNetConfig(n_layer=1, d_model=64, n_head=2, d_head=32,
                                         d_inner=128, n_token=2000))
        prefix = str(tmp_path / "other" / "xlnet_model.ckpt")
        ckpt_lib.save_original_checkpoint(other, prefix)
        args.append(f"--init_checkpoint={prefix}")
        needle = "does not fit the model"
    elif case == "nothing_to_predict":
        args = [f"--output_dir={user_dir}", f"--predict_file={subset}", "--do_predict", *TINY]
        needle = "nothing to predict with"
    else:
        content, needle = BAD_FILES[case]
        bad = tmp_path / f"{case}.json"
        bad.write_bytes(content)
        args.append(f"--train_file={bad}")
        needle = [needle, str(bad)]                     # the error names the file too
    code, stdout, stderr = run_cli(args, capsys)
    assert code == 2
    for n in needle if isinstance(needle, list) else [needle]:
        assert n in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr
    assert snapshot(user_dir) == before


def test_bad_offsets_long_questions_and_empty_contexts_are_reported(tmp_path, capsys):
    """A wrong answer_start is warned about and its question skipped for training (kept for
    prediction), an over-long question is truncated (and still answered), an empty context
    is skipped; the run completes and says how many of each."""
    context = "The Normans were people who gave their name to Normandy, a region in France."
    long_question = " ".join(["Which"] + ["very"] * 60 + ["people gave their name?"])
    data = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": [
            {"id": "good", "question": "Who gave their name to Normandy?",
             "answers": [{"text": "The Normans", "answer_start": 0}], "is_impossible": False},
            {"id": "bad_offset", "question": "Where is Normandy?",
             "answers": [{"text": "France", "answer_start": 3}], "is_impossible": False},
            {"id": "long", "question": long_question,
             "answers": [{"text": "Normans", "answer_start": 4}], "is_impossible": False},
            {"id": "none", "question": "Who ate the moon?", "answers": [],
             "is_impossible": True}]},
        {"context": "", "qas": [{"id": "empty", "question": "What?", "answers": [],
                                 "is_impossible": True}]}]}]}
    (tmp_path / "data").mkdir()
    path = write_json(tmp_path / "data" / "mixed.json", data)
    data_before = snapshot(tmp_path / "data")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(   # no --cache_dir: the features go to OUTPUT_DIR/data_cache
        [*TINY, f"--train_file={path}", f"--predict_file={path}", "--version_2_with_negative",
         f"--output_dir={out}", "--train_steps=3",
         "--train_batch_size=2", "--iterations=3", "--warmup_steps=0", "--do_train",
         "--do_predict"], capsys)
    assert code == 0, stderr
    assert snapshot(tmp_path / "data") == data_before       # nothing written beside the data
    cached = sorted(os.listdir(out / "data_cache"))
    assert len(cached) == 6 and not any(n.endswith(".pkl") for n in cached), cached
    train_line = next(line for line in stdout.splitlines() if line.startswith("train file"))
    assert "3 questions" in train_line
    assert "1 answer(s) whose answer_start does not point at their text" in train_line
    assert "1 question(s) with an empty context" in train_line
    assert "2 question(s) skipped" in train_line          # bad offset + empty context
    assert "1 question(s) longer than --max_query_length=32 pieces, truncated" in train_line
    assert "['long']" in train_line
    predict_line = next(line for line in stdout.splitlines() if line.startswith("predict file"))
    assert "4 questions" in predict_line
    preds = load(out / "predictions.json")
    assert sorted(preds) == ["bad_offset", "good", "long", "none"]   # the empty one skipped
