"""Tests for the SQuAD input pipeline (xlnet_tf.squad.examples, .alignment, .features,
.records): alignment, features layout, labels, caching, bad input.

The alignment is checked against a literal cell-by-cell transcription of the original's banded LCS
(dict back-pointers, ``preprocess_text`` per cell), and end to end by a round trip over all
10,570 questions of SQuAD 1.1 dev: gold character span → training token positions → text cut
from the raw paragraph by the post-processing path.
"""
import json
import logging
import pathlib
import random
import re
import time

import numpy as np
import pytest

from xlnet_tf.squad import evaluate as squad_eval
from xlnet_tf.tokenization import tokenizer as tok_lib
from xlnet_tf import squad
from xlnet_tf.squad import alignment
from xlnet_tf.squad import features as squad_features
from xlnet_tf.squad import records as squad_records
from xlnet_tf.squad.postprocess import span_text

SPM = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "spiece_test.model"


@pytest.fixture(scope="module")
def tokenizer():
    return tok_lib.Tokenizer(SPM)


# ------------------------------------------------------------------------------------------
# Reference: the original's banded LCS, transcribed literally (slow).
# ------------------------------------------------------------------------------------------
def reference_align(raw, tok, lower=False):
    n, m = len(raw), len(tok)
    f, g = {}, {}

    def lcs(max_dist):
        f.clear()
        g.clear()
        for i in range(n):
            for j in range(i - max_dist, i + max_dist):
                if j >= m or j < 0:
                    continue
                if i > 0:
                    g[(i, j)] = 0
                    f[(i, j)] = f.get((i - 1, j), 0)
                if j > 0 and f.get((i, j - 1), 0) > f.get((i, j), 0):
                    g[(i, j)] = 1
                    f[(i, j)] = f.get((i, j - 1), 0)
                f_prev = f.get((i - 1, j - 1), 0) if i > 0 and j > 0 else 0
                if (tok_lib.preprocess_text(raw[i], lower=lower, remove_space=False) == tok[j]
                        and f_prev + 1 > f.get((i, j), 0)):
                    g[(i, j)] = 2
                    f[(i, j)] = f_prev + 1

    max_dist = abs(n - m) + 5
    for _ in range(2):
        lcs(max_dist)
        if f.get((n - 1, m - 1), 0) > 0.8 * n:
            break
        max_dist *= 2
    orig_to_chartok, chartok_to_orig = [None] * n, [None] * m
    i, j = n - 1, m - 1
    while i >= 0 and j >= 0:
        if (i, j) not in g:
            break
        if g[(i, j)] == 2:
            orig_to_chartok[i], chartok_to_orig[j] = j, i
            i, j = i - 1, j - 1
        elif g[(i, j)] == 1:
            j -= 1
        else:
            i -= 1
    score = f.get((n - 1, m - 1), 0)
    if all(v is None for v in orig_to_chartok) or score < 0.8 * n:
        return None
    return orig_to_chartok, chartok_to_orig, score


def _tok_cat_text(tokenizer, raw):
    pieces = tokenizer.encode_pieces(raw)
    return "".join(pieces).replace(tok_lib.SPIECE_UNDERLINE, " ")


HAND_PAIRS = [
    ("Hello world", " Hello world"),
    ("a  b   c", " a b c"),                                   # collapsed whitespace
    ("Caf\u00e9 na\u00efve", " Cafe naive"),                  # accents dropped
    ("the \ufb01sh \u00bd", " the fish 1\u20442"),             # NFKD ligature and fraction
    ("He said ``hi'' twice", ' He said "hi" twice'),          # LaTeX quotes
    ("aaaa aaaa", " aaa aaaaa"),                              # ambiguous ties
    ("XXXXXXXXabcdefghijklmnopqrstuvwxyz0123456789",          # needs the doubled band
     "abcdefghijklmnopqrstuvwxyz0123456789YYYYYYYY"),
    ("completely different", " qqqqqqqq zzzzzzzzzz"),         # mismatch
    ("  leading and trailing  ", " leading and trailing"),
]


