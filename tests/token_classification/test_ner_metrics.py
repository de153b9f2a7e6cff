"""The conlleval scorer (xlnet_tf.token_classification.metrics) on hand-worked prediction
files, and against seqeval (an independent implementation; never a project dependency -
the comparison runs where it is installed, e.g. a side environment on PYTHONPATH)."""
import random

import pytest

from xlnet_tf.token_classification.metrics import chunks, conll_scores, format_conll_predictions
from xlnet_tf.token_classification.readers import to_iob2


# ---------------------------------------------------------------------------- chunks
@pytest.mark.parametrize("tags,expected", [
    # IOB1: an I- after O starts an entity; B- splits two touching entities of one type
    (["I-PER", "I-PER", "O", "I-LOC"], [("PER", 0, 1), ("LOC", 3, 3)]),
    (["I-PER", "B-PER", "I-PER"], [("PER", 0, 0), ("PER", 1, 2)]),
    # a type change inside a span starts a new entity
    (["I-ORG", "I-LOC", "I-LOC"], [("ORG", 0, 0), ("LOC", 1, 2)]),
    (["B-ORG", "I-LOC"], [("ORG", 0, 0), ("LOC", 1, 1)]),
    # IOB2
    (["B-PER", "I-PER", "B-PER", "O", "B-MISC"], [("PER", 0, 1), ("PER", 2, 2), ("MISC", 4, 4)]),
    # an entity at the sentence end
    (["O", "O", "B-LOC", "I-LOC"], [("LOC", 2, 3)]),
    # an I- after O under IOB2 is read as conlleval reads it: it starts an entity
    (["O", "I-PER", "I-PER"], [("PER", 1, 2)]),
    (["O"], []),
    (["I-MISC-X", "I-MISC-X"], [("MISC-X", 0, 1)]),   # types may hold hyphens
])
def test_chunks_as_conlleval_reads_them(tags, expected):
    assert chunks(tags) == expected


def test_hand_worked_file():
    """Two sentences worked out by hand (IOB1 as CoNLL-2003 has it).

    gold  sentence 1: [PER 0-1] O [LOC 3]        sentence 2: [ORG 0] [ORG 1-2] O [MISC 4]
    pred  sentence 1: [PER 0-1] O [ORG 3]        sentence 2: [ORG 0-2]        O [MISC 4]

    sentence 2's gold B-ORG splits two ORG entities that the prediction reads as one, so
    neither gold ORG is matched; correct: PER 0-1 and MISC 4."""
    gold = [["I-PER", "I-PER", "O", "I-LOC"], ["I-ORG", "B-ORG", "I-ORG", "O", "I-MISC"]]
    pred = [["I-PER", "I-PER", "O", "I-ORG"], ["I-ORG", "I-ORG", "I-ORG", "O", "I-MISC"]]
    s = conll_scores(gold, pred)
    # gold entities: PER, LOC, ORG, ORG, MISC = 5; predicted: PER, ORG, ORG(0-2), MISC = 4
    assert (s["num_gold_entities"], s["num_predicted_entities"], s["num_correct_entities"]) \
        == (5, 4, 2)
    assert s["precision"] == pytest.approx(2 / 4)
    assert s["recall"] == pytest.approx(2 / 5)
    assert s["f1"] == pytest.approx(2 * 0.5 * 0.4 / 0.9)
    assert s["accuracy"] == pytest.approx(7 / 9)   # tokens 4 (s1) and 2 (s2) differ
    assert s["num_words"] == 9
    per = s["per_type"]
    assert per["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "gold": 1,
                          "predicted": 0, "correct": 0}
    assert per["ORG"]["gold"] == 2 and per["ORG"]["predicted"] == 2 and per["ORG"]["correct"] == 0
    assert per["PER"]["f1"] == 1.0 and per["MISC"]["f1"] == 1.0


def test_sentence_boundary_closes_entities():
    """An entity at the end of one sentence and one at the start of the next are two."""
    gold = [["O", "I-PER"], ["I-PER", "O"]]
    assert conll_scores(gold, gold)["num_gold_entities"] == 2
    # the same tags as ONE sentence would be one entity
    assert chunks(["O", "I-PER", "I-PER", "O"]) == [("PER", 1, 2)]


def test_span_must_match_exactly():
    gold = [["B-PER", "I-PER", "O"]]
    for pred in (["B-PER", "O", "O"], ["B-PER", "I-PER", "I-PER"], ["B-LOC", "I-LOC", "O"]):
        assert conll_scores(gold, [pred])["num_correct_entities"] == 0
    assert conll_scores(gold, [["B-PER", "I-PER", "O"]])["f1"] == 1.0


def test_no_entities_scores_zero_not_nan():
    s = conll_scores([["O", "O"]], [["O", "O"]])
    assert (s["precision"], s["recall"], s["f1"], s["accuracy"]) == (0.0, 0.0, 0.0, 1.0)


def test_bioes_read_through_iob2():
    tags = ["S-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "O"]
    assert to_iob2(tags, "bioes") == ["B-PER", "B-PER", "B-LOC", "I-LOC", "I-LOC", "O"]
    assert chunks(to_iob2(tags, "bioes")) == [("PER", 0, 0), ("PER", 1, 1), ("LOC", 2, 4)]
    assert to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC"], "iob1") == \
        ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]


def test_prediction_file_format():
    text = format_conll_predictions([["EU", "rejects"], ["Peter"]],
                                    [["I-ORG", "O"], None], [["I-ORG", "O"], ["I-PER"]])
    assert text == "EU I-ORG I-ORG\nrejects O O\n\nPeter O I-PER\n\n"


# ---------------------------------------------------------------------------- seqeval
def _random_sentences(rng, n, tags):
    return [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(n)]


@pytest.mark.parametrize("scheme", ["iob1", "iob2"])
def test_equals_seqeval(scheme):
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(7)
    tags = ["O", "O", "O", "I-PER", "I-LOC", "I-ORG", "B-PER", "B-LOC", "I-MISC"]
    if scheme == "iob2":
        tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    for trial in range(20):
        gold = _random_sentences(rng, 30, tags)
        pred = [[t if rng.random() < 0.7 else rng.choice(tags) for t in s] for s in gold]
        ours = conll_scores(gold, pred)
        assert ours["precision"] == pytest.approx(seqeval.precision_score(gold, pred))
        assert ours["recall"] == pytest.approx(seqeval.recall_score(gold, pred))
        assert ours["f1"] == pytest.approx(seqeval.f1_score(gold, pred))
        assert ours["accuracy"] == pytest.approx(seqeval.accuracy_score(gold, pred))
        report = seqeval.classification_report(gold, pred, output_dict=True, zero_division=0)
        for kind, v in ours["per_type"].items():
            if v["gold"]:
                assert v["f1"] == pytest.approx(report[kind]["f1-score"]), (trial, kind)
                assert v["gold"] == report[kind]["support"]
