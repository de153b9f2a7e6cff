"""Entity-level precision, recall and F1 as the CoNLL shared tasks' ``conlleval`` script
computes them, written from its definition:

* a tag is split at its first hyphen into a prefix and a type (``I-ORG`` -> ``I``, ``ORG``;
  ``O`` has the empty type);
* an entity (a "chunk") starts at a word when the previous and current prefixes are
  B->B, I->B, O->B, O->I, E->E, E->I, O->E, or when the word is not ``O`` and its type
  differs from the previous word's; it ends before a word when they are B->B, B->O, I->B,
  I->O, E->E, E->I, E->O, or when the previous word is not ``O`` and the types differ;
  so under IOB1 an ``I-X`` after ``O`` starts an entity, and so does an ``I-Y`` after
  ``I-X``;
* a predicted entity is correct when it starts and ends at the same words as a gold entity
  of the same type (exact span and type match);
* sentence boundaries are ``O`` for both, so no entity crosses them;
* precision = correct / predicted entities, recall = correct / gold entities, F1 their
  harmonic mean (each 0 when its denominator is 0), per type and over all types; token
  accuracy = words whose predicted tag equals the gold tag / words.

Values are fractions in [0, 1] (conlleval prints percentages).  Prediction files in the
``word gold predicted`` format (:func:`write_conll_predictions`) read by conlleval give the
same numbers.
"""
from typing import Dict, List, Sequence

from xlnet_tf.token_classification.readers import split_tag

_STARTS = {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"),
           ("O", "E")}
_ENDS = {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"),
         ("E", "O")}


def chunk_starts(prev_prefix, prefix, prev_kind, kind):
    """An entity starts at the current word (conlleval's rule, see module docstring)."""
    return ((prev_prefix, prefix) in _STARTS or prefix in ("[", "]")
            or (prefix not in ("O", ".") and prev_kind != kind))


def chunk_ends(prev_prefix, prefix, prev_kind, kind):
    """An entity ended at the previous word (conlleval's rule, see module docstring)."""
    return ((prev_prefix, prefix) in _ENDS or prev_prefix in ("[", "]")
            or (prev_prefix not in ("O", ".") and prev_kind != kind))


def chunks(tags: Sequence[str]):
    """The entities of one sentence as ``(type, first word, last word)`` tuples, read with
    the start / end rules above."""
    out, start = [], None
    prev = ("O", "")
    for i, tag in enumerate(list(tags) + ["O"]):
        cur = split_tag(tag)
        if start is not None and chunk_ends(prev[0], cur[0], prev[1], cur[1]):
            out.append((prev[1], start, i - 1))
            start = None
        if i < len(tags) and chunk_starts(prev[0], cur[0], prev[1], cur[1]):
            start = i
        prev = cur
    return out


def _prf(correct, predicted, gold):
    p = correct / predicted if predicted else 0.0
    r = correct / gold if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def conll_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> Dict:
    """Scores of predicted tag sequences against gold ones (one list of tags per sentence).

    Returns ``{"precision", "recall", "f1", "accuracy", "num_words", "num_gold_entities",
    "num_predicted_entities", "num_correct_entities", "per_type": {type: {"precision",
    "recall", "f1", "gold", "predicted", "correct"}}}``.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted ones")
    counts: Dict[str, List[int]] = {}        # type -> [correct, predicted, gold]
    words = right = 0
    for n, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {n}: {len(g)} gold tags but {len(p)} predicted ones")
        words += len(g)
        right += sum(a == b for a, b in zip(g, p))
        gold_chunks, pred_chunks = set(chunks(g)), set(chunks(p))
        for kind, *_ in gold_chunks:
            counts.setdefault(kind, [0, 0, 0])[2] += 1
        for kind, *_ in pred_chunks:
            counts.setdefault(kind, [0, 0, 0])[1] += 1
        for kind, *_ in gold_chunks & pred_chunks:
            counts[kind][0] += 1
    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    p, r, f = _prf(*total)
    per_type = {}
    for kind in sorted(counts):
        c = counts[kind]
        tp, tr, tf = _prf(*c)
        per_type[kind] = {"precision": tp, "recall": tr, "f1": tf, "gold": c[2],
                          "predicted": c[1], "correct": c[0]}
    return {"precision": p, "recall": r, "f1": f,
            "accuracy": right / words if words else 0.0, "num_words": words,
            "num_gold_entities": total[2], "num_predicted_entities": total[1],
            "num_correct_entities": total[0], "per_type": per_type}


def format_conll_predictions(sentences_words, gold, pred):
    """``word gold predicted`` lines, a blank line after each sentence (what conlleval
    reads; a missing gold tag is written as ``O``)."""
    lines = []
    for words, g, p in zip(sentences_words, gold, pred):
        g = g or ["O"] * len(words)
        for w, a, b in zip(words, g, p):
            lines.append(f"{w} {a} {b}\n")
        lines.append("\n")
    return "".join(lines)
