"""SQuAD post-processing: beam outputs of the XLNet SQuAD head → answer texts, as the original
``run_squad.py``'s ``write_predictions``.

Per feature the head predicts (inference mode, :class:`xlnet_tf.squad.model.XLNetSquadModel`):

  start_top_log_probs  [start_n_top]               log p(start) of the k best starts
  start_top_index      [start_n_top]               their window positions
  end_top_log_probs    [start_n_top * end_n_top]   flat: entry i*end_n_top + j is the j-th
  end_top_index        [start_n_top * end_n_top]   best end given the i-th start
  cls_logits           []                          answerability logit ("null odds")

:func:`write_predictions` does, per example over all of its features (windows):

1. ``score_null = min over its features of cls_logits`` (starting from 1e6).
2. Every (start i, end j) candidate is discarded when the start or end is at or beyond
   ``paragraph_len - 1`` (this also drops the window's LAST paragraph token: an off-by-one
   of the original, kept by default — ``keep_paragraph_len_off_by_one=False`` uses
   ``>= paragraph_len`` instead), when the start token does not have its maximum context in
   this window, when ``end < start``, or when the span is longer than ``max_answer_length``.
3. Candidates sorted by ``start_log_prob + end_log_prob``; up to ``n_best_size`` distinct
   texts, each cut from the RAW paragraph as
   ``paragraph[tok_start_to_orig_index[s] : tok_end_to_orig_index[e] + 1].strip()``.
   If none survives, one empty entry with log probs -1e6.
4. n-best probabilities = softmax of the summed log probs.
5. The prediction is the top n-best text (never "no answer": the null decision is left to the
   threshold on ``null_odds``, see :mod:`xlnet_tf.squad.evaluate`); ``null_odds[qid] = score_null``.

Files (official formats, written atomically): ``predictions.json`` {qid: text},
``nbest_predictions.json`` {qid: [{text, probability, start_log_prob, end_log_prob}]},
``null_odds.json`` {qid: score_null}.
"""
import collections
import json
import math
import os

import numpy as np

from xlnet_tf.io import write_text_atomic

__all__ = ["RawResult", "span_text", "compute_softmax", "write_predictions"]

# One model output per feature (field names as the original's RawResult).
RawResult = collections.namedtuple(
    "RawResult",
    ["unique_id", "start_top_log_probs", "start_top_index", "end_top_log_probs", "end_top_index",
     "cls_logits"])

_PrelimPrediction = collections.namedtuple(
    "PrelimPrediction", ["feature_index", "start_index", "end_index", "start_log_prob", "end_log_prob"])


def span_text(example, feature, start_index, end_index):
    """Answer text for window positions [start_index, end_index] of ``feature``.

    Cuts the RAW paragraph from the first raw character of the start token to the last raw
    character of the end token and strips surrounding whitespace.
    """
    start_orig = int(feature.tok_start_to_orig_index[start_index])
    end_orig = int(feature.tok_end_to_orig_index[end_index])
    return example.paragraph_text[start_orig:end_orig + 1].strip()