@pytest.mark.parametrize("raw,tok", HAND_PAIRS)
def test_align_chars_matches_reference_on_hand_pairs(raw, tok, monkeypatch):
    expected = reference_align(raw, tok)
    assert squad.align_chars(raw, tok) == expected
    monkeypatch.setattr(alignment, "_NUMPY_BAND", 0)          # force the numpy row version
    assert squad.align_chars(raw, tok) == expected


def test_align_chars_hand_values():
    # Doubled band: raw[8 + k] aligns to tok[k] (offset 8 > first band 5, < doubled band 10).
    o2t, t2o, score = squad.align_chars("XXXXXXXXabcdefghijklmnopqrstuvwxyz0123456789",
                                     "abcdefghijklmnopqrstuvwxyz0123456789YYYYYYYY")
    assert score == 36
    assert o2t[:8] == [None] * 8 and o2t[8:] == list(range(36))
    assert t2o[36:] == [None] * 8
    # Accent stripped char matches; the extra leading tok space is unaligned.
    o2t, t2o, _ = squad.align_chars("Caf\u00e9", " Cafe")
    assert o2t == [1, 2, 3, 4] and t2o == [None, 0, 1, 2, 3]
    # NFKD expansion: the ligature (1 raw char -> "fi") cannot match one tok char.
    o2t, t2o, _ = squad.align_chars("a \ufb01sh", " a fish")
    assert o2t == [1, 2, None, 5, 6]
    assert squad.align_chars("completely different", " qqqqqqqq zzzzzzzzzz") is None


def test_align_chars_matches_reference_on_real_paragraphs(shared_data, tokenizer, monkeypatch):
    with open(shared_data / "squad" / "dev-v1.1.json", encoding="utf-8") as f:
        data = json.load(f)["data"]
    paragraphs = [p["context"] for a in data for p in a["paragraphs"]]
    pairs = [(p, _tok_cat_text(tokenizer, p)) for p in paragraphs]
    unusual = [pr for pr in pairs if len(pr[1]) - len(pr[0]) != 1]   # NFKD, spacing, ...
    sample = random.Random(0).sample(pairs, 25)
    short = sorted(unusual, key=lambda pr: len(pr[0]))[:20] + sample
    assert len(unusual) >= 10
    for raw, tok in short:
        expected = reference_align(raw, tok)
        assert expected is not None
        assert squad.align_chars(raw, tok) == expected
    monkeypatch.setattr(alignment, "_NUMPY_BAND", 0)
    for raw, tok in short[:8]:
        assert squad.align_chars(raw, tok) == reference_align(raw, tok)


def test_convert_index_rules():
    idx = [None, 3, None, None, 7, None]
    assert squad.convert_index(idx, 1) == 3
    # only rear known (pos 0): start -> 0 (index[rear]=3 >= 1), end -> 3 - 1
    assert squad.convert_index(idx, 0, is_start=True) == 0
    assert squad.convert_index(idx, 0, is_start=False) == 2
    assert squad.convert_index([None, 0, 5], 0, is_start=False) == 0
    # both known with a gap (3 .. 7): start -> 4, end -> 6
    assert squad.convert_index(idx, 2, is_start=True) == 4
    assert squad.convert_index(idx, 3, is_start=False) == 6
    # both known without a gap: start -> rear value, end -> front value
    assert squad.convert_index([2, None, 3], 1, is_start=True) == 3
    assert squad.convert_index([2, None, 3], 1, is_start=False) == 2
    # only front known: with M and front < M-1: start -> front+1, end -> M-1; else front
    assert squad.convert_index(idx, 5, M=10, is_start=True) == 8
    assert squad.convert_index(idx, 5, M=10, is_start=False) == 9
    assert squad.convert_index(idx, 5, M=8, is_start=True) == 7
    assert squad.convert_index(idx, 5, is_start=True) == 7


