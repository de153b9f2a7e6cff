"""Tests for xlnet_tf.squad.evaluate: hand-computed scores and threshold searches."""
import json
import logging
import pathlib
import random
import subprocess
import sys

import pytest

from xlnet_tf import cli
from xlnet_tf.squad import evaluate as se

REPO = pathlib.Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------
# Normalisation and per-answer scores
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("The Cat", "cat"),
    ("a  an the", ""),
    ("Hello, World!", "hello world"),
    ("  multiple   spaces\tand\nnewlines ", "multiple spaces and newlines"),
    ("theory anthem", "theory anthem"),         # articles only as whole words
    ("The-Cat", "thecat"),                      # punctuation deleted before article removal
    ("an apple's core", "apples core"),
    ("A.B.C.", "abc"),
    ("(the) 1,000 [a] dollars", "1000 dollars"),
    ("Ünïcode THE Straße", "ünïcode straße"),   # non-ASCII letters kept, only lower-cased
])
def test_normalize_answer(text, expected):
    assert se.normalize_answer(text) == expected


def test_exact_and_f1_hand_computed():
    assert se.compute_exact("The Denver Broncos", "denver broncos!") == 1
    assert se.compute_exact("Denver Broncos", "Broncos") == 0
    # gold [big, red, dog], pred [red, dog, barked]: overlap 2, P = R = 2/3 -> F1 = 2/3.
    assert se.compute_f1("the big red dog", "red dog barked") == pytest.approx(2.0 / 3.0)
    # gold [denver, broncos], pred [broncos]: P = 1, R = 1/2 -> F1 = 2/3.
    assert se.compute_f1("Denver Broncos", "Broncos") == pytest.approx(2.0 / 3.0)
    # Repeated tokens count with multiplicity: gold [a1, a1, b], pred [a1] -> P=1, R=1/3 -> 0.5.
    assert se.compute_f1("x x y", "x") == pytest.approx(0.5)
    # gold [x, y], pred [x, x, x]: overlap min(1,3)=1, P=1/3, R=1/2 -> F1 = 0.4.
    assert se.compute_f1("x y", "x x x") == pytest.approx(0.4)
    assert se.compute_f1("cat", "dog") == 0.0
    # Empty sides: only both-empty scores.
    assert se.compute_f1("", "") == 1.0
    assert se.compute_f1("", "something") == 0.0
    assert se.compute_f1("something", "") == 0.0
    assert se.compute_f1("the", "") == 1.0  # "the" normalises to nothing


def _dataset(questions):
    """questions: list of (qid, [gold texts]) -> a one-paragraph SQuAD data list."""
    qas = [{"id": qid, "question": "q?", "answers": [{"text": t, "answer_start": 0} for t in golds],
            "is_impossible": not golds} for qid, golds in questions]
    return [{"title": "t", "paragraphs": [{"context": "ctx", "qas": qas}]}]


def test_multiple_gold_answers_take_the_max():
    data = _dataset([("q1", ["Denver Broncos", "the Broncos"]), ("q2", ["Denver Broncos", "the Broncos"])])
    preds = {"q1": "Broncos", "q2": "Denver"}
    exact, f1, missing = se.get_raw_scores(data, preds)
    assert missing == []
    assert exact == {"q1": 1, "q2": 0}
    assert f1["q1"] == pytest.approx(1.0)          # equals the second gold answer
    assert f1["q2"] == pytest.approx(2.0 / 3.0)    # vs "Denver Broncos": P=1, R=1/2


def test_unanswerable_needs_empty_prediction_and_empty_golds_are_ignored():
    data = _dataset([("n1", []), ("n2", []), ("a1", ["the", "cat"]), ("a2", ["cat"])])
    preds = {"n1": "", "n2": "a dog", "a1": "", "a2": ""}
    exact, f1, _ = se.get_raw_scores(data, preds)
    assert exact == {"n1": 1, "n2": 0, "a1": 0, "a2": 0}   # gold "the" is dropped for a1
    assert f1 == {"n1": 1.0, "n2": 0.0, "a1": 0.0, "a2": 0.0}
    out = se.evaluate(data, preds)
    assert out["exact"] == pytest.approx(25.0)
    assert out["HasAns_total"] == 2 and out["NoAns_total"] == 2
    assert out["NoAns_exact"] == pytest.approx(50.0)
    assert out["HasAns_exact"] == pytest.approx(0.0)


