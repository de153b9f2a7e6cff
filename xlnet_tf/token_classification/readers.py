"""CoNLL column files and tag schemes.

A CoNLL file holds one word per line with whitespace-separated columns (CoNLL-2003
English: ``word POS chunk NER``), a blank line after each sentence and ``-DOCSTART-`` lines
between documents.  :func:`read_conll` returns the sentences with the tags of one column and
the document each belongs to; every non-blank line must have as many columns as the first
(the file and line are named otherwise).  Windows line endings are read like Unix ones.

Tag schemes (``O`` is outside every entity in all of them):

``iob1``   ``I-X`` inside an entity of type X; ``B-X`` only on the first word of an entity
           that directly follows another entity of the same type (CoNLL-2003 as released);
``iob2``   ``B-X`` on the first word of every entity, ``I-X`` on the others;
``bioes``  ``B-X`` first, ``I-X`` middle, ``E-X`` last word, ``S-X`` an entity of one word.

:func:`detect_scheme` decides from the tags of a file which one it uses.
"""
import dataclasses
import os
from typing import List, Optional

SCHEMES = ("iob1", "iob2", "bioes")
PREFIXES = {"iob1": "BI", "iob2": "BI", "bioes": "BIES"}
DOCSTART = "-DOCSTART-"


@dataclasses.dataclass
class Sentence:
    """One sentence: its words, their tags (None for a file without tag column), the index
    of its document in the file and the line of its first word (1-based)."""
    words: List[str]
    tags: Optional[List[str]]
    doc: int
    line: int


def split_tag(tag):
    """``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", "")``: the prefix before the FIRST
    hyphen (types may hold hyphens), as conlleval splits tags."""
    prefix, sep, kind = tag.partition("-")
    return (prefix, kind) if sep else (tag, "")


def read_conll(path, label_column=-1, has_labels=True):
    """The sentences of the CoNLL file ``path``.

    Args:
      label_column: the column (0-based; negative counts from the end) holding the tags;
        the words are column 0.
      has_labels: False for a file of words only (one column is then enough).
    Raises ValueError naming the file and line for a line with another number of columns
    than the first, a missing label column, or a file without sentences.
    """
    sentences, words, tags = [], [], []
    n_columns, first_line, doc, start = None, None, 0, 0

    def flush():
        if words:
            sentences.append(Sentence(list(words), list(tags) if has_labels else None, doc,
                                      start))
            words.clear()
            tags.clear()

    try:
        f = open(path, encoding="utf-8-sig")   # a byte-order mark is not part of a word
    except FileNotFoundError:
        raise FileNotFoundError(f"data file {path!r} does not exist") from None
    with f:
        try:
            lines = f.read().splitlines()
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    for number, raw in enumerate(lines, 1):
        columns = raw.split()
        if not columns:
            flush()
            continue
        if n_columns is None:
            n_columns, first_line = len(columns), number
            if has_labels:
                need = label_column + 1 if label_column >= 0 else -label_column
                if n_columns < max(need, 2):
                    raise ValueError(
                        f"{path}:{number}: {n_columns} column(s), but the tags are read from "
                        f"--label_column={label_column} (a word and a tag column at least); "
                        f"pass --label_column")
        elif len(columns) != n_columns:
            raise ValueError(f"{path}:{number}: {len(columns)} column(s) where line "
                             f"{first_line} has {n_columns}; every line of a sentence needs "
                             f"the same columns (words may not contain spaces)")
        if columns[0] == DOCSTART:
            flush()
            doc += 1
            continue
        if not words:
            start = number
        words.append(columns[0])
        if has_labels:
            tags.append(columns[label_column])
    flush()
    if not sentences:
        raise ValueError(f"{path}: no sentences (a CoNLL file has one word per line and a "
                         f"blank line after each sentence)")
    return sentences


