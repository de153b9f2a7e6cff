"""Tests for xlnet_tf.squad.postprocess.write_predictions on hand-built raw results."""
import json
import math
import pathlib
import random

import numpy as np
import pytest

from xlnet_tf import squad
from xlnet_tf.squad.postprocess import RawResult, compute_softmax, span_text, write_predictions

SPM = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "spiece_test.model"

# Paragraph tokens (as windows see them): "\u2581word" pieces start at the space before the word.
PARA = "Alpha beta gamma delta epsilon zeta"
#        0    5    10    16    22      30
TOK_START = [0, 5, 10, 16, 22, 30]
TOK_END = [4, 9, 15, 21, 29, 34]


def _feature(uid, example_index, span_index, first_tok, plen, max_ctx):
    window = slice(first_tok, first_tok + plen)
    return squad.InputFeatures(
        unique_id=uid, example_index=example_index, doc_span_index=span_index,
        tok_start_to_orig_index=np.array(TOK_START[window], dtype=np.int32),
        tok_end_to_orig_index=np.array(TOK_END[window], dtype=np.int32),
        token_is_max_context=np.array(max_ctx, dtype=bool),
        tokens=np.zeros(plen + 2 + 3, dtype=np.int32), query_len=2, max_seq_length=16,
        paragraph_len=plen)


def _hand_case():
    examples = [squad.SquadExample("q1", "?", PARA), squad.SquadExample("q2", "?", PARA),
                squad.SquadExample("q3", "?", PARA)]
    # q1: window A = tokens 0..3, window B = tokens 2..5 (token 2 has max context in B).
    fa = _feature(1000000000, 0, 0, 0, 4, [True, True, False, False])
    fb = _feature(1000000001, 0, 1, 2, 4, [True, True, True, True])
    # q2: one window whose candidates are all invalid. q3: no feature at all.
    fc = _feature(1000000002, 1, 0, 0, 6, [True] * 6)
    # start_n_top = 3, end_n_top = 2; flat end index = i * 2 + j.
    ra = RawResult(1000000000,
                   start_top_log_probs=[-0.5, -0.05, -0.01], start_top_index=[1, 0, 2],
                   end_top_log_probs=[-0.4, -0.2, -0.1, -0.3, -0.01, -0.02],
                   end_top_index=[2, 0,       # start 1: (1,2) ok "beta gamma" -0.9; (1,0) end < start
                                  2, 1,       # start 0: (0,2) too long (3 > 2); (0,1) ok -0.35
                                  2, 2],      # start 2: not max context in A
                   cls_logits=0.7)
    rb = RawResult(1000000001,
                   start_top_log_probs=[-0.3, -1.0, -2.0], start_top_index=[1, 2, 3],
                   end_top_log_probs=[-0.2, -0.04, -0.6, -0.01, -0.1, -0.1],
                   end_top_index=[2, 3,       # start 1: (1,2) "delta epsilon" -0.5; (1,3) last token
                                  2, 9,       # start 2: (2,2) "epsilon" -1.6; (2,9) past the paragraph
                                  3, 3],      # start 3: the last paragraph token
                   cls_logits=0.3)
    rc = RawResult(1000000002,
                   start_top_log_probs=[-0.1, -0.2, -0.3], start_top_index=[5, 7, 3],
                   end_top_log_probs=[-0.1] * 6, end_top_index=[5, 6, 8, 9, 1, 2],
                   cls_logits=-1.5)
    return examples, [fa, fb, fc], [rc, ra, rb]


def test_hand_built_results(tmp_path):
    examples, features, results = _hand_case()
    preds, nbest, null = write_predictions(examples, features, results, n_best_size=3,
                                           max_answer_length=2, start_n_top=3, end_n_top=2,
                                           output_dir=tmp_path)
    assert preds == {"q1": "Alpha beta", "q2": "", "q3": ""}
    assert [e["text"] for e in nbest["q1"]] == ["Alpha beta", "delta epsilon", "beta gamma"]
    scores = [-0.35, -0.5, -0.9]
    exps = [math.exp(s) for s in scores]
    for entry, e, s in zip(nbest["q1"], exps, scores):
        assert entry["probability"] == pytest.approx(e / sum(exps))
        assert entry["start_log_prob"] + entry["end_log_prob"] == pytest.approx(s)
    assert nbest["q2"] == [{"text": "", "probability": 1.0, "start_log_prob": -1e6, "end_log_prob": -1e6}]
    assert null == {"q1": 0.3, "q2": -1.5, "q3": 1e6}      # min over the example's windows
    # Files: official formats, same content.
    assert json.loads((tmp_path / "predictions.json").read_text()) == preds
    assert json.loads((tmp_path / "null_odds.json").read_text()) == null
    assert json.loads((tmp_path / "nbest_predictions.json").read_text())["q1"][1]["text"] == "delta epsilon"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "nbest_predictions.json", "null_odds.json", "predictions.json"]