# ------------------------------------------------------------------------------------------
# Feature layout on a hand-built example
# ------------------------------------------------------------------------------------------
WORDS = ("the of and to in was is for as by with on at from that his were an are which "
         "this be or first").split()          # 24 words, each one piece in the test model
assert len(WORDS) == 24


def _hand_example(question="Which of the following was the first new thing in this city?"):
    paragraph = " ".join(WORDS)
    start = paragraph.index(" as by ") + 1      # words 8..9
    return squad.SquadExample("h1", question, paragraph, orig_answer_text="as by",
                           start_position=start, is_impossible=False), paragraph


def test_features_layout_windows_and_labels(tokenizer):
    example, paragraph = _hand_example()
    para_ids = [tokenizer.piece_to_id("\u2581" + w) for w in WORDS]
    assert 0 not in para_ids
    q_ids = tokenizer.encode_ids(example.question_text)
    assert len(q_ids) > 4
    q_ids = q_ids[:4]                          # max_query_length = 4
    feats = squad.convert_examples_to_features([example], tokenizer, max_seq_length=20, doc_stride=5,
                                            max_query_length=4, is_training=True, num_workers=1)
    # max_tokens_for_doc = 20 - 4 - 3 = 13; 24 tokens, stride 5: starts 0, 5, 10, 15.
    assert [(f.doc_span_index, f.paragraph_len) for f in feats] == [(0, 13), (1, 13), (2, 13), (3, 9)]
    assert [f.unique_id for f in feats] == [1000000000, 1000000001, 1000000002, 1000000003]
    assert all(f.example_index == 0 for f in feats)
    starts = [0, 5, 10, 15]
    for f, s in zip(feats, starts):
        p = f.paragraph_len
        expect_ids = para_ids[s:s + p] + [tok_lib.SEP_ID] + q_ids + [tok_lib.SEP_ID, tok_lib.CLS_ID]
        pad = 20 - len(expect_ids)
        assert f.input_ids.tolist() == expect_ids + [0] * pad
        assert f.input_mask.tolist() == [0.0] * len(expect_ids) + [1.0] * pad
        assert f.seg_ids.tolist() == [0] * (p + 1) + [1] * 5 + [2] + [3] * pad
        assert f.p_mask.tolist() == [0.0] * p + [1.0] * 6 + [0.0] + [1.0] * pad
        assert f.cls_index == p + 6 and f.input_ids[f.cls_index] == tok_lib.CLS_ID
        # Raw character span of every window token. A piece "▁word" starts at the space
        # before the word (the tok-text space aligns to it); the first piece's "▁" has no
        # raw counterpart, so convert_index maps it to 0. Ends are the word's last char.
        offs, pos = [], 0
        for k, w in enumerate(WORDS):
            offs.append((pos - 1 if k else 0, pos + len(w) - 1))
            pos += len(w) + 1
        assert f.tok_start_to_orig_index.tolist() == [o[0] for o in offs[s:s + p]]
        assert f.tok_end_to_orig_index.tolist() == [o[1] for o in offs[s:s + p]]
    # Answer = tokens 8..9: inside windows 0 (8..9) and 1 (3..4); outside 2 and 3 -> cls.
    assert [(f.start_position, f.end_position, f.is_impossible) for f in feats] == [
        (8, 9, 0.0), (3, 4, 0.0), (19, 19, 1.0), (15, 15, 1.0)]
    # Max context, score = min(left, right) + 0.01 * length (first span wins ties):
    # token 7: span0 min(7,5)=5 vs span1 min(2,10)=2 -> span0; token 8: 4 vs 3 -> span0;
    # token 9: 3 vs 4 -> span1; token 12: 0 vs 5 vs min(2,10)=2 -> span1;
    # token 13: span1 min(8,4)=4, span2 min(3,9)=3 -> span1; 14: 3 vs 4 -> span2;
    # token 17: span1 0, span2 min(7,5)=5, span3 min(2,6)=2 -> span2; 18: span2 4 vs span3 3;
    # token 19: span2 3 + 0.13 vs span3 4 + 0.09 -> span3.
    owner = {}
    for f, s in zip(feats, starts):
        for k, flag in enumerate(f.token_is_max_context.tolist()):
            if flag:
                assert s + k not in owner
                owner[s + k] = f.doc_span_index
    assert sorted(owner) == list(range(24))
    expected_owner = [0] * 9 + [1] * 5 + [2] * 5 + [3] * 5
    assert [owner[t] for t in range(24)] == expected_owner