def check_tags(sentences, scheme, path):
    """Every tag must be ``O`` or ``P-TYPE`` with a prefix of ``scheme``; raises ValueError
    naming the file, line and tag otherwise."""
    allowed = PREFIXES[scheme]
    for s in sentences:
        for i, tag in enumerate(s.tags or ()):
            prefix, kind = split_tag(tag)
            if tag != "O" and not (len(prefix) == 1 and prefix in allowed and kind):
                raise ValueError(
                    f"{path}:{s.line + i}: tag {tag!r} is not a {scheme} tag (O or "
                    f"{'/'.join(allowed)}-TYPE); pass the right --tag_scheme or "
                    f"--label_column")


def detect_scheme(sentences, path):
    """``iob1``, ``iob2`` or ``bioes`` from the tags: E-/S- prefixes mean bioes; otherwise
    the entities that start with I- (after O or another type: iob1) are counted against
    those that start with B- after O or another type (iob2) and the larger count wins; a
    few of the other kind are annotation slips (CoNLL-2003's eng.train, IOB1, has 24
    B- after O among 23,499 entities), but more than one in ten of the winner's count reads
    as a mix and raises ValueError naming a line of each.  No evidence reads as iob2."""
    first = {"iob1": None, "iob2": None}
    count = {"iob1": 0, "iob2": 0}
    for s in sentences:
        prev_prefix, prev_kind = "O", ""
        for i, tag in enumerate(s.tags or ()):
            prefix, kind = split_tag(tag)
            if prefix in ("E", "S") and kind:
                return "bioes"
            if prefix in ("I", "B") and (prev_prefix == "O" or prev_kind != kind):
                scheme = "iob1" if prefix == "I" else "iob2"
                count[scheme] += 1
                first[scheme] = first[scheme] or s.line + i
            prev_prefix, prev_kind = prefix, kind
    winner = "iob1" if count["iob1"] > count["iob2"] else "iob2"
    loser = "iob2" if winner == "iob1" else "iob1"
    if count[loser] * 10 > count[winner]:
        raise ValueError(f"{path}: the tags mix iob1 ({count['iob1']} entities start with "
                         f"I-, first at line {first['iob1']}) and iob2 ({count['iob2']} "
                         f"start with B- after O or another type, first at line "
                         f"{first['iob2']}); pass --tag_scheme")
    return winner


def to_iob2(tags, scheme):
    """The same entities in iob2 tags: iob1's entity-initial I- becomes B-; bioes's S- is
    B- and E- is I-.  Used to score and write bioes predictions as conlleval reads them."""
    out, prev_prefix, prev_kind = [], "O", ""
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == "S":
            prefix = "B"
        elif prefix == "E":
            prefix = "I"
        elif prefix == "I" and scheme == "iob1" and (prev_prefix == "O" or prev_kind != kind):
            prefix = "B"
        out.append(tag if tag == "O" else f"{prefix}-{kind}")
        prev_prefix, prev_kind = split_tag(tag)
    return out


# --------------------------------------------------------------------------- data folders
DEFAULT_FILES = {"train": ("train.txt", "eng.train", "train"),
                 "dev": ("dev.txt", "valid.txt", "eng.testa", "dev"),
                 "test": ("test.txt", "eng.testb", "test")}


def split_file(data_dir, split, given=None):
    """The file of ``split``: ``given`` (relative to ``data_dir`` unless absolute), else the
    first of DEFAULT_FILES[split] found in ``data_dir``; FileNotFoundError names what was
    looked for and the flag to pass."""
    flag = {"train": "--train_file", "dev": "--dev_file", "test": "--test_file"}[split]
    if given:
        path = given if os.path.isabs(given) or not data_dir else os.path.join(data_dir, given)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{flag}: {path!r} does not exist")
        return path
    if not data_dir:
        raise ValueError(f"pass --data_dir or {flag}")
    for name in DEFAULT_FILES[split]:
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"--data_dir {data_dir!r} holds no {split} file (looked for "
                            f"{', '.join(DEFAULT_FILES[split])}); pass {flag}")