def test_without_the_off_by_one_and_larger_nbest():
    examples, features, results = _hand_case()
    preds, nbest, _ = write_predictions(examples, features, results, n_best_size=10,
                                        max_answer_length=2, start_n_top=3, end_n_top=2,
                                        keep_paragraph_len_off_by_one=False)
    # The last window token (3 in B) is now allowed: (3,3) "zeta" appears; (1,3) is still
    # too long for max_answer_length=2.
    assert preds["q1"] == "Alpha beta"
    assert [e["text"] for e in nbest["q1"]] == ["Alpha beta", "delta epsilon", "beta gamma",
                                                 "epsilon", "zeta"]   # (3,3) twice -> once
    preds, nbest, _ = write_predictions(examples, features, results, n_best_size=10,
                                        max_answer_length=3, start_n_top=3, end_n_top=2,
                                        keep_paragraph_len_off_by_one=False)
    # (1,3) = tokens 3..5 of the paragraph, score -0.34; (0,2) in A = "Alpha beta gamma" -0.15.
    assert [e["text"] for e in nbest["q1"]] == ["Alpha beta gamma", "delta epsilon zeta", "Alpha beta",
                                                 "delta epsilon", "beta gamma", "epsilon", "zeta"]
    assert preds["q1"] == "Alpha beta gamma"


def test_bad_results():
    examples, features, results = _hand_case()
    with pytest.raises(ValueError, match="no model output for feature unique_id=1000000001"):
        write_predictions(examples, features, results[:2], 3, 2, 3, 2)
    with pytest.raises(ValueError, match=r"start_n_top=2"):
        write_predictions(examples, features, results, 3, 2, 2, 2)
    assert compute_softmax([]) == []
    assert compute_softmax([1000.0, 1000.0]) == [0.5, 0.5]


def test_gold_spans_through_write_predictions(shared_data):
    """SQuAD 2.0 subset: results that point at the gold span must give back the gold text."""
    from xlnet_tf.tokenization.tokenizer import Tokenizer
    tok = Tokenizer(SPM)
    examples = squad.read_squad_examples(shared_data / "squad" / "dev-v2.0.first2articles.json", is_training=True)
    features = squad.convert_examples_to_features(examples, tok, 128, 48, 32, is_training=True, num_workers=1)
    rng = random.Random(0)
    results, expected_null = [], {}
    reachable = set()
    for f in features:
        cls = f.cls_index
        logit = rng.uniform(-5, 5)
        ex = examples[f.example_index]
        expected_null[ex.qas_id] = min(expected_null.get(ex.qas_id, 1e6), logit)
        if f.is_impossible == 0.0:
            s, e = f.start_position, f.end_position
            if f.token_is_max_context[s] and e < f.paragraph_len - 1:
                reachable.add(f.example_index)
        else:
            s = e = cls                      # invalid: filtered out
        results.append(RawResult(f.unique_id, [-0.1, -5.0], [s, cls], [-0.1, -5.0, -5.0, -5.0],
                                 [e, cls, cls, cls], logit))
    preds, _, null = write_predictions(examples, features, results, 5, 64, 2, 2)
    assert null == expected_null
    hits = 0
    for idx, ex in enumerate(examples):
        if idx in reachable:
            assert preds[ex.qas_id] == ex.orig_answer_text.strip()
            hits += 1
        else:
            assert preds[ex.qas_id] == ""
    answerable = sum(not ex.is_impossible for ex in examples)
    assert hits >= 0.9 * answerable
    # The gold span text helper agrees with the features' own labels.
    f = next(f for f in features if f.is_impossible == 0.0)
    assert span_text(examples[f.example_index], f, f.start_position, f.end_position) == \
        examples[f.example_index].orig_answer_text.strip()
