"""SQuAD evaluation: the official v1.1/v2.0 numbers plus XLNet's threshold search.

Written from the published description of the official SQuAD v2.0 evaluation (not from its
source):

* answers are normalised before comparison — lower-case, delete ASCII punctuation
  (``string.punctuation``), delete the articles ``a``/``an``/``the`` (whole words), collapse
  whitespace;
* EM = 1 when the normalised prediction equals a normalised gold answer; token F1 = harmonic
  mean of precision and recall of the bag-of-tokens overlap (tokens = whitespace split of the
  normalised text); both are the **maximum over the gold answers**;
* a question without answers (SQuAD 2.0 ``is_impossible``) has the single gold answer ``""``:
  only an empty prediction scores 1 on it (F1 of two empty token lists is 1, of one empty
  list 0);
* gold answers whose normalised text is empty are ignored (if all are, the gold is ``""``);
* with null odds (``--na-prob-file``) a question whose odds exceed ``na_prob_thresh``
  (default 1.0) is predicted unanswerable before scoring, and a best-threshold search adds
  ``best_exact``/``best_exact_thresh``/``best_f1``/``best_f1_thresh``.

Output keys (all scores are percentages): ``exact``, ``f1``, ``total``, then
``HasAns_exact``/``HasAns_f1``/``HasAns_total`` when the data has answerable questions,
``NoAns_*`` when it has unanswerable ones, and the ``best_*`` keys when null odds are given.

XLNet's ``run_squad.py`` reports a variant of the threshold search,
:func:`find_all_best_thresh_v2`, which also stores ``has_ans_exact``/``has_ans_f1``: the raw
(un-thresholded) averages over answerable questions as **fractions** (0..1, not ×100).
XLNet writes ``null_odds.json`` with the answerability logit (``score_null``), which is not a
probability, so with the default threshold 1.0 every question whose logit exceeds 1 counts
as "no answer" in ``exact``/``f1`` — that is the official script's behaviour on such a file.

Missing predictions. The official v2.0 script skips questions without a prediction while
scoring and then fails on them when it splits HasAns/NoAns. Here a question without a
prediction is logged (``Missing prediction for <id>``, as the official script prints) and
counted as wrong under every threshold (EM = F1 = 0, never switched to "no answer"), and it
stays in every denominator. When every question has a prediction the numbers equal the
official script's.

Command line (same arguments as the official ``evaluate-v2.0.py``)::

    python -m xlnet_tf.squad.evaluate DATA.json PREDICTIONS.json \\
        [--na-prob-file NULL_ODDS.json] [--na-prob-thresh 1.0] [--out-file F]

prints the JSON (or writes it to ``--out-file``, atomically). ``--xlnet-v2`` also adds the
``has_ans_exact``/``has_ans_f1`` fields of :func:`find_all_best_thresh_v2` (needs null odds).
"""
import collections
import json
import logging
import math
import os
import re
import string

from absl import flags

from xlnet_tf import cli
from xlnet_tf.io import read_json, write_text_atomic

log = logging.getLogger("xlnet_tf")

__all__ = [
    "normalize_answer",
    "get_tokens",
    "compute_exact",
    "compute_f1",
    "load_dataset",
    "make_qid_to_has_ans",
    "get_raw_scores",
    "apply_no_ans_threshold",
    "make_eval_dict",
    "find_best_thresh",
    "find_all_best_thresh",
    "find_best_thresh_v2",
    "find_all_best_thresh_v2",
    "evaluate",
    "evaluate_files",
]

_PUNCTUATION = frozenset(string.punctuation)
# Whole-word English articles; \b is Unicode-aware on str patterns.
_ARTICLES_RE = re.compile(r"\b(?:a|an|the)\b")