def test_features_prediction_mode_and_impossible(tokenizer):
    example, _ = _hand_example()
    pred = squad.convert_examples_to_features([example], tokenizer, 20, 5, 4, is_training=False, num_workers=1)
    assert all(f.start_position is None and f.is_impossible is None for f in pred)
    impossible = squad.SquadExample("h2", "what?", " ".join(WORDS), "", -1, is_impossible=True)
    feats = squad.convert_examples_to_features([impossible], tokenizer, 64, 128, 16, is_training=True,
                                            num_workers=1)
    assert len(feats) == 1
    f = feats[0]
    assert f.start_position == f.end_position == f.cls_index and f.is_impossible == 1.0
    with pytest.raises(ValueError, match="max_seq_length"):
        squad.convert_examples_to_features([example], tokenizer, 10, 5, 8, is_training=False)


# ------------------------------------------------------------------------------------------
# Round trip on all of SQuAD 1.1 dev
# ------------------------------------------------------------------------------------------
def test_round_trip_dev_v11(shared_data, tokenizer):
    path = shared_data / "squad" / "dev-v1.1.json"
    t0 = time.time()
    examples = squad.read_squad_examples(path, is_training=True)
    assert len(examples) == 10570 and examples.num_bad_offsets == 0
    feats = squad.convert_examples_to_features(examples, tokenizer, max_seq_length=512, doc_stride=128,
                                            max_query_length=64, is_training=True, num_workers=2)
    elapsed = time.time() - t0
    by_example = {}
    for f in feats:
        if f.is_impossible == 0.0 and f.example_index not in by_example:
            by_example[f.example_index] = f
    checked, exact, official_em, failures = 0, 0, 0, []
    for idx, ex in enumerate(examples):
        f = by_example.get(idx)
        if f is None:       # answer crosses every window boundary (or example dropped)
            continue
        checked += 1
        text = span_text(ex, f, f.start_position, f.end_position)
        if text == ex.orig_answer_text.strip():
            exact += 1
        else:
            failures.append((ex.qas_id, ex.orig_answer_text, text))
        official_em += max(squad_eval.compute_exact(g, text) for g, _ in ex.answers)
    rate = exact / checked
    print(f"\nround trip: {len(examples)} questions, {len(feats)} features, {checked} with the answer "
          f"inside one window, {len(feats.dropped_qas_ids)} dropped; exact string match "
          f"{exact}/{checked} = {100 * rate:.3f}%; official EM (all golds) "
          f"{100 * official_em / checked:.3f}%; read+convert {elapsed:.1f}s")
    for qid, gold, got in failures:
        print(f"  FAIL {qid}: gold={gold!r} got={got!r}")
    assert checked >= 10500
    assert rate >= 0.99