# ------------------------------------------------------------------------------------------
# Threshold handling and the best-threshold search on a hand-built example
# ------------------------------------------------------------------------------------------
# q1 answerable, correct; q2 unanswerable, answered "foo"; q3 answerable, partial overlap
# (F1 2/3); q4 unanswerable, answered "bar"; q5 answerable, correct.
_HAND_Q = [("q1", ["Paris"]), ("q2", []), ("q3", ["the big red dog"]), ("q4", []), ("q5", ["1066"])]
_HAND_PREDS = {"q1": "Paris", "q2": "foo", "q3": "red dog barked", "q4": "bar", "q5": "1066"}
_HAND_NA = {"q1": 0.1, "q2": 0.9, "q3": 0.3, "q4": 0.6, "q5": 0.5}


def test_default_threshold_and_breakdown():
    out = se.evaluate(_dataset(_HAND_Q), _HAND_PREDS)
    # No odds: nobody switched to null. EM = (1+0+0+0+1)/5, F1 = (1+0+2/3+0+1)/5.
    assert list(out) == ["exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total",
                         "NoAns_exact", "NoAns_f1", "NoAns_total"]
    assert out["exact"] == pytest.approx(40.0)
    assert out["f1"] == pytest.approx(100.0 * (8.0 / 3.0) / 5.0)
    assert out["total"] == 5
    assert out["HasAns_exact"] == pytest.approx(200.0 / 3.0)
    assert out["HasAns_f1"] == pytest.approx(100.0 * (8.0 / 3.0) / 3.0)
    assert out["NoAns_exact"] == 0.0 and out["NoAns_total"] == 2


def test_best_threshold_search_hand_computed():
    data = _dataset(_HAND_Q)
    out = se.evaluate(data, _HAND_PREDS, na_probs=_HAND_NA)
    # All odds <= 1.0, so the default threshold switches nothing.
    assert out["exact"] == pytest.approx(40.0)
    # Sweep by odds: q1(.1) q3(.3) q5(.5) q4(.6) q2(.9); start = 2 (two unanswerable).
    # EM: 2 -> 3 -> 3 -> 4 -> 3 -> 2: best 4/5 at odds 0.5.
    assert out["best_exact"] == pytest.approx(80.0)
    assert out["best_exact_thresh"] == pytest.approx(0.5)
    # F1: 2 -> 3 -> 3.667 -> 4.667 -> 3.667 -> 2.667: best 4.667/5 at odds 0.5.
    assert out["best_f1"] == pytest.approx(100.0 * (14.0 / 3.0) / 5.0)
    assert out["best_f1_thresh"] == pytest.approx(0.5)
    # Applying the found threshold reproduces the best score.
    at_best = se.evaluate(data, _HAND_PREDS, na_probs=_HAND_NA, na_prob_thresh=0.5)
    assert at_best["exact"] == pytest.approx(80.0)
    assert at_best["f1"] == pytest.approx(100.0 * (14.0 / 3.0) / 5.0)
    assert at_best["NoAns_exact"] == pytest.approx(100.0)
    # XLNet's v2 fields: raw averages over answerable questions, as fractions.
    v2 = se.evaluate(data, _HAND_PREDS, na_probs=_HAND_NA, xlnet_v2=True)
    assert v2["has_ans_exact"] == pytest.approx(2.0 / 3.0)
    assert v2["has_ans_f1"] == pytest.approx((1.0 + 2.0 / 3.0 + 1.0) / 3.0)
    assert v2["best_f1"] == pytest.approx(out["best_f1"])