# ------------------------------------------------------------------------------------------
# Answer comparison
# ------------------------------------------------------------------------------------------
def normalize_answer(text):
    """Lower-cases, drops ASCII punctuation, drops the articles a/an/the, collapses spaces.

    The steps run in that order, so ``"The-Cat"`` → ``"thecat"`` (the hyphen is deleted, not
    replaced, before articles are looked for) while ``"the cat"`` → ``"cat"``.
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES_RE.sub(" ", text)
    return " ".join(text.split())


def get_tokens(text):
    """Whitespace tokens of the normalised text (``[]`` for an empty/None answer)."""
    if not text:
        return []
    return normalize_answer(text).split()


def compute_exact(gold, pred):
    """1 when the normalised texts are equal, else 0."""
    return int(normalize_answer(gold) == normalize_answer(pred))


def compute_f1(gold, pred):
    """Token-level F1 of one prediction against one gold answer.

    If either side has no tokens the score is 1 only when both have none (this is how an
    empty prediction gets credit on an unanswerable question).
    """
    gold_toks = get_tokens(gold)
    pred_toks = get_tokens(pred)
    if not gold_toks or not pred_toks:
        return float(gold_toks == pred_toks)
    overlap = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(overlap.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_toks)
    recall = num_same / len(gold_toks)
    return 2.0 * precision * recall / (precision + recall)


# ------------------------------------------------------------------------------------------
# Data set
# ------------------------------------------------------------------------------------------
def _iter_qas(dataset, source="the data set"):
    """Yields every question dict of a SQuAD ``data`` list, checking the structure."""
    for a_i, article in enumerate(dataset):
        if not isinstance(article, dict) or "paragraphs" not in article:
            raise ValueError(f"{source}: data[{a_i}] has no 'paragraphs' list; this is not SQuAD JSON.")
        for p_i, paragraph in enumerate(article["paragraphs"]):
            if "qas" not in paragraph:
                raise ValueError(f"{source}: data[{a_i}].paragraphs[{p_i}] has no 'qas' list.")
            for qa in paragraph["qas"]:
                if "id" not in qa or "answers" not in qa:
                    raise ValueError(
                        f"{source}: a question in data[{a_i}].paragraphs[{p_i}] lacks 'id' or "
                        f"'answers' (keys found: {sorted(qa)}).")
                yield qa


def load_dataset(path):
    """Reads a SQuAD v1.1/v2.0 JSON file and returns its ``data`` list."""
    path = os.fspath(path)
    obj = read_json(path, what="SQuAD data file")
    if "data" not in obj:
        keys = sorted(obj)[:10]
        raise ValueError(
            f"SQuAD data file {path!r} has no top-level 'data' key (found {keys}). Pass the "
            f"official SQuAD JSON (e.g. dev-v2.0.json), not a predictions file.")
    return obj["data"]


def _load_json_dict(path, what):
    """A ``{question_id: value}`` JSON file (predictions or null odds)."""
    path = os.fspath(path)
    try:
        obj = read_json(path, what=f"{what} file")
    except ValueError as e:
        raise ValueError(f"{e} It must hold a JSON object {{question_id: value}}.") from None
    if isinstance(obj.get("data"), list):
        raise ValueError(f"{what} file {path!r} looks like a SQuAD data file (it has 'data'); "
                         f"check the order of the arguments.")
    return obj


def make_qid_to_has_ans(dataset):
    """``{qid: True if the question has at least one gold answer}`` (v1.1: all True)."""
    return {qa["id"]: bool(qa["answers"]) for qa in _iter_qas(dataset)}


# ------------------------------------------------------------------------------------------
# Scoring
# ------------------------------------------------------------------------------------------
def get_raw_scores(dataset, preds):
    """Per-question EM and F1 (max over the gold answers) before any null threshold.

    Returns ``(exact_scores, f1_scores, missing)``; questions without a prediction are absent
    from the score dicts and listed in ``missing`` (each one is logged once).
    """
    exact_scores, f1_scores, missing = {}, {}, []
    for qa in _iter_qas(dataset):
        qid = qa["id"]
        gold_answers = [a["text"] for a in qa["answers"] if normalize_answer(a["text"])]
        if not gold_answers:
            gold_answers = [""]  # Unanswerable: only an empty prediction is right.
        if qid not in preds:
            log.warning("Missing prediction for %s", qid)
            missing.append(qid)
            continue
        pred = preds[qid]
        if not isinstance(pred, str):
            raise ValueError(f"prediction for question {qid!r} must be a string, got {pred!r}.")
        exact_scores[qid] = max(compute_exact(g, pred) for g in gold_answers)
        f1_scores[qid] = max(compute_f1(g, pred) for g in gold_answers)
    return exact_scores, f1_scores, missing


def apply_no_ans_threshold(scores, na_probs, qid_to_has_ans, na_prob_thresh):
    """Scores after predicting "no answer" for every question with ``na_prob > thresh``.

    A question switched to "no answer" scores 1 if it is unanswerable, else 0.
    """
    new_scores = {}
    for qid, s in scores.items():
        if na_probs[qid] > na_prob_thresh:
            new_scores[qid] = float(not qid_to_has_ans[qid])
        else:
            new_scores[qid] = s
    return new_scores


def make_eval_dict(exact_scores, f1_scores, qid_list):
    """``{exact, f1, total}`` as percentages over ``qid_list`` (absent ids count as 0)."""
    total = len(qid_list)
    if total == 0:
        return collections.OrderedDict([("exact", 0.0), ("f1", 0.0), ("total", 0)])
    return collections.OrderedDict([
        ("exact", 100.0 * sum(exact_scores.get(k, 0) for k in qid_list) / total),
        ("f1", 100.0 * sum(f1_scores.get(k, 0) for k in qid_list) / total),
        ("total", total),
    ])


def _merge_eval(main_eval, new_eval, prefix):
    for k, v in new_eval.items():
        main_eval[f"{prefix}_{k}"] = v


def _thresh_sweep(preds, scores, na_probs, qid_to_has_ans):
    """The best total score over all null thresholds (shared by v1 and v2 searches).

    Start with every question predicted "no answer" (score = number of unanswerable
    questions that have a prediction). Walk the questions by increasing null odds; letting a
    question answer gains its score if it is answerable, and loses 1 if it is unanswerable
    and the prediction is non-empty (an empty prediction changes nothing). Keep the best
    cumulative score (strict improvements only) and the null odds where it was reached.
    If the all-null start is never beaten the reported threshold is 0.0 (as the official
    script), which means "all null" only when every odds value is positive.
    Returns ``(best_score_count, best_thresh)``.
    """
    cur_score = sum(1 for qid, has in qid_to_has_ans.items() if not has and qid in scores)
    best_score, best_thresh = cur_score, 0.0
    # sorted() is stable: equal odds keep the order of the na_probs dict, as the original.
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if qid_to_has_ans[qid]:
            diff = scores[qid]
        else:
            diff = -1 if preds[qid] else 0
        cur_score += diff
        if cur_score > best_score:
            best_score, best_thresh = cur_score, na_probs[qid]
    return best_score, best_thresh


def find_best_thresh(preds, scores, na_probs, qid_to_has_ans):
    """Official best-threshold search: ``(best score in %, threshold)``.

    The denominator is the number of questions (with or without a prediction).
    """
    best_score, best_thresh = _thresh_sweep(preds, scores, na_probs, qid_to_has_ans)
    return 100.0 * best_score / max(len(qid_to_has_ans), 1), best_thresh


def find_all_best_thresh(main_eval, preds, exact_raw, f1_raw, na_probs, qid_to_has_ans):
    """Adds ``best_exact``, ``best_exact_thresh``, ``best_f1``, ``best_f1_thresh`` to main_eval."""
    best_exact, exact_thresh = find_best_thresh(preds, exact_raw, na_probs, qid_to_has_ans)
    best_f1, f1_thresh = find_best_thresh(preds, f1_raw, na_probs, qid_to_has_ans)
    main_eval["best_exact"] = best_exact
    main_eval["best_exact_thresh"] = exact_thresh
    main_eval["best_f1"] = best_f1
    main_eval["best_f1_thresh"] = f1_thresh
    return main_eval


def find_best_thresh_v2(preds, scores, na_probs, qid_to_has_ans):
    """XLNet's variant: ``(best score in %, threshold, raw has-answer average as a fraction)``.

    The third value is the mean raw score over the answerable questions that appear in
    ``na_probs`` (a question without a prediction contributes 0), NOT multiplied by 100.
    It is 0.0 when there are no answerable questions (the original divided by zero).
    """
    best_score, best_thresh = find_best_thresh(preds, scores, na_probs, qid_to_has_ans)
    has_ans_qids = [qid for qid in na_probs if qid_to_has_ans.get(qid, False)]
    has_ans_score = sum(scores.get(qid, 0) for qid in has_ans_qids)
    has_ans_avg = has_ans_score / len(has_ans_qids) if has_ans_qids else 0.0
    return best_score, best_thresh, has_ans_avg


def find_all_best_thresh_v2(main_eval, preds, exact_raw, f1_raw, na_probs, qid_to_has_ans):
    """:func:`find_all_best_thresh` plus ``has_ans_exact`` and ``has_ans_f1`` (fractions)."""
    best_exact, exact_thresh, has_ans_exact = find_best_thresh_v2(preds, exact_raw, na_probs, qid_to_has_ans)
    best_f1, f1_thresh, has_ans_f1 = find_best_thresh_v2(preds, f1_raw, na_probs, qid_to_has_ans)
    main_eval["best_exact"] = best_exact
    main_eval["best_exact_thresh"] = exact_thresh
    main_eval["best_f1"] = best_f1
    main_eval["best_f1_thresh"] = f1_thresh
    main_eval["has_ans_exact"] = has_ans_exact
    main_eval["has_ans_f1"] = has_ans_f1
    return main_eval


def _check_na_probs(na_probs, exact_raw, source):
    lacking = [qid for qid in exact_raw if qid not in na_probs]
    if lacking:
        raise ValueError(
            f"null odds {source} has no value for {len(lacking)} predicted question(s) "
            f"(e.g. {lacking[:3]}); pass the null_odds.json written with these predictions.")
    bad = [qid for qid in exact_raw if not isinstance(na_probs[qid], (int, float))
           or isinstance(na_probs[qid], bool) or math.isnan(na_probs[qid])]
    if bad:
        raise ValueError(f"null odds {source} has non-numeric values for {bad[:3]}.")


def evaluate(dataset, preds, na_probs=None, na_prob_thresh=1.0, xlnet_v2=False,
             na_probs_source="(in memory)"):
    """The official SQuAD v2.0 evaluation dict (works for v1.1 data as well).

    Args:
      dataset: the ``data`` list of a SQuAD JSON file.
      preds: ``{question_id: predicted answer text}`` ("" = no answer).
      na_probs: optional ``{question_id: null odds}``; without it every question counts as
        answered (odds 0.0) and no threshold search is made.
      na_prob_thresh: predict "no answer" when odds > this.
      xlnet_v2: use :func:`find_all_best_thresh_v2` (adds ``has_ans_exact``/``has_ans_f1``).
    Returns:
      an ``OrderedDict`` with the official keys (see the module docstring).
    """
    if not isinstance(preds, dict):
        raise ValueError(f"predictions must be a dict {{question_id: text}}, got {type(preds).__name__}.")
    qid_to_has_ans = make_qid_to_has_ans(dataset)
    has_ans_qids = [k for k, v in qid_to_has_ans.items() if v]
    no_ans_qids = [k for k, v in qid_to_has_ans.items() if not v]
    exact_raw, f1_raw, missing = get_raw_scores(dataset, preds)
    if missing:
        log.warning("%d of %d questions have no prediction; they count as wrong.",
                       len(missing), len(qid_to_has_ans))
    have_na_probs = na_probs is not None
    if have_na_probs:
        _check_na_probs(na_probs, exact_raw, na_probs_source)
    else:
        na_probs = {k: 0.0 for k in exact_raw}
    exact_thresh = apply_no_ans_threshold(exact_raw, na_probs, qid_to_has_ans, na_prob_thresh)
    f1_thresh = apply_no_ans_threshold(f1_raw, na_probs, qid_to_has_ans, na_prob_thresh)
    out_eval = make_eval_dict(exact_thresh, f1_thresh, list(qid_to_has_ans))
    if has_ans_qids:
        _merge_eval(out_eval, make_eval_dict(exact_thresh, f1_thresh, has_ans_qids), "HasAns")
    if no_ans_qids:
        _merge_eval(out_eval, make_eval_dict(exact_thresh, f1_thresh, no_ans_qids), "NoAns")
    if have_na_probs:
        search = find_all_best_thresh_v2 if xlnet_v2 else find_all_best_thresh
        search(out_eval, preds, exact_raw, f1_raw, na_probs, qid_to_has_ans)
    elif xlnet_v2:
        raise ValueError("xlnet_v2 threshold search needs null odds (--na-prob-file).")
    return out_eval


def evaluate_files(data_file, pred_file, na_prob_file=None, na_prob_thresh=1.0, xlnet_v2=False):
    """:func:`evaluate` on files (data JSON, predictions JSON, optional null-odds JSON)."""
    dataset = load_dataset(data_file)
    preds = _load_json_dict(pred_file, "predictions")
    na_probs = _load_json_dict(na_prob_file, "null odds") if na_prob_file else None
    return evaluate(dataset, preds, na_probs=na_probs, na_prob_thresh=na_prob_thresh,
                    xlnet_v2=xlnet_v2, na_probs_source=repr(os.fspath(na_prob_file)) if na_prob_file else "")


def define_flags(fv):
    """The official ``evaluate-v2.0.py`` arguments: ``data.json pred.json`` (positional) and
    its options, with their short names."""
    flags.DEFINE_string("data_file", None, "SQuAD JSON with the gold answers (the first "
                        "positional argument).", flag_values=fv)
    flags.DEFINE_string("pred_file", None, "Model predictions {id: text} (the second "
                        "positional argument).", flag_values=fv)
    flags.DEFINE_string("out-file", None, "Write accuracy metrics to this file (default: "
                        "stdout).", short_name="o", flag_values=fv)
    flags.DEFINE_string("na-prob-file", None, "Model estimates of probability (odds) of no "
                        "answer.", short_name="n", flag_values=fv)
    flags.DEFINE_float("na-prob-thresh", 1.0, 'Predict "" if no-answer probability exceeds '
                       "this.", short_name="t", flag_values=fv)
    flags.DEFINE_bool("xlnet-v2", False, "Use XLNet's find_all_best_thresh_v2 (adds "
                      "has_ans_exact/has_ans_f1).", flag_values=fv)


def main(F):
    if not (F.data_file and F.pred_file):
        cli.fail("expected two arguments: data.json pred.json")
    cli.setup_logging()
    if F["out-file"].value:
        from xlnet_tf.finetuning import check_writable_file
        check_writable_file(F["out-file"].value, "out-file")
    out_eval = evaluate_files(F.data_file, F.pred_file, F["na-prob-file"].value,
                              F["na-prob-thresh"].value, xlnet_v2=F["xlnet-v2"].value)
    out_file = F["out-file"].value
    if out_file:
        write_text_atomic(out_file, json.dumps(out_eval))
    else:
        print(json.dumps(out_eval, indent=2))
    return 0


define_flags.positional = ("data_file", "pred_file")

def entry():
    """The console command (pyproject.toml's [project.scripts])."""
    cli.main_entry(define_flags, main, doc=__doc__, uses_tensorflow=False)


if __name__ == "__main__":
    entry()