# ------------------------------------------------------------------------------------------
# SQuAD 2.0 reading and training labels
# ------------------------------------------------------------------------------------------
def test_v2_training_labels(shared_data, tokenizer):
    path = shared_data / "squad" / "dev-v2.0.first2articles.json"
    examples = squad.read_squad_examples(path, is_training=True)
    assert len(examples) == 626
    n_imp = sum(ex.is_impossible for ex in examples)
    assert n_imp == 333
    assert all(ex.start_position == -1 and ex.orig_answer_text == "" for ex in examples if ex.is_impossible)
    feats = squad.convert_examples_to_features(examples, tokenizer, 256, 64, 32, is_training=True, num_workers=1)
    for f in feats:
        ex = examples[f.example_index]
        assert 0 <= f.start_position <= f.end_position < 256
        if ex.is_impossible:
            assert f.is_impossible == 1.0 and f.start_position == f.cls_index
        elif f.is_impossible == 0.0:
            assert f.end_position < f.paragraph_len
            assert span_text(ex, f, f.start_position, f.end_position) == ex.orig_answer_text.strip()
        else:
            assert f.start_position == f.end_position == f.cls_index
    # Every answerable example has at least one window containing its answer here.
    has = {f.example_index for f in feats if f.is_impossible == 0.0}
    assert len(has) == 626 - n_imp


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------
def _write_json(path, obj):
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def test_bad_offsets_warned_skipped_counted(tmp_path, caplog):
    ctx = "The quick brown fox jumps over the lazy dog."
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": ctx, "qas": [
        {"id": "ok", "question": "What jumps?", "answers": [{"text": "brown fox", "answer_start": 10}]},
        {"id": "bad", "question": "Over what?", "answers": [{"text": "lazy dog", "answer_start": 3}]},
        {"id": "ok2", "question": "Which dog?", "answers": [{"text": "lazy", "answer_start": 35}]},
    ]}]}]}
    path = _write_json(tmp_path / "d.json", data)
    with caplog.at_level(logging.WARNING, logger="xlnet_tf"):
        ex = squad.read_squad_examples(path, is_training=True)
    assert [e.qas_id for e in ex] == ["ok", "ok2"]
    assert ex.num_bad_offsets == 1 and ex.skipped_qas_ids == ("bad",)
    assert "question bad" in caplog.text and "answer_start=3" in caplog.text
    assert ex[0].start_position == 10 and ex[0].orig_answer_text == "brown fox"
    # Prediction mode keeps the question (answers are not used for features), still counts it.
    ex = squad.read_squad_examples(path, is_training=False)
    assert [e.qas_id for e in ex] == ["ok", "bad", "ok2"] and ex.num_bad_offsets == 1
    assert ex[1].answers == [] and ex[1].start_position is None


def test_unambiguous_values_accepted_and_malformed_entries_named(tmp_path):
    ctx = "The quick brown fox."
    def file_with(*qas):
        return _write_json(tmp_path / "d.json", {"data": [{"paragraphs": [
            {"context": ctx, "qas": list(qas)}]}]})
    # answer_start as a string of digits, is_impossible as "false" / 0: unambiguous, accepted
    path = file_with({"id": "a", "question": "Q?", "is_impossible": "false",
                      "answers": [{"text": "quick", "answer_start": "4"}]},
                     {"id": "b", "question": "Q?", "is_impossible": 0,
                      "answers": [{"text": "fox", "answer_start": 16}]})
    ex = squad.read_squad_examples(path, is_training=True)
    assert [(e.start_position, e.is_impossible) for e in ex] == [(4, False), (16, False)]
    for qa, needle in [
            ({"id": "a", "question": None, "answers": []}, "qas[0].question is null"),
            ({"id": 7, "question": "Q?", "answers": []}, "qas[0].id is the JSON number 7"),
            ({"id": "a", "question": "Q?", "is_impossible": "maybe"}, "is_impossible is"),
            ({"id": "a", "question": "Q?", "answers": [{"answer_start": 1}]},
             "answers[0] has no 'text'")]:
        with pytest.raises(ValueError, match=re.escape(needle)) as e:
            squad.read_squad_examples(file_with(qa), is_training=False)
        assert str(path) in str(e.value) and "data[0].paragraphs[0]" in str(e.value)
    dup = {"id": "a", "question": "Q?", "answers": []}
    with pytest.raises(ValueError, match=r"qas\[1\] has the id 'a' of .*qas\[0\]"):
        squad.read_squad_examples(file_with(dup, dup), is_training=False)