def test_empty_prediction_on_unanswerable_costs_nothing_in_sweep():
    data = _dataset([("a", ["x"]), ("n", [])])
    preds = {"a": "x", "n": ""}
    # n has the lowest odds but an empty answer: switching it changes nothing.
    out = se.evaluate(data, preds, na_probs={"n": 0.0, "a": 2.0})
    assert out["best_exact"] == pytest.approx(100.0)
    assert out["best_exact_thresh"] == pytest.approx(2.0)
    # Odds above the default threshold 1.0 mean "no answer": a answered-correctly question lost.
    assert out["exact"] == pytest.approx(50.0)


def test_threshold_search_matches_brute_force():
    rng = random.Random(0)
    questions, preds, na = [], {}, {}
    for i in range(60):
        qid = f"q{i}"
        has = rng.random() < 0.5
        gold = ["alpha beta gamma"] if has else []
        questions.append((qid, gold))
        preds[qid] = rng.choice(["alpha beta gamma", "beta", "delta", ""])
        na[qid] = 0.01 + rng.random() * 4  # > 0: the search's initial threshold 0.0 is below all
    data = _dataset(questions)
    out = se.evaluate(data, preds, na_probs=na)
    # Brute force over every candidate threshold (below all odds, and each odds value).
    best_em = best_f1 = -1.0
    for t in [min(na.values()) - 1.0] + sorted(na.values()):
        r = se.evaluate(data, preds, na_probs=na, na_prob_thresh=t)
        best_em, best_f1 = max(best_em, r["exact"]), max(best_f1, r["f1"])
    assert out["best_exact"] == pytest.approx(best_em)
    assert out["best_f1"] == pytest.approx(best_f1)
    at = se.evaluate(data, preds, na_probs=na, na_prob_thresh=out["best_f1_thresh"])
    assert at["f1"] == pytest.approx(best_f1)
    at = se.evaluate(data, preds, na_probs=na, na_prob_thresh=out["best_exact_thresh"])
    assert at["exact"] == pytest.approx(best_em)


# ------------------------------------------------------------------------------------------
# v1.1 data, missing predictions, bad input, command line
# ------------------------------------------------------------------------------------------
def test_v11_data_without_is_impossible():
    data = [{"title": "t", "paragraphs": [{"context": "c", "qas": [
        {"id": "a", "question": "?", "answers": [{"text": "Foo bar", "answer_start": 0}]},
        {"id": "b", "question": "?", "answers": [{"text": "baz", "answer_start": 0}]}]}]}]
    out = se.evaluate(data, {"a": "foo", "b": "baz"})
    assert "NoAns_total" not in out
    assert out["exact"] == pytest.approx(50.0)
    assert out["f1"] == pytest.approx(100.0 * (2.0 / 3.0 + 1.0) / 2.0)
    assert out["HasAns_total"] == 2


def test_missing_prediction_warned_and_wrong(caplog):
    data = _dataset([("a", ["x"]), ("b", ["y"]), ("n", [])])
    with caplog.at_level(logging.WARNING, logger="xlnet_tf"):
        out = se.evaluate(data, {"a": "x"}, na_probs={"a": 0.0})
    assert "Missing prediction for b" in caplog.text
    assert "Missing prediction for n" in caplog.text
    assert out["total"] == 3
    assert out["exact"] == pytest.approx(100.0 / 3.0)
    assert out["NoAns_exact"] == 0.0       # a missing answer is wrong even when unanswerable
    assert out["best_exact"] == pytest.approx(100.0 / 3.0)