def compute_softmax(scores):
    """Numerically stable softmax of a list of floats (``[]`` for an empty list)."""
    if not scores:
        return []
    max_score = max(scores)
    exps = [math.exp(s - max_score) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def _get(result, name):
    return result[name] if isinstance(result, dict) else getattr(result, name)


def _write_json(obj, path):
    """Indented JSON in the dict's own order (question order), written atomically."""
    write_text_atomic(path, json.dumps(obj, indent=4) + "\n")


def write_predictions(examples, features, results, n_best_size, max_answer_length, start_n_top,
                      end_n_top, output_dir=None, keep_paragraph_len_off_by_one=True):
    """Turns raw head outputs into answers (see the module docstring for the exact rules).

    Args:
      examples: the :class:`~xlnet_tf.squad.examples.SquadExample` list the features were
        built from (``feature.example_index`` indexes it).
      features: the :class:`~xlnet_tf.squad.features.InputFeatures` list.
      results: one :data:`RawResult` (or dict with the same keys) per feature, matched by
        ``unique_id``; arrays may be numpy or lists.
      n_best_size, max_answer_length, start_n_top, end_n_top: the original flags (5, 64, 5, 5).
      output_dir: if given, ``predictions.json``, ``nbest_predictions.json`` and
        ``null_odds.json`` are written there (atomically).
      keep_paragraph_len_off_by_one: keep the original's ``>= paragraph_len - 1`` filter.
    Returns:
      ``(all_predictions, all_nbest_json, scores_diff_json)`` ordered dicts keyed by qas_id.
    """
    if n_best_size < 1 or max_answer_length < 1 or start_n_top < 1 or end_n_top < 1:
        raise ValueError(f"n_best_size ({n_best_size}), max_answer_length ({max_answer_length}), "
                         f"start_n_top ({start_n_top}) and end_n_top ({end_n_top}) must be >= 1.")
    example_index_to_features = collections.defaultdict(list)
    for feature in features:
        example_index_to_features[feature.example_index].append(feature)
    unique_id_to_result = {}
    for result in results:
        unique_id_to_result[int(_get(result, "unique_id"))] = result
    limit_offset = 1 if keep_paragraph_len_off_by_one else 0

    all_predictions = collections.OrderedDict()
    all_nbest_json = collections.OrderedDict()
    scores_diff_json = collections.OrderedDict()
    for example_index, example in enumerate(examples):
        example_features = example_index_to_features.get(example_index, [])
        prelim = []
        score_null = 1000000.0  # large and positive: min() over the features' cls_logits
        for feature_index, feature in enumerate(example_features):
            result = unique_id_to_result.get(int(feature.unique_id))
            if result is None:
                raise ValueError(
                    f"no model output for feature unique_id={feature.unique_id} (question "
                    f"{example.qas_id}); predict over every feature (the last partial batch must "
                    f"not be dropped).")
            start_log_probs = np.asarray(_get(result, "start_top_log_probs"), dtype=np.float64)
            start_index = np.asarray(_get(result, "start_top_index"))
            end_log_probs = np.asarray(_get(result, "end_top_log_probs"), dtype=np.float64)
            end_index = np.asarray(_get(result, "end_top_index"))
            if (start_log_probs.shape != (start_n_top,) or start_index.shape != (start_n_top,)
                    or end_log_probs.shape != (start_n_top * end_n_top,)
                    or end_index.shape != (start_n_top * end_n_top,)):
                raise ValueError(
                    f"result {feature.unique_id}: expected start arrays of shape [{start_n_top}] and "
                    f"end arrays of shape [{start_n_top * end_n_top}] (start_n_top={start_n_top}, "
                    f"end_n_top={end_n_top}), got {start_log_probs.shape}/{start_index.shape} and "
                    f"{end_log_probs.shape}/{end_index.shape}.")
            score_null = min(score_null, float(_get(result, "cls_logits")))
            limit = feature.paragraph_len - limit_offset
            for i in range(start_n_top):
                s = int(start_index[i])
                for j in range(end_n_top):
                    flat = i * end_n_top + j
                    e = int(end_index[flat])
                    if s >= limit or e >= limit or s < 0 or e < 0:
                        continue
                    if not feature.token_is_max_context[s]:
                        continue
                    if e < s:
                        continue
                    if e - s + 1 > max_answer_length:
                        continue
                    prelim.append(_PrelimPrediction(feature_index, s, e, float(start_log_probs[i]),
                                                    float(end_log_probs[flat])))
        # Stable sort: equal scores keep the (feature, i, j) order, as the original.
        prelim.sort(key=lambda p: p.start_log_prob + p.end_log_prob, reverse=True)

        seen = set()
        nbest = []
        for pred in prelim:
            if len(nbest) >= n_best_size:
                break
            text = span_text(example, example_features[pred.feature_index], pred.start_index,
                             pred.end_index)
            if text in seen:
                continue
            seen.add(text)
            nbest.append((text, pred.start_log_prob, pred.end_log_prob))
        if not nbest:
            nbest.append(("", -1e6, -1e6))

        probs = compute_softmax([s + e for _, s, e in nbest])
        nbest_json = [collections.OrderedDict([("text", text), ("probability", prob),
                                               ("start_log_prob", s), ("end_log_prob", e)])
                      for (text, s, e), prob in zip(nbest, probs)]
        all_predictions[example.qas_id] = nbest[0][0]
        all_nbest_json[example.qas_id] = nbest_json
        scores_diff_json[example.qas_id] = score_null

    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
        _write_json(all_predictions, os.path.join(output_dir, "predictions.json"))
        _write_json(all_nbest_json, os.path.join(output_dir, "nbest_predictions.json"))
        _write_json(scores_diff_json, os.path.join(output_dir, "null_odds.json"))
    return all_predictions, all_nbest_json, scores_diff_json