def test_json_without_data_and_missing_files(tmp_path):
    path = _write_json(tmp_path / "nodata.json", {"version": "2.0", "articles": []})
    with pytest.raises(ValueError, match="no top-level 'data' list"):
        squad.read_squad_examples(path, is_training=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        squad.read_squad_examples(tmp_path / "missing.json", is_training=False)
    good = _write_json(tmp_path / "good.json", {"data": []})
    with pytest.raises(FileNotFoundError, match="SentencePiece model"):
        squad.load_or_build_features(good, tmp_path / "no_such.model", tmp_path / "cache", is_training=False)
    with pytest.raises(FileNotFoundError, match="SentencePiece model"):
        tok_lib.Tokenizer(tmp_path / "no_such.model")


def test_empty_context_skipped(tmp_path, caplog, tokenizer):
    data = {"data": [{"title": "t", "paragraphs": [
        {"context": "   ", "qas": [{"id": "e1", "question": "Q?", "answers": []},
                                   {"id": "e2", "question": "Q?", "answers": []}]},
        {"context": "Some text here.", "qas": [
            {"id": "k", "question": "Q?", "answers": [{"text": "text", "answer_start": 5}]}]}]}]}
    path = _write_json(tmp_path / "d.json", data)
    with caplog.at_level(logging.WARNING, logger="xlnet_tf"):
        ex = squad.read_squad_examples(path, is_training=False)
    assert [e.qas_id for e in ex] == ["k"] and ex.num_empty_context == 2
    assert "empty context" in caplog.text
    # An empty paragraph handed straight to the converter is dropped with a warning too.
    caplog.clear()
    bare = [squad.SquadExample("z", "Q?", ""), squad.SquadExample("k", "Q?", "Some text here.")]
    with caplog.at_level(logging.WARNING, logger="xlnet_tf"):
        feats = squad.convert_examples_to_features(bare, tokenizer, 64, 32, 16, is_training=False, num_workers=1)
    assert feats.dropped_qas_ids == ("z",) and [f.example_index for f in feats] == [1]
    assert "MISMATCH DETECTED" in caplog.text and "z" in caplog.text


# ------------------------------------------------------------------------------------------
# Records, cache manifest and tf.data
# ------------------------------------------------------------------------------------------
def test_cache_and_dataset(shared_data, tmp_path):
    import tensorflow as tf
    src = shared_data / "squad" / "dev-v2.0.first2articles.json"
    data_file = tmp_path / "small.json"
    obj = json.loads(src.read_text(encoding="utf-8"))
    obj["data"] = obj["data"][:1]
    obj["data"][0]["paragraphs"] = obj["data"][0]["paragraphs"][:6]
    _write_json(data_file, obj)
    cache = tmp_path / "cache"
    kw = dict(max_seq_length=128, doc_stride=32, max_query_length=24, num_workers=1)
    c1 = squad.load_or_build_features(data_file, SPM, cache, is_training=False, **kw)
    assert c1.rebuilt and c1.num_features == len(c1.features) > len(c1.examples)
    manifest = json.loads(open(c1.manifest_path).read())
    assert manifest["settings"]["max_seq_length"] == 128 and manifest["num_features"] == c1.num_features
    c2 = squad.load_or_build_features(data_file, SPM, cache, is_training=False, **kw)
    assert not c2.rebuilt
    # read back without pickle: every attribute post-processing uses is the same
    for a, b in zip(c1.features, c2.features, strict=True):
        for name in ("unique_id", "example_index", "doc_span_index", "paragraph_len",
                     "query_len", "max_seq_length", "cls_index"):
            assert getattr(a, name) == getattr(b, name), name
        for name in ("tokens", "tok_start_to_orig_index", "tok_end_to_orig_index",
                     "token_is_max_context", "input_ids", "p_mask"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert [vars_of(e) for e in c2.examples] == [vars_of(e) for e in c1.examples]
    assert c2.features.dropped_qas_ids == c1.features.dropped_qas_ids
    # named by the vocabulary's hash, not its file name; only TFRecords, JSON and npz
    sha = squad_records.sha256_file(SPM)[:12]
    assert sorted(p.name.split(".", 1)[1] for p in cache.iterdir()) == [
        f"sp-{sha}.slen-128.qlen-24.stride-32.eval.tf_record{ext}"
        for ext in ("", ".examples.json", ".features.npz", ".manifest.json")]
    # On disk the records keep the key "segment_ids" (renamed to seg_ids when parsed).
    record = next(iter(tf.data.TFRecordDataset(c2.record_path))).numpy()
    keys = set(tf.train.Example.FromString(record).features.feature)
    assert "segment_ids" in keys and "seg_ids" not in keys
    # A cache of an older format (its pickled classes lived elsewhere) is rebuilt, not read.
    old = dict(manifest, settings=dict(manifest["settings"], format_version=1))
    _write_json(pathlib.Path(c1.manifest_path), old)
    c_old = squad.load_or_build_features(data_file, SPM, cache, is_training=False, **kw)
    assert c_old.rebuilt and c_old.manifest["settings"]["format_version"] == \
        squad_records.CACHE_FORMAT_VERSION
    # Changing the source file invalidates the cache.
    obj["data"][0]["paragraphs"][0]["qas"][0]["question"] = "Changed question?"
    _write_json(data_file, obj)
    c3 = squad.load_or_build_features(data_file, SPM, cache, is_training=False, **kw)
    assert c3.rebuilt
    # Records hold exactly the features; prediction keeps the last partial batch.
    ds = squad.squad_dataset(c3.record_path, batch_size=8, is_training=False, seq_len=128)
    assert ds.element_spec["input_ids"].shape.as_list() == [None, 128]
    rows = {k: [] for k in ("unique_ids", "input_ids", "input_mask", "p_mask", "seg_ids", "cls_index")}
    for batch in ds:
        for k in rows:
            rows[k].append(batch[k].numpy())
    rows = {k: np.concatenate(v) for k, v in rows.items()}
    feats = c3.features
    assert len(rows["unique_ids"]) == len(feats)
    np.testing.assert_array_equal(rows["unique_ids"], [f.unique_id for f in feats])
    np.testing.assert_array_equal(rows["input_ids"], np.stack([f.input_ids for f in feats]))
    np.testing.assert_array_equal(rows["input_mask"], np.stack([f.input_mask for f in feats]))
    np.testing.assert_array_equal(rows["p_mask"], np.stack([f.p_mask for f in feats]))
    np.testing.assert_array_equal(rows["seg_ids"], np.stack([f.seg_ids for f in feats]))
    np.testing.assert_array_equal(rows["cls_index"], [f.cls_index for f in feats])
    assert rows["input_ids"].dtype == np.int32 and rows["input_mask"].dtype == np.float32
    # Training records: labels present, static batch, drop_remainder.
    t = squad.load_or_build_features(data_file, SPM, cache, is_training=True, **kw)
    assert t.rebuilt and t.features is None and t.num_features > 0
    dtrain = squad.squad_dataset(t.record_path, batch_size=4, is_training=True, seq_len=128, seed=1)
    assert dtrain.element_spec["start_positions"].shape.as_list() == [4]
    b = next(iter(dtrain))
    start, end, cls = b["start_positions"].numpy(), b["end_positions"].numpy(), b["cls_index"].numpy()
    imp = b["is_impossible"].numpy()
    assert np.all(start <= end) and np.all((imp == 1.0) == (start == cls))
    p_mask = b["p_mask"].numpy()
    assert np.all(p_mask[np.arange(4), start] == 0.0) and np.all(p_mask[np.arange(4), end] == 0.0)
    assert tf.reduce_all(b["input_mask"][:, 0] == 0.0)


def vars_of(example):
    return {k: getattr(example, k) for k in squad.SquadExample.__slots__}


def test_cache_never_unpickles(tmp_path, tokenizer, monkeypatch):
    """A features file someone replaced with a pickled object array is not loaded (numpy
    refuses it without allow_pickle): the cache is rebuilt, pickle is never called."""
    import pickle
    ctx = "The quick brown fox jumps over the lazy dog."
    data = _write_json(tmp_path / "d.json", {"data": [{"paragraphs": [{"context": ctx, "qas": [
        {"id": "q1", "question": "What jumps?", "answers": []}]}]}]})
    cache = tmp_path / "cache"
    kw = dict(max_seq_length=32, doc_stride=8, max_query_length=8, num_workers=1)
    first = squad.load_or_build_features(data, SPM, cache, is_training=False, **kw)
    npz = first.record_path + ".features.npz"
    with open(npz, "wb") as f:
        np.savez(f, unique_id=np.array([object()], dtype=object))
    def refuse(*a, **k):
        raise AssertionError("a cache was unpickled")
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    again = squad.load_or_build_features(data, SPM, cache, is_training=False, **kw)
    assert again.rebuilt and [f.unique_id for f in again.features] == \
        [f.unique_id for f in first.features]


def test_write_squad_features_atomic_and_errors(tmp_path, tokenizer):
    example, _ = _hand_example()
    feats = squad.convert_examples_to_features([example], tokenizer, 20, 5, 4, is_training=True, num_workers=1)
    out = tmp_path / "x.tf_record"
    assert squad.write_squad_features(feats, out, is_training=True) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["x.tf_record"]     # no temporary left behind
    ds = squad.squad_dataset(out, batch_size=4, is_training=True, seq_len=20, repeat=False)
    b = next(iter(ds))                                  # shuffled: sort by unique id
    order = np.argsort(b["unique_ids"].numpy())
    assert b["unique_ids"].numpy()[order].tolist() == [1000000000 + k for k in range(4)]
    assert b["start_positions"].numpy()[order].tolist() == [8, 3, 19, 15]
    assert b["end_positions"].numpy()[order].tolist() == [9, 4, 19, 15]
    assert b["is_impossible"].numpy()[order].tolist() == [0.0, 0.0, 1.0, 1.0]
    # Prediction features have no labels: writing them as training records is refused and
    # leaves neither the target nor a temporary file.
    pred = squad.convert_examples_to_features([example], tokenizer, 20, 5, 4, is_training=False, num_workers=1)
    with pytest.raises(ValueError, match="no training labels"):
        squad.write_squad_features(pred, tmp_path / "y.tf_record", is_training=True)
    assert [p.name for p in tmp_path.iterdir()] == ["x.tf_record"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        squad.squad_dataset(tmp_path / "nope.tf_record", 4, False, 20)


def check_is_max_context(doc_spans, cur_span_index, position):
    """The original's ``_check_is_max_context`` for one token (reference form): score =
    ``min(left context, right context) + 0.01 * span length``; the first span with the
    highest score owns the token."""
    best_score, best_index = None, None
    for span_index, (start, length) in enumerate(doc_spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score, best_index = score, span_index
    return cur_span_index == best_index


def test_max_context_owner_matches_per_token_rule():
    rng = random.Random(3)
    for _ in range(50):
        n, max_doc, stride = rng.randint(1, 60), rng.randint(1, 20), rng.randint(1, 25)
        spans = squad_features._doc_spans(n, max_doc, stride)
        assert spans[0][0] == 0 and spans[-1][0] + spans[-1][1] == n
        owner = squad_features._max_context_owner(spans, n)
        for s, (start, length) in enumerate(spans):
            for pos in range(start, start + length):
                assert check_is_max_context(spans, s, pos) == (owner[pos] == s)