def test_bad_inputs(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": "1.1", "articles": []}))
    with pytest.raises(ValueError, match="no top-level 'data' key"):
        se.load_dataset(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        se.load_dataset(tmp_path / "nope.json")
    data = _dataset([("a", ["x"])])
    with pytest.raises(ValueError, match="no value for 1 predicted"):
        se.evaluate(data, {"a": "x"}, na_probs={"zzz": 0.3})
    with pytest.raises(ValueError, match="must be a string"):
        se.evaluate(data, {"a": 3})


def run_cli(argv):
    return cli.run(se.define_flags, se.main, [str(a) for a in argv])


def test_command_line(tmp_path, capsys):
    """The official script's invocation: positional data and prediction files, options (long
    and short) before or after them."""
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps({"version": "v2.0", "data": _dataset(_HAND_Q)}))
    pred_file = tmp_path / "pred.json"
    pred_file.write_text(json.dumps(_HAND_PREDS))
    na_file = tmp_path / "na.json"
    na_file.write_text(json.dumps(_HAND_NA))
    assert run_cli([data_file, pred_file, "--na-prob-file", na_file]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["best_exact"] == pytest.approx(80.0) and out["total"] == 5
    assert "has_ans_exact" not in out
    out_file = tmp_path / "eval.json"
    assert run_cli(["-n", na_file, data_file, "-t", "0.5", pred_file, "--xlnet-v2",
                    "--out-file", out_file]) == 0
    written = json.loads(out_file.read_text())
    assert written["exact"] == pytest.approx(80.0)
    assert written["has_ans_exact"] == pytest.approx(2.0 / 3.0)
    # every option reached evaluate(): the threshold 0.5 switches q2 and q4 to "no answer"
    data = _dataset(_HAND_Q)
    assert written == pytest.approx(dict(se.evaluate(data, _HAND_PREDS, na_probs=_HAND_NA,
                                                     na_prob_thresh=0.5, xlnet_v2=True)))
    assert out == pytest.approx(dict(se.evaluate(data, _HAND_PREDS, na_probs=_HAND_NA)))
    assert written["HasAns_exact"] != out["HasAns_exact"] or written["NoAns_exact"] != out["NoAns_exact"]
    capsys.readouterr()
    # Swapped arguments give a clear message, not a traceback.
    assert run_cli([pred_file, data_file]) == 2
    assert "no top-level 'data' key" in capsys.readouterr().err
    # a missing or an extra argument is a usage error
    assert run_cli([data_file]) == 2
    assert "expected two arguments" in capsys.readouterr().err
    assert run_cli([data_file, pred_file, pred_file]) == 2
    assert "unexpected argument" in capsys.readouterr().err


def test_python_m_evaluate_without_tensorflow(tmp_path):
    """``python -m xlnet_tf.squad.evaluate dev.json predictions.json`` in a fresh process
    prints the official numbers and never imports TensorFlow."""
    data_file = tmp_path / "dev.json"
    data_file.write_text(json.dumps({"version": "v2.0", "data": _dataset(_HAND_Q)}))
    pred_file = tmp_path / "predictions.json"
    pred_file.write_text(json.dumps(_HAND_PREDS))
    code = ("import runpy, sys; sys.argv = ['evaluate', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('xlnet_tf.squad.evaluate', run_name='__main__')\n"
            "finally:\n    print('TF_LOADED' if 'tensorflow' in sys.modules else 'NO_TF')")
    proc = subprocess.run([sys.executable, "-c", code, str(data_file), str(pred_file)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "NO_TF"
    out = json.loads("\n".join(lines[:-1]))
    assert out == pytest.approx(dict(se.evaluate(_dataset(_HAND_Q), _HAND_PREDS)))
    plain = subprocess.run([sys.executable, "-m", "xlnet_tf.squad.evaluate", str(data_file),
                            str(pred_file)], capture_output=True, text=True, cwd=REPO,
                           timeout=120)
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout) == out


def test_command_line_names_utf16_and_json_lines_files(tmp_path, capsys):
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps({"version": "v2.0", "data": _dataset(_HAND_Q)}))
    utf16 = tmp_path / "pred16.json"
    utf16.write_text(json.dumps(_HAND_PREDS), encoding="utf-16")
    lines = tmp_path / "pred.jsonl"
    lines.write_text("".join(json.dumps({k: v}) + "\n" for k, v in _HAND_PREDS.items()))
    for pred, needle in ((utf16, "is UTF-16 LE text"), (lines, "JSON Lines")):
        assert run_cli([data_file, pred]) == 2
        err = capsys.readouterr().err
        assert needle in err and str(pred) in err and "Traceback" not in err
