"""Classification / regression data: task readers, features, cached TFRecords, tf.data input.

This is the data side of the original ``run_classifier.py`` + ``classifier_utils.py``.

Readers (``get_task(name, **options)``)
---------------------------------------
A task processor turns the files of one data set into ``InputExample(guid, text_a, text_b,
label)`` tuples (``text_b`` is None for single-sentence tasks; ``label`` is a label string from
``processor.label_list``, or a float for regression). Registered tasks:

======================  ==============================================  =========================
name                    files (default, in ``data_dir``)                 metrics
======================  ==============================================  =========================
cola                    train.tsv / dev.tsv / test.tsv (+ discovery)     mcc, accuracy
sst-2                   train.tsv / dev.tsv / test.tsv                   accuracy
mrpc                    train.tsv / dev.tsv / test.tsv                   accuracy, f1
qqp                     train.tsv / dev.tsv / test.tsv                   accuracy, f1
sts-b                   train.tsv / dev.tsv / test.tsv (regression)      pearson, spearman
mnli_matched            train.tsv / dev_matched.tsv / test_matched.tsv   accuracy
mnli_mismatched         train.tsv / dev_mismatched.tsv / test_mism...    accuracy
qnli, rte, wnli         train.tsv / dev.tsv / test.tsv                   accuracy
imdb                    aclImdb ``train/{neg,pos}/*.txt``, dev = test/   accuracy
                        or TSV files with columns id, label, sentence
yelp2, yelp5            train.csv, dev = test = test.csv                 accuracy
generic                 any CSV/TSV, columns named by options            accuracy (+f1, mcc binary)
======================  ==============================================  =========================

Every table task recognises several layouts of its files, chosen per file from the first row:
the GLUE layout (with its header, or header-less where GLUE has none), the GLUE test layout
(no label column), the Hugging Face ``glue/*`` export layout (``..., label, idx`` with integer
labels; ``-1`` = unlabelled), and a few others found in the wild (e.g. CoLA as
``sentence<TAB>label`` without header). TSV files are read without quote processing (GLUE texts
contain unbalanced ``"``); a UTF-8 byte-order mark is ignored.

Options accepted by every task: ``train_file``, ``dev_file``, ``test_file`` (a file name, a
comma-separated list, or glob patterns such as ``"train*.tsv"``; relative to ``data_dir``) and
``skip_malformed_rows`` (skip rows with the wrong number of fields with a warning instead of
raising; the original skipped incomplete lines silently). When no file is given, the default
name is used if present, else a ``{split}*.{ext}`` glob: for train all matches are used (parts of
a split such as STS-B's ``train_part1_noheader.tsv`` + ``train_part2_noheader.tsv``), for dev and
test exactly one match is required.

Features (the original ``convert_single_example``)
--------------------------------------------------
``A <sep> [B <sep>] <cls>`` with CLS **last**, segment ids A=0 B=1 CLS=2, **left** padding with
id 0, ``input_mask`` 1 on padding (0 on real tokens), segment id 4 on padding. A pair is
truncated to ``max_seq_length - 3`` by popping the last token of the longer side (ties from B), a
single text to ``max_seq_length - 2``. ``pack_ids`` is the pure-Python packer; ``pack_ids_tf``
is the same on a batch of ragged id tensors (used by the SavedModel's serving signature).

Cached records
--------------
``prepare_classifier_records`` writes a TFRecord file (features ``input_ids`` int64,
``input_mask`` float, ``segment_ids`` int64, ``label_ids`` int64 or float for regression,
``is_real_example`` int64) plus ``<record>.manifest.json`` stating the settings it was made
with; a later call reuses it only when the manifest matches. ``classifier_dataset`` reads it.
"""

import csv
import dataclasses
import glob
import hashlib
import json
import os
import sys
import time
from typing import Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf
from absl import logging

from xlnet_tf.io import atomic_output, write_json_atomic
from xlnet_tf.tokenization import clean_text
from xlnet_tf.tokenization.tokenizer import CLS_ID, SEG_ID_A, SEG_ID_B, SEG_ID_CLS, SEG_ID_PAD, SEP_ID

# Pad id of the classification features: 0 (<unk>), as the original, not <pad>=5. Padding is
# masked out by input_mask, so the id only affects outputs at pad positions.
PAD_INPUT_ID = 0

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT_VERSION = 1

Column = Union[str, int, None]


# ---------------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------------


class InputExample(NamedTuple):
    """One example: ``label`` is a label string, or a float for regression tasks."""

    guid: str
    text_a: str
    text_b: Optional[str]
    label: Union[str, float]


class PaddingInputExample:
    """A fake example that pads an evaluation set to a multiple of the batch size.

    Its features are ids 0, mask 1, segments 0, label 0 and ``is_real_example=0``, so every
    metric weighted by ``is_real_example`` ignores it (the original's ``PaddingInputExample``).
    """

    def __repr__(self):
        return "PaddingInputExample()"


class InputFeatures(NamedTuple):
    input_ids: List[int]  # [T]
    input_mask: List[float]  # [T], 1 = padding
    segment_ids: List[int]  # [T]
    label_id: Union[int, float]
    is_real_example: bool


# ---------------------------------------------------------------------------------------------
# File reading helpers
# ---------------------------------------------------------------------------------------------

_CSV_FIELD_LIMIT = 2**31 - 1
_GLOB_CHARS = set("*?[")


def _norm_name(name: str) -> str:
    """Header cell normalised for matching: BOM and surrounding space removed, lower case."""
    return name.replace("\ufeff", "").strip().lower()


def _iter_rows(path: str, delimiter: str, quotechar: Optional[str]) -> Iterator[Tuple[int, List[str]]]:
    """Yields ``(line_number, fields)`` of a delimited text file, skipping blank lines.

    ``quotechar=None`` reads without any quote processing (GLUE TSV convention). The line number
    is that of the record's last physical line (1-based), which is where a reader looks.
    """
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    if quotechar is None:
        fmt = dict(delimiter=delimiter, quoting=csv.QUOTE_NONE)
    else:
        fmt = dict(delimiter=delimiter, quotechar=quotechar, doublequote=True)
    try:
        with open(path, "r", encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, **fmt)
            try:
                for fields in reader:
                    if not fields or (len(fields) == 1 and not fields[0].strip()):
                        continue
                    yield reader.line_num, fields
            except csv.Error as e:
                raise ValueError(f"{path} line {reader.line_num}: cannot parse the row ({e}).") from None
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: not valid UTF-8 text (byte {e.start}: {e.reason}). Convert the file to UTF-8."
        ) from None


def _is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def _split_file_option(value) -> List[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        items = str(value).split(",")
    return [i.strip() for i in items if i.strip()]


def _expand(data_dir: str, pattern: str) -> List[str]:
    path = pattern if os.path.isabs(pattern) else os.path.join(data_dir, pattern)
    if _is_glob(pattern):
        return sorted(p for p in glob.glob(path) if os.path.isfile(p))
    return [path] if os.path.exists(path) else []


def _dir_listing(data_dir: str) -> str:
    try:
        names = sorted(os.listdir(data_dir))
    except OSError:
        return "(cannot list the folder)"
    if not names:
        return "(the folder is empty)"
    shown = ", ".join(names[:20])
    return shown + (f", ... ({len(names)} entries)" if len(names) > 20 else "")


def _file_fingerprint(path: str) -> Dict[str, object]:
    """Size and mtime of a file, or (for a folder) count, total size and newest mtime of its files."""
    if os.path.isdir(path):
        count, size, mtime = 0, 0, 0
        for root, _, files in os.walk(path):
            for name in files:
                st = os.stat(os.path.join(root, name))
                count += 1
                size += st.st_size
                mtime = max(mtime, st.st_mtime_ns)
        return {"path": os.path.abspath(path), "kind": "dir", "files": count, "size": size, "mtime_ns": mtime}
    st = os.stat(path)
    return {"path": os.path.abspath(path), "kind": "file", "size": st.st_size, "mtime_ns": st.st_mtime_ns}


# ---------------------------------------------------------------------------------------------
# Processors
# ---------------------------------------------------------------------------------------------

SPLITS = ("train", "dev", "test")


class DataProcessor:
    """Base class of the task readers (the original's ``DataProcessor``).

    Subclasses set ``name``, ``label_list`` (None for regression), ``is_regression``,
    ``metric_names`` and ``default_files`` (per split, candidate names/globs tried in order), and
    implement ``_read_source(path, split, counter)``.
    """

    name = "task"
    label_list: Optional[List[str]] = None
    is_regression = False
    metric_names: Tuple[str, ...] = ("accuracy",)
    default_files: Mapping[str, Sequence[str]] = {
        "train": ("train.tsv", "train*.tsv"),
        "dev": ("dev.tsv", "dev*.tsv"),
        "test": ("test.tsv", "test*.tsv"),
    }
    default_skip_malformed_rows = False

    def __init__(self, train_file=None, dev_file=None, test_file=None, skip_malformed_rows=None):
        self.file_overrides = {"train": train_file, "dev": dev_file, "test": test_file}
        self.skip_malformed_rows = (
            self.default_skip_malformed_rows if skip_malformed_rows is None else bool(skip_malformed_rows)
        )

    # -- the original's API ---------------------------------------------------------------
    def get_labels(self):
        """The label list (index = label id); ``[0.0]`` for regression like the original."""
        return list(self.label_list) if not self.is_regression else [0.0]

    def get_train_examples(self, data_dir):
        return self.get_examples(data_dir, "train")

    def get_dev_examples(self, data_dir):
        return self.get_examples(data_dir, "dev")

    def get_test_examples(self, data_dir):
        return self.get_examples(data_dir, "test")

    # -- generic ------------------------------------------------------------------------------
    @property
    def dummy_label(self):
        """Label given to unlabelled test rows: the first label (0.0 for regression)."""
        return 0.0 if self.is_regression else self.label_list[0]

    def options(self) -> Dict[str, object]:
        """Settings that change the examples (recorded in the cache manifest)."""
        return {
            "task": self.name,
            "files": {k: v for k, v in self.file_overrides.items() if v is not None},
            "skip_malformed_rows": self.skip_malformed_rows,
        }

    def source_files(self, data_dir: str, split: str) -> List[str]:
        """The files (or folders) the examples of ``split`` are read from, in reading order."""
        self._check_split(split)
        data_dir = os.fspath(data_dir)
        if not os.path.isdir(data_dir):
            raise FileNotFoundError(
                f"data_dir {data_dir!r} for task {self.name!r} does not exist or is not a folder."
            )
        override = _split_file_option(self.file_overrides[split])
        if override:
            paths = []
            for pattern in override:
                found = _expand(data_dir, pattern)
                if not found:
                    raise FileNotFoundError(
                        f"task {self.name!r}, split {split!r}: {split}_file entry {pattern!r} matches no "
                        f"file in {data_dir!r}. Files there: {_dir_listing(data_dir)}."
                    )
                paths.extend(p for p in found if p not in paths)
            return paths
        return self._default_sources(data_dir, split)

    def _default_sources(self, data_dir: str, split: str) -> List[str]:
        candidates = self.default_files[split]
        for pattern in candidates:
            found = _expand(data_dir, pattern)
            if not found:
                continue
            if len(found) > 1 and split != "train":
                raise ValueError(
                    f"task {self.name!r}, split {split!r}: {pattern!r} matches several files in "
                    f"{data_dir!r}: {', '.join(os.path.basename(p) for p in found)}. Choose with "
                    f"{split}_file=<name> (a comma-separated list reads several)."
                )
            if len(found) > 1:
                logging.info("%s/%s: reading %d files matching %r: %s", self.name, split, len(found),
                             pattern, ", ".join(os.path.basename(p) for p in found))
            elif _is_glob(pattern):
                logging.info("%s/%s: no exact default file, using %s", self.name, split, found[0])
            if split == "train" and not _is_glob(pattern):
                self._hint_extra_parts(data_dir, candidates, found)
            return found
        raise FileNotFoundError(
            f"task {self.name!r}, split {split!r}: none of {', '.join(repr(c) for c in candidates)} "
            f"found in {data_dir!r}. Files there: {_dir_listing(data_dir)}. Pass {split}_file=<name or "
            f"glob> to choose the file(s)."
        )

    def _hint_extra_parts(self, data_dir, candidates, used):
        hinted = self.__dict__.setdefault("_hinted", set())
        for pattern in candidates:
            if _is_glob(pattern):
                extra = [p for p in _expand(data_dir, pattern) if p not in used]
                if extra and (data_dir, pattern) not in hinted:
                    hinted.add((data_dir, pattern))
                    logging.warning(
                        "%s/train: using %s only; also present: %s. Pass train_file=%r to include them.",
                        self.name, ", ".join(os.path.basename(p) for p in used),
                        ", ".join(os.path.basename(p) for p in extra), pattern)

    def get_examples(self, data_dir, split: str) -> List[InputExample]:
        """All examples of ``split`` ("train", "dev" or "test") read from ``data_dir``."""
        examples: List[InputExample] = []
        for path in self.source_files(data_dir, split):
            examples.extend(self._read_source(path, split, len(examples)))
        if not examples:
            raise ValueError(f"task {self.name!r}, split {split!r}: no examples were read from {data_dir!r}.")
        return examples

    def _read_source(self, path: str, split: str, counter: int) -> List[InputExample]:
        raise NotImplementedError

    def _check_split(self, split):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")

    # -- label handling shared by readers -------------------------------------------------------
    def _make_label(self, raw: Optional[str], split: str, where: str):
        """Validated label for a raw cell; ``raw=None`` = the row has no label."""
        if raw is None:
            if split != "test":
                raise ValueError(
                    f"{where}: the row has no label, but split {split!r} needs labels. Only test files "
                    f"may be unlabelled (they get the dummy label {self.dummy_label!r})."
                )
            return self.dummy_label
        if self.is_regression:
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(
                    f"{where}: label {raw!r} is not a number, but task {self.name!r} is a regression task."
                ) from None
            if not np.isfinite(value):
                raise ValueError(f"{where}: label {raw!r} is not a finite number.")
            return value
        if raw not in self.label_list:
            raise ValueError(
                f"{where}: label {raw!r} is not in the label list {self.label_list} of task {self.name!r}. "
                f"Check the label column (or, for the generic task, the label_list option)."
            )
        return raw


@dataclasses.dataclass(frozen=True)
class Layout:
    """One file layout of a table task.

    With ``header=True`` the columns are header names, and the layout is chosen when all of
    them appear in the first row (layouts are tried in order, most specific first). With
    ``header=False`` they are 0-based indices and the layout is chosen when the first row has
    ``num_fields`` fields.
    ``label=None`` = an unlabelled (test) layout. ``label_map`` rewrites raw label cells
    (e.g. Hugging Face integer labels to GLUE label strings); a value of None = unlabelled.
    """

    name: str
    text_a: Column
    text_b: Column = None
    label: Column = None
    guid: Column = None
    header: bool = True
    num_fields: Optional[int] = None
    label_map: Optional[Mapping[str, Optional[str]]] = None

    def header_names(self) -> List[str]:
        cols = [self.text_a, self.text_b, self.label, self.guid]
        return [c for c in cols if c is not None]

    def describe(self) -> str:
        if self.header:
            return f"{self.name} (header with {', '.join(self.header_names())})"
        return f"{self.name} ({self.num_fields} fields, no header)"


class _ResolvedLayout(NamedTuple):
    layout: Layout
    text_a: int
    text_b: Optional[int]
    label: Optional[int]
    guid: Optional[int]
    num_fields: int
    has_header: bool


class TableProcessor(DataProcessor):
    """A task whose files are delimited text (TSV by default) in one of ``layouts``."""

    layouts: Sequence[Layout] = ()
    delimiter = "\t"
    quotechar: Optional[str] = None

    def clean_text(self, text: str) -> str:
        """Task-specific text fixes (none by default)."""
        return text

    def _resolve_layout(self, path: str, first_fields: List[str], split: str) -> _ResolvedLayout:
        names = [_norm_name(f) for f in first_fields]
        for layout in self.layouts:
            if not layout.header:
                continue
            wanted = [_norm_name(n) for n in layout.header_names()]
            if all(w in names for w in wanted):
                def idx(c):
                    return None if c is None else names.index(_norm_name(c))

                return _ResolvedLayout(layout, idx(layout.text_a), idx(layout.text_b), idx(layout.label),
                                       idx(layout.guid), len(first_fields), True)
        for layout in self.layouts:
            if not layout.header and layout.num_fields == len(first_fields):
                return _ResolvedLayout(layout, layout.text_a, layout.text_b, layout.label, layout.guid,
                                       layout.num_fields, False)
        shown = first_fields[:8]
        raise ValueError(
            f"{path} line 1: unrecognised layout for task {self.name!r}: the first row has "
            f"{len(first_fields)} fields {shown!r}. Expected one of: "
            + "; ".join(l.describe() for l in self.layouts)
            + ". Fix the file, or use task 'generic' with text_a_column/text_b_column/label_column."
        )

    def _read_source(self, path: str, split: str, counter: int) -> List[InputExample]:
        rows = _iter_rows(path, self.delimiter, self.quotechar)
        try:
            first_line, first = next(rows)
        except StopIteration:
            raise ValueError(f"{path} is empty: task {self.name!r} split {split!r} needs at least one row.") from None
        res = self._resolve_layout(path, first, split)
        logging.info("%s/%s: reading %s (layout %s)", self.name, split, path, res.layout.name)
        if res.label is None and split != "test":
            raise ValueError(
                f"{path}: layout {res.layout.name!r} has no label column, so this file can only be the "
                f"test split, not {split!r}. Point {split}_file at a labelled file."
            )
        data = rows if res.has_header else _chain_first((first_line, first), rows)
        examples = []
        skipped = []
        for line_no, fields in data:
            where = f"{path} line {line_no}"
            if len(fields) != res.num_fields:
                if self.skip_malformed_rows:
                    skipped.append(line_no)
                    continue
                expected_from = "the header" if res.has_header else f"layout {res.layout.name!r}"
                raise ValueError(
                    f"{where}: expected {res.num_fields} {_delim_name(self.delimiter)}-separated fields "
                    f"(as {expected_from}) but found {len(fields)}. Fix the row, or pass "
                    f"skip_malformed_rows=True to skip such rows."
                )
            examples.append(self._row_to_example(res, fields, split, where, counter + len(examples)))
        if skipped:
            logging.warning("%s: skipped %d malformed rows (lines %s%s)", path, len(skipped),
                            ", ".join(map(str, skipped[:10])), ", ..." if len(skipped) > 10 else "")
        if not examples:
            raise ValueError(f"{path} has a header but no data rows (task {self.name!r}, split {split!r}).")
        return examples

    def _row_to_example(self, res: _ResolvedLayout, fields, split, where, index) -> InputExample:
        text_a = self.clean_text(fields[res.text_a])
        text_b = self.clean_text(fields[res.text_b]) if res.text_b is not None else None
        raw = None
        if res.label is not None:
            raw = fields[res.label].strip()
            label_map = res.layout.label_map
            if label_map is not None and raw in label_map:
                raw = label_map[raw]
            elif split == "test" and raw == "":
                raw = None
        label = self._make_label(raw, split, where)
        gid = fields[res.guid].strip() if res.guid is not None else str(index)
        return InputExample(guid=f"{split}-{gid}", text_a=text_a, text_b=text_b, label=label)


def _chain_first(first, rest):
    yield first
    yield from rest


def _delim_name(delimiter):
    return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(delimiter, repr(delimiter))


# Hugging Face "glue/*" exports use integer labels; -1 marks the unlabelled test split.
_HF_UNLABELLED = {"-1": None, "-1.0": None}


def _hf_map(names: Optional[Sequence[str]] = None) -> Dict[str, Optional[str]]:
    mapping = dict(_HF_UNLABELLED)
    if names:
        mapping.update({str(i): n for i, n in enumerate(names)})
    return mapping


def _pair_layouts(a: str, b: str, label: str, guid: str, hf_a: str = "sentence1", hf_b: str = "sentence2",
                  hf_names: Optional[Sequence[str]] = None) -> Tuple[Layout, ...]:
    """GLUE (header with guid column), GLUE test (no label) and HF export layouts of a pair task."""
    return (
        Layout("hf", hf_a, hf_b, "label", "idx", label_map=_hf_map(hf_names)),
        Layout("glue", a, b, label, guid),
        Layout("glue-test", a, b, None, guid),
    )


class ColaProcessor(TableProcessor):
    """CoLA (single sentence, labels 0/1, Matthews correlation).

    Layouts: GLUE train/dev (4 fields, no header: source, label, original mark, sentence), GLUE
    test (header ``index sentence``), HF export, and ``sentence<TAB>label`` without header (the
    lowercased copy in shared/data/glue/CoLA: ``train.lowercased.tsv``,
    ``dev_out_of_domain.lowercased.tsv``, found by the ``dev*.tsv`` discovery).
    """

    name = "cola"
    label_list = ["0", "1"]
    metric_names = ("mcc", "accuracy")
    layouts = (
        Layout("hf", "sentence", None, "label", "idx", label_map=_hf_map()),
        Layout("header", "sentence", None, "label"),
        Layout("glue-test", "sentence", None, None, "index"),
        Layout("glue", 3, None, 1, header=False, num_fields=4),
        Layout("sentence-label", 0, None, 1, header=False, num_fields=2),
    )


class Sst2Processor(TableProcessor):
    """SST-2 (header ``sentence label``; test ``index sentence``). Extra train parts such as
    ``train_part2.tsv`` are read with ``train_file="train*.tsv"``."""

    name = "sst-2"
    label_list = ["0", "1"]
    layouts = (
        Layout("hf", "sentence", None, "label", "idx", label_map=_hf_map()),
        Layout("glue", "sentence", None, "label"),
        Layout("glue-test", "sentence", None, None, "index"),
        Layout("sentence-label", 0, None, 1, header=False, num_fields=2),
    )


class MrpcProcessor(TableProcessor):
    """MRPC (header ``Quality #1 ID #2 ID #1 String #2 String``, possibly with a UTF-8 BOM)."""

    name = "mrpc"
    label_list = ["0", "1"]
    metric_names = ("accuracy", "f1")
    layouts = (
        Layout("hf", "sentence1", "sentence2", "label", "idx", label_map=_hf_map()),
        Layout("glue", "#1 String", "#2 String", "Quality"),
        Layout("glue-test", "#1 String", "#2 String", None, "index"),
    )


class QqpProcessor(TableProcessor):
    """QQP (header ``id qid1 qid2 question1 question2 is_duplicate``; test ``id question1 question2``).

    The GLUE QQP train file is known to hold a few broken rows, so malformed rows are skipped
    (with a warning and their line numbers) unless ``skip_malformed_rows=False``.
    """

    name = "qqp"
    label_list = ["0", "1"]
    metric_names = ("accuracy", "f1")
    default_skip_malformed_rows = True
    layouts = _pair_layouts("question1", "question2", "is_duplicate", "id", "question1", "question2")


class StsbProcessor(TableProcessor):
    """STS-B regression (score 0..5). GLUE header ``index genre ... sentence1 sentence2 score``;
    also the same 10 columns without header (e.g. ``train_part*_noheader.tsv``) and 9 without
    score (test)."""

    name = "sts-b"
    label_list = None
    is_regression = True
    metric_names = ("pearson", "spearman")
    layouts = _pair_layouts("sentence1", "sentence2", "score", "index") + (
        Layout("glue-noheader", 7, 8, 9, 0, header=False, num_fields=10),
        Layout("glue-test-noheader", 7, 8, None, 0, header=False, num_fields=9),
    )


_MNLI_LABELS = ["contradiction", "entailment", "neutral"]
_MNLI_LAYOUTS = (
    Layout("hf", "premise", "hypothesis", "label", "idx",
           label_map=_hf_map(["entailment", "neutral", "contradiction"])),  # HF ids 0, 1, 2
    Layout("glue", "sentence1", "sentence2", "gold_label", "index"),
    Layout("glue-test", "sentence1", "sentence2", None, "index"),
)


class MnliMatchedProcessor(TableProcessor):
    """MNLI, matched dev/test (original ``MnliMatchedProcessor``: columns sentence1/sentence2/gold_label)."""

    name = "mnli_matched"
    label_list = _MNLI_LABELS
    layouts = _MNLI_LAYOUTS
    default_files = {"train": ("train.tsv",), "dev": ("dev_matched.tsv",), "test": ("test_matched.tsv",)}


class MnliMismatchedProcessor(MnliMatchedProcessor):
    name = "mnli_mismatched"
    default_files = {"train": ("train.tsv",), "dev": ("dev_mismatched.tsv",), "test": ("test_mismatched.tsv",)}


_NLI2_LABELS = ["entailment", "not_entailment"]


class QnliProcessor(TableProcessor):
    name = "qnli"
    label_list = _NLI2_LABELS
    layouts = _pair_layouts("question", "sentence", "label", "index", "question", "sentence", _NLI2_LABELS)


class RteProcessor(TableProcessor):
    """RTE. GLUE layout ``index sentence1 sentence2 label`` (entailment / not_entailment) and the
    HF export ``sentence1 sentence2 label idx`` (0 = entailment, 1 = not_entailment, -1 = test),
    told apart by the ``idx`` column."""

    name = "rte"
    label_list = _NLI2_LABELS
    layouts = _pair_layouts("sentence1", "sentence2", "label", "index", hf_names=_NLI2_LABELS)


class WnliProcessor(TableProcessor):
    name = "wnli"
    label_list = ["0", "1"]
    layouts = _pair_layouts("sentence1", "sentence2", "label", "index")


class ImdbProcessor(TableProcessor):
    """IMDB sentiment (labels neg, pos).

    Either the aclImdb folder layout (``train/{neg,pos}/*.txt``; dev = ``test/``, as the
    original) or TSV files with header ``id label sentence`` (label 0 = neg, 1 = pos, or the
    names), e.g. ``train_sample.tsv`` / ``test_sample.tsv``. ``<br />`` becomes a space.
    """

    name = "imdb"
    label_list = ["neg", "pos"]
    layouts = (
        Layout("tsv", "sentence", None, "label", "id", label_map={"0": "neg", "1": "pos"}),
        Layout("tsv-test", "sentence", None, None, "id"),
    )
    default_files = {
        "train": ("train", "train.tsv", "train*.tsv"),
        "dev": ("test", "dev.tsv", "test.tsv", "test*.tsv"),
        "test": ("test", "test.tsv", "test*.tsv"),
    }

    def clean_text(self, text):
        return clean_text(text, "imdb")

    def _read_source(self, path, split, counter):
        if os.path.isdir(path):
            return self._read_folder(path, split)
        return super()._read_source(path, split, counter)

    def _read_folder(self, path, split) -> List[InputExample]:
        examples = []
        for label in self.label_list:
            sub = os.path.join(path, label)
            if not os.path.isdir(sub):
                raise FileNotFoundError(
                    f"{path}: aclImdb layout needs sub-folders 'neg' and 'pos'; {sub!r} is missing. "
                    f"Point data_dir at the aclImdb folder (holding train/ and test/)."
                )
            names = [n for n in os.listdir(sub) if n.endswith(".txt")]
            names.sort(key=_imdb_sort_key)
            for n in names:
                with open(os.path.join(sub, n), "r", encoding="utf-8") as f:
                    text = f.read()
                examples.append(InputExample(
                    guid=f"{split}-{os.path.basename(path)}/{label}/{n}",
                    text_a=self.clean_text(text), text_b=None, label=label))
        if not examples:
            raise ValueError(f"{path}: no .txt reviews found in neg/ or pos/.")
        logging.info("%s/%s: read %d reviews from %s", self.name, split, len(examples), path)
        return examples


def _imdb_sort_key(name):
    """aclImdb files are ``<id>_<rating>.txt``: sort by numeric id (then name)."""
    head = name.split("_", 1)[0]
    return (int(head), name) if head.isdigit() else (sys.maxsize, name)


class _YelpProcessor(TableProcessor):
    delimiter = ","
    quotechar = '"'
    default_files = {"train": ("train.csv",), "dev": ("test.csv",), "test": ("test.csv",)}
    layouts = (Layout("csv", 1, None, 0, header=False, num_fields=2),)

    def clean_text(self, text):
        """Quote and literal-newline fixes of the Yelp CSVs (see tokenization.text)."""
        return clean_text(text, self.name)


class Yelp2Processor(_YelpProcessor):
    """Yelp review polarity: ``"label","text"`` CSV without header, labels "1" (neg), "2" (pos)."""

    name = "yelp2"
    label_list = ["1", "2"]


class Yelp5Processor(_YelpProcessor):
    """Yelp review full: ``"label","text"`` CSV without header, labels "1".."5" (dev = test.csv)."""

    name = "yelp5"
    label_list = ["1", "2", "3", "4", "5"]


def _delimiter_for(path: str, delimiter: Optional[str]) -> str:
    if delimiter:
        return {"tab": "\t", "\\t": "\t", "comma": ","}.get(delimiter, delimiter)
    ext = os.path.splitext(path)[1].lower()
    if ext in (".tsv", ".tab"):
        return "\t"
    if ext == ".csv":
        return ","
    raise ValueError(
        f"{path}: cannot tell the delimiter from the extension {ext!r}; pass delimiter='\\t' or ','."
    )


def _parse_bool(value, option):
    if value is None or isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in ("1", "true", "yes", "y"):
        return True
    if s in ("0", "false", "no", "n"):
        return False
    if s in ("auto", ""):
        return None
    raise ValueError(f"option {option}={value!r} is not a boolean (true/false/auto).")


class GenericProcessor(TableProcessor):
    """Any CSV/TSV file set, described by options.

    Args:
      text_a_column: column of the first text, by header name or 0-based index.
      text_b_column: optional second text column.
      label_column: label column (may be absent from test files).
      label_list: the labels in id order, a list or a comma-separated string (classification).
      is_regression: float labels instead of a label list.
      delimiter: field delimiter; default from the extension (.tsv/.tab tab, .csv comma).
      header: whether the files start with a header row; default: yes when any column is given
        by name, no when all are indices.
      quotechar: quote character; default '"' for CSV and none for TSV (GLUE convention).
      id_column: optional column whose value forms the guid.
      name: task name used in cache file names and messages (default "generic").
    """

    default_files = {
        "train": ("train.tsv", "train.csv", "train*.tsv", "train*.csv"),
        "dev": ("dev.tsv", "dev.csv", "dev*.tsv", "dev*.csv"),
        "test": ("test.tsv", "test.csv", "test*.tsv", "test*.csv"),
    }

    def __init__(self, text_a_column=None, text_b_column=None, label_column=None, label_list=None,
                 is_regression=False, delimiter=None, header=None, quotechar="auto", id_column=None,
                 name="generic", **common):
        super().__init__(**common)
        if text_a_column is None or str(text_a_column).strip() == "":
            raise ValueError("task 'generic' needs text_a_column=<header name or 0-based index>.")
        self.name = name
        self.is_regression = bool(_parse_bool(is_regression, "is_regression"))
        if isinstance(label_list, str):
            label_list = [l.strip() for l in label_list.split(",") if l.strip()]
        if self.is_regression:
            if label_list:
                raise ValueError("task 'generic': give either label_list or is_regression=True, not both.")
            self.label_list = None
            self.metric_names = ("pearson", "spearman")
        else:
            if not label_list:
                raise ValueError(
                    "task 'generic': pass label_list='a,b,...' (labels in id order) or is_regression=True.")
            if len(set(label_list)) != len(label_list):
                raise ValueError(f"task 'generic': label_list {label_list} has duplicates.")
            self.label_list = list(label_list)
            self.metric_names = ("accuracy", "f1", "mcc") if len(label_list) == 2 else ("accuracy",)
        if label_column is None:
            logging.warning("task 'generic' without label_column: only the test split can be read.")
        self.columns = {
            "text_a": self._column(text_a_column),
            "text_b": self._column(text_b_column),
            "label": self._column(label_column),
            "guid": self._column(id_column),
        }
        self.header = _parse_bool(header, "header")
        if self.header is None:
            self.header = any(isinstance(c, str) for c in self.columns.values())
        if not self.header:
            named = [f"{k}_column={v!r}" for k, v in self.columns.items() if isinstance(v, str)]
            if named:
                raise ValueError(
                    f"task 'generic': header=False but {', '.join(named)} given by name; give 0-based indices.")
        self.delimiter_option = delimiter
        self.quotechar_option = quotechar

    @staticmethod
    def _column(value) -> Column:
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        if isinstance(value, int):
            return value
        s = str(value).strip()
        return int(s) if s.isdigit() else s

    def options(self):
        opts = super().options()
        opts.update(columns=self.columns, label_list=self.label_list, is_regression=self.is_regression,
                    header=self.header, delimiter=self.delimiter_option, quotechar=self.quotechar_option)
        return opts

    def _read_source(self, path, split, counter):
        self.delimiter = _delimiter_for(path, self.delimiter_option)
        q = self.quotechar_option
        self.quotechar = ('"' if self.delimiter == "," else None) if q == "auto" else (q or None)
        return super()._read_source(path, split, counter)

    def _resolve_layout(self, path, first_fields, split):
        n = len(first_fields)
        names = [_norm_name(f) for f in first_fields] if self.header else None
        resolved = {}
        for key, col in self.columns.items():
            if col is None:
                resolved[key] = None
            elif self.header and isinstance(col, str):
                if _norm_name(col) in names:
                    resolved[key] = names.index(_norm_name(col))
                elif key == "label" and split == "test":
                    resolved[key] = None  # unlabelled test file: dummy labels
                else:
                    raise ValueError(
                        f"{path} line 1: column {col!r} ({key}_column) is not in the header "
                        f"{[f.replace(chr(0xfeff), '') for f in first_fields]}. Pass the right name or a "
                        f"0-based index.")
            else:
                if col >= n:
                    if key == "label" and split == "test":
                        resolved[key] = None
                        continue
                    raise ValueError(
                        f"{path} line 1: {key}_column={col} is out of range: the row has {n} fields "
                        f"(indices 0..{n - 1}).")
                resolved[key] = col
        layout = Layout("generic", self.columns["text_a"], self.columns["text_b"], self.columns["label"],
                        self.columns["guid"], header=self.header, num_fields=None if self.header else n)
        return _ResolvedLayout(layout, resolved["text_a"], resolved["text_b"], resolved["label"],
                               resolved["guid"], n, self.header)


_REGISTRY = {
    "cola": ColaProcessor,
    "sst-2": Sst2Processor,
    "mrpc": MrpcProcessor,
    "qqp": QqpProcessor,
    "sts-b": StsbProcessor,
    "mnli_matched": MnliMatchedProcessor,
    "mnli_mismatched": MnliMismatchedProcessor,
    "qnli": QnliProcessor,
    "rte": RteProcessor,
    "wnli": WnliProcessor,
    "imdb": ImdbProcessor,
    "yelp2": Yelp2Processor,
    "yelp5": Yelp5Processor,
    "generic": GenericProcessor,
}
_ALIASES = {
    "sst2": "sst-2", "sst": "sst-2", "stsb": "sts-b", "sts": "sts-b", "mnli": "mnli_matched",
    "mnli-m": "mnli_matched", "mnli-mm": "mnli_mismatched", "mnli-matched": "mnli_matched",
    "mnli-mismatched": "mnli_mismatched", "yelp-2": "yelp2", "yelp_2": "yelp2", "yelp-5": "yelp5",
    "yelp_5": "yelp5", "csv": "generic", "tsv": "generic",
}
_COMMON_OPTIONS = ("train_file", "dev_file", "test_file", "skip_malformed_rows")


def task_names() -> List[str]:
    return sorted(_REGISTRY)


def get_task(name: str, **options) -> DataProcessor:
    """The processor of task ``name`` (case-insensitive; aliases like "sst2", "stsb", "mnli").

    ``options``: ``train_file``, ``dev_file``, ``test_file``, ``skip_malformed_rows`` for every
    task; the ``generic`` task also takes ``text_a_column``, ``text_b_column``, ``label_column``,
    ``label_list``, ``is_regression``, ``delimiter``, ``header``, ``quotechar``, ``id_column``.
    Options whose value is None are ignored (so flags can be passed through unconditionally).
    """
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(task_names())} "
                         f"(aliases: {', '.join(sorted(_ALIASES))}).")
    cls = _REGISTRY[key]
    options = {k: v for k, v in options.items() if v is not None}
    if cls is not GenericProcessor:
        unknown = sorted(set(options) - set(_COMMON_OPTIONS))
        if unknown:
            raise ValueError(f"task {key!r} does not take option(s) {unknown}; it accepts {list(_COMMON_OPTIONS)} "
                             f"(column options are for task 'generic').")
    else:
        import inspect
        allowed = set(inspect.signature(GenericProcessor.__init__).parameters) - {"self", "common"}
        unknown = sorted(set(options) - allowed - set(_COMMON_OPTIONS))
        if unknown:
            raise ValueError(f"task 'generic' does not take option(s) {unknown}; it accepts "
                             f"{sorted(allowed | set(_COMMON_OPTIONS))}.")
    return cls(**options)


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------


def truncate_seq_pair(tokens_a: List[int], tokens_b: List[int], max_length: int) -> None:
    """In place: pop the last token of the longer list until ``len(a) + len(b) <= max_length``.

    Ties pop from ``tokens_b`` (the original ``_truncate_seq_pair``). Closed form, used by
    ``pack_ids_tf``: if the total exceeds the budget, A keeps ``min(len_a, max(ceil(budget/2),
    budget - len_b))`` tokens and B the rest of the budget.
    """
    while len(tokens_a) + len(tokens_b) > max_length:
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def _check_max_seq_length(max_seq_length: int, pair: bool) -> int:
    need = 3 if pair else 2
    if int(max_seq_length) != max_seq_length or max_seq_length < need:
        raise ValueError(
            f"max_seq_length={max_seq_length} is too small: a {'pair' if pair else 'single text'} needs "
            f"at least {need} positions for <sep>{' <sep>' if pair else ''} <cls>.")
    return int(max_seq_length)


def pack_ids(ids_a: Sequence[int], ids_b: Optional[Sequence[int]], max_seq_length: int):
    """Packs token ids into the classification layout (pure Python, no TF).

    Returns ``(input_ids, input_mask, segment_ids)``, each a list of length ``max_seq_length``:

        [0 .. 0  a1 .. an <sep>  b1 .. bm <sep>  <cls>]      input_ids  (left padding with 0)
        [1 .. 1  0  ..  0   0    0  ..  0   0      0  ]      input_mask (1 = padding, float)
        [4 .. 4  0  ..  0   0    1  ..  1   1      2  ]      segment_ids

    Inputs longer than the budget are truncated (``max_seq_length - 3`` for a pair with
    ``truncate_seq_pair``, ``max_seq_length - 2`` for a single text keeping the first tokens).
    """
    pair = ids_b is not None
    T = _check_max_seq_length(max_seq_length, pair)
    a = [int(i) for i in ids_a]
    b = [int(i) for i in ids_b] if pair else None
    if pair:
        truncate_seq_pair(a, b, T - 3)
    else:
        a = a[: T - 2]
    ids = a + [SEP_ID]
    segs = [SEG_ID_A] * (len(a) + 1)
    if pair:
        ids += b + [SEP_ID]
        segs += [SEG_ID_B] * (len(b) + 1)
    ids.append(CLS_ID)
    segs.append(SEG_ID_CLS)
    n_pad = T - len(ids)
    input_ids = [PAD_INPUT_ID] * n_pad + ids
    input_mask = [1.0] * n_pad + [0.0] * len(ids)
    segment_ids = [SEG_ID_PAD] * n_pad + segs
    return input_ids, input_mask, segment_ids


def _label_id(label, label_list, is_regression):
    if is_regression:
        return float(label)
    try:
        return label_list.index(label)
    except ValueError:
        raise ValueError(f"label {label!r} is not in the label list {label_list}.") from None


def convert_single_example(example, label_list, max_seq_length, tokenizer, is_regression=None):
    """``InputExample`` → ``InputFeatures`` (the original ``convert_single_example``).

    Args:
      example: an ``InputExample`` or a ``PaddingInputExample``.
      label_list: labels in id order, or None for regression.
      max_seq_length: T.
      tokenizer: anything with ``encode_ids(text)`` applying the original text rules (e.g.
        ``xlnet_tf.tokenization.tokenizer.Tokenizer``).
      is_regression: default ``label_list is None``.
    """
    return _convert(example, label_list, max_seq_length, tokenizer, is_regression)[0]


def _convert(example, label_list, max_seq_length, tokenizer, is_regression):
    """``convert_single_example`` plus whether tokens were cut by truncation."""
    if is_regression is None:
        is_regression = label_list is None
    if isinstance(example, PaddingInputExample):
        T = int(max_seq_length)
        return InputFeatures([0] * T, [1.0] * T, [0] * T, 0.0 if is_regression else 0, False), False
    ids_a = tokenizer.encode_ids(example.text_a)
    ids_b = tokenizer.encode_ids(example.text_b) if example.text_b is not None else None
    input_ids, input_mask, segment_ids = pack_ids(ids_a, ids_b, max_seq_length)
    n_tokens = len(ids_a) + (len(ids_b) + 1 if ids_b is not None else 0) + 2
    feats = InputFeatures(input_ids, input_mask, segment_ids,
                          _label_id(example.label, label_list, is_regression), True)
    return feats, n_tokens > int(max_seq_length)


def pack_ids_tf(ragged_a, ragged_b, max_seq_length: int):
    """Batched, in-graph ``pack_ids``: same layout, truncation and padding.

    Args:
      ragged_a: ``tf.RaggedTensor`` ``[B, (n)]`` of token ids (any integer dtype; a dense
        ``[B, n]`` tensor is taken as rows of exactly n ids).
      ragged_b: ``tf.RaggedTensor`` ``[B, (m)]`` or None for single-text tasks.
      max_seq_length: T (a Python int).
    Returns:
      ``(input_ids int32 [B, T], input_mask float32 [B, T], segment_ids int32 [B, T])``.
    """
    pair = ragged_b is not None
    T = _check_max_seq_length(max_seq_length, pair)
    a = _as_ragged_ids(ragged_a, "ragged_a")  # [B, (n)]
    len_a = a.row_lengths()  # [B] int64
    if pair:
        b = _as_ragged_ids(ragged_b, "ragged_b")  # [B, (m)]
        len_b = b.row_lengths()  # [B]
        budget = tf.constant(T - 3, tf.int64)
        over = len_a + len_b > budget  # [B]
        keep_a = tf.minimum(len_a, tf.maximum((budget + 1) // 2, budget - len_b))  # [B]
        new_a = tf.where(over, keep_a, len_a)  # [B]
        new_b = tf.where(over, budget - new_a, len_b)  # [B]
        a = _ragged_prefix(a, new_a)
        b = _ragged_prefix(b, new_b)
    else:
        a = _ragged_prefix(a, tf.minimum(len_a, T - 2))
    nrows = a.nrows()
    col = lambda v: tf.RaggedTensor.from_tensor(tf.fill(tf.stack([nrows, 1]), tf.constant(v, tf.int32)))  # noqa: E731
    same = lambda rt, v: rt.with_flat_values(tf.fill(tf.shape(rt.flat_values), tf.constant(v, tf.int32)))  # noqa: E731
    id_parts = [a, col(SEP_ID)]
    seg_parts = [same(a, SEG_ID_A), col(SEG_ID_A)]
    if pair:
        id_parts += [b, col(SEP_ID)]
        seg_parts += [same(b, SEG_ID_B), col(SEG_ID_B)]
    id_parts.append(col(CLS_ID))
    seg_parts.append(col(SEG_ID_CLS))
    ids = tf.concat(id_parts, axis=1)  # [B, (len)]
    segs = tf.concat(seg_parts, axis=1)  # [B, (len)]
    n_pad = T - ids.row_lengths()  # [B]
    dense_ids = ids.to_tensor(default_value=PAD_INPUT_ID, shape=[None, T])  # [B, T] right-padded
    dense_segs = segs.to_tensor(default_value=SEG_ID_PAD, shape=[None, T])  # [B, T]
    positions = tf.range(T, dtype=tf.int64)[None, :]  # [1, T]
    # Rotate each row right by its pad count: position j reads (j - n_pad) mod T, which for
    # j < n_pad lands in the right-padding region.
    src = (positions - n_pad[:, None]) % T  # [B, T]
    input_ids = tf.gather(dense_ids, src, batch_dims=1)  # [B, T]
    segment_ids = tf.gather(dense_segs, src, batch_dims=1)  # [B, T]
    input_mask = tf.cast(positions < n_pad[:, None], tf.float32)  # [B, T]
    return input_ids, input_mask, segment_ids


def _as_ragged_ids(x, name):
    """int32 ragged ``[B, (n)]``; a dense ``[B, n]`` tensor counts as rows of full length n."""
    if not isinstance(x, tf.RaggedTensor):
        x = tf.convert_to_tensor(x)
        if x.shape.rank != 2:
            raise ValueError(f"pack_ids_tf: {name} must be a [batch, (tokens)] RaggedTensor, got shape {x.shape}.")
        x = tf.RaggedTensor.from_tensor(x)
    if x.ragged_rank != 1 or x.shape.rank != 2:
        raise ValueError(f"pack_ids_tf: {name} must be a [batch, (tokens)] RaggedTensor with one ragged "
                         f"dimension, got shape {x.shape} (ragged_rank {x.ragged_rank}).")
    if not x.dtype.is_integer:
        raise ValueError(f"pack_ids_tf: {name} must hold integer token ids, got {x.dtype.name}.")
    return tf.cast(x, tf.int32)


def _ragged_prefix(rt, lengths):
    """First ``lengths[i]`` values of each row of a ragged-rank-1 tensor."""
    lengths = tf.cast(lengths, tf.int64)
    starts = rt.row_starts()  # [B]
    take = tf.ragged.range(starts, starts + lengths)  # [B, (k)]
    return tf.RaggedTensor.from_row_lengths(tf.gather(rt.values, take.flat_values), lengths)


# ---------------------------------------------------------------------------------------------
# TFRecords + manifest
# ---------------------------------------------------------------------------------------------


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tokenizer_settings(tokenizer) -> Dict[str, object]:
    """What of the tokenizer changes the ids: SentencePiece model hash and text options."""
    proto = tokenizer.serialized_model_proto() if hasattr(tokenizer, "serialized_model_proto") else None
    if proto is None:
        path = getattr(tokenizer, "spiece_model_path", None)
        if not path:
            raise ValueError("cannot identify the tokenizer's SentencePiece model for the cache manifest; "
                             "use xlnet_tf.tokenization.tokenizer.Tokenizer.")
        with open(path, "rb") as f:
            proto = f.read()
    path = getattr(tokenizer, "spiece_model_path", None)
    return {
        "spm_sha256": _sha256_bytes(proto),
        "spm_basename": os.path.basename(path) if path else "spiece",
        "uncased": bool(getattr(tokenizer, "lower", False)),
        "keep_accents": bool(getattr(tokenizer, "keep_accents", False)),
    }


def _int64_feature(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _float_feature(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _serialize(features: InputFeatures, is_regression: bool) -> bytes:
    feats = {
        "input_ids": _int64_feature(features.input_ids),
        "input_mask": _float_feature(features.input_mask),
        "segment_ids": _int64_feature(features.segment_ids),
        "label_ids": _float_feature([features.label_id]) if is_regression else _int64_feature([features.label_id]),
        "is_real_example": _int64_feature([int(features.is_real_example)]),
    }
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def file_based_convert_examples_to_features(examples, label_list, max_seq_length, tokenizer, output_file,
                                            is_regression=None, num_passes=1, log_every_secs=10.0,
                                            description=""):
    """Writes the features of ``examples`` to the TFRecord file ``output_file``.

    The file is written under a temporary name and renamed at the end, so an interrupted run
    never leaves a complete-looking file. Logs progress (examples/s) about every
    ``log_every_secs``. ``num_passes > 1`` repeats the example list (the original's option).

    Returns a dict of counts: ``num_records``, ``num_real``, ``num_padding``, ``num_truncated``.
    """
    if is_regression is None:
        is_regression = label_list is None
    if num_passes > 1:
        examples = list(examples) * int(num_passes)
    total = len(examples)
    counts = {"num_records": 0, "num_real": 0, "num_padding": 0, "num_truncated": 0}
    start = last_log = time.time()
    with atomic_output(output_file) as tmp, tf.io.TFRecordWriter(tmp) as writer:
        for i, ex in enumerate(examples):
            feats, truncated = _convert(ex, label_list, max_seq_length, tokenizer, is_regression)
            if feats.is_real_example:
                counts["num_real"] += 1
                counts["num_truncated"] += int(truncated)
                if counts["num_real"] <= 2:
                    logging.info("%s example %s: input_ids=%s segment_ids=%s label=%r", description, ex.guid,
                                 [t for t, m in zip(feats.input_ids, feats.input_mask) if m == 0],
                                 [s for s, m in zip(feats.segment_ids, feats.input_mask) if m == 0],
                                 feats.label_id)
            else:
                counts["num_padding"] += 1
            writer.write(_serialize(feats, is_regression))
            counts["num_records"] += 1
            now = time.time()
            if now - last_log >= log_every_secs:
                last_log = now
                logging.info("%s: %d/%d examples (%.0f examples/s)", description or output_file, i + 1, total,
                             (i + 1) / max(now - start, 1e-9))
    elapsed = max(time.time() - start, 1e-9)
    logging.info("%s: wrote %d records (%d real, %d padding, %d truncated) to %s in %.1fs (%.0f examples/s)",
                 description or "records", counts["num_records"], counts["num_real"], counts["num_padding"],
                 counts["num_truncated"], output_file, elapsed, counts["num_records"] / elapsed)
    return counts


class RecordInfo(NamedTuple):
    path: str
    manifest: Dict[str, object]
    reused: bool


def record_file_name(task_name: str, spm_basename: str, max_seq_length: int, split: str, is_training: bool) -> str:
    """``{task}.{spm_basename}.len-{T}.train.tf_record`` / ``….{split}.eval.tf_record`` (the
    original's names with the task in front, so several tasks can share one cache folder)."""
    if is_training:
        kind = "train" if split == "train" else f"{split}.train"
    else:
        kind = f"{split}.eval"
    return f"{task_name}.{spm_basename}.len-{int(max_seq_length)}.{kind}.tf_record"


def prepare_classifier_records(processor: DataProcessor, data_dir, split: str, tokenizer, max_seq_length: int, *,
                               is_training: Optional[bool] = None, eval_batch_size: Optional[int] = None,
                               cache_dir=None, overwrite_data: bool = False, shuffle_seed: int = 12345,
                               num_passes: int = 1) -> RecordInfo:
    """Builds (or reuses) the cached TFRecord file of ``split`` and its manifest.

    Args:
      processor: from ``get_task``.
      data_dir: folder of the task's files.
      split: "train", "dev" or "test".
      tokenizer: ``xlnet_tf.tokenization.tokenizer.Tokenizer``.
      max_seq_length: T.
      is_training: shuffle the examples once (numpy, ``shuffle_seed``) before writing, and
        repeat them ``num_passes`` times; default: ``split == "train"``.
      eval_batch_size: for evaluation files, pad with ``PaddingInputExample`` to a multiple of
        this so every batch is full and metrics (weighted by ``is_real_example``) stay exact.
      cache_dir: where the records go; default ``data_dir`` (must be writable).
      overwrite_data: rebuild even if a matching cache exists (the original's flag).
    Returns:
      ``RecordInfo(path, manifest, reused)``; the manifest holds the settings and counts
      (``num_records``, ``num_real``, ``num_padding``, ``num_truncated``) and ``label_list``.
    """
    if is_training is None:
        is_training = split == "train"
    T = _check_max_seq_length(max_seq_length, pair=False)
    data_dir = os.fspath(data_dir)
    cache_dir = os.fspath(cache_dir) if cache_dir is not None else data_dir
    os.makedirs(cache_dir, exist_ok=True)
    # Mode bits are checked too: root may write anywhere, but a folder marked read-only (such as
    # a shared data folder) must not get cache files.
    if not os.access(cache_dir, os.W_OK) or not os.stat(cache_dir).st_mode & 0o222:
        raise PermissionError(
            f"cannot write the cached records to {cache_dir!r} (read-only folder); pass cache_dir=<a "
            f"writable folder> (run_classifier: --output_dir).")
    tok = tokenizer_settings(tokenizer)
    sources = processor.source_files(data_dir, split)
    settings = {
        "format_version": MANIFEST_FORMAT_VERSION,
        "task": processor.name,
        "task_options": processor.options(),
        "split": split,
        "is_training": bool(is_training),
        "max_seq_length": T,
        "spm_sha256": tok["spm_sha256"],
        "uncased": tok["uncased"],
        "keep_accents": tok["keep_accents"],
        "is_regression": bool(processor.is_regression),
        "label_list": None if processor.is_regression else list(processor.label_list),
        "source_files": [_file_fingerprint(p) for p in sources],
        "shuffle_seed": int(shuffle_seed) if is_training else None,
        "num_passes": int(num_passes) if is_training else 1,
        "pad_to_multiple": None if is_training or not eval_batch_size else int(eval_batch_size),
    }
    path = os.path.join(cache_dir, record_file_name(processor.name, tok["spm_basename"], T, split, is_training))
    manifest_path = path + MANIFEST_SUFFIX
    if not overwrite_data and os.path.exists(path) and os.path.exists(manifest_path):
        try:
            with open(manifest_path, "r", encoding="utf-8") as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = None
        if old is not None and old.get("settings") == settings:
            logging.info("Reusing cached records %s (%d records)", path, old["counts"]["num_records"])
            return RecordInfo(path, old, True)
        if old is not None:
            changed = sorted(k for k in set(settings) | set(old.get("settings", {}))
                             if settings.get(k) != old.get("settings", {}).get(k))
            logging.info("Rebuilding %s: settings changed (%s)", path, ", ".join(changed))
    examples: List[Union[InputExample, PaddingInputExample]] = processor.get_examples(data_dir, split)
    if is_training:
        rng = np.random.RandomState(shuffle_seed)
        order = rng.permutation(len(examples))
        examples = [examples[i] for i in order]
    elif eval_batch_size:
        while len(examples) % eval_batch_size != 0:
            examples.append(PaddingInputExample())
    label_list = None if processor.is_regression else list(processor.label_list)
    # Drop the old manifest first: a crash between the two renames below then leaves a record
    # file without manifest (rebuilt next time), never a manifest describing another file.
    if os.path.exists(manifest_path):
        os.remove(manifest_path)
    counts = file_based_convert_examples_to_features(
        examples, label_list, T, tokenizer, path, is_regression=processor.is_regression,
        num_passes=num_passes if is_training else 1, description=f"{processor.name}/{split}")
    manifest = {"settings": settings, "counts": counts, "record_file": os.path.basename(path),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json_atomic(manifest_path, manifest)
    return RecordInfo(path, manifest, False)


def read_manifest(record_path) -> Optional[Dict[str, object]]:
    """The manifest beside ``record_path``, or None if there is none."""
    mpath = os.fspath(record_path) + MANIFEST_SUFFIX
    if not os.path.exists(mpath):
        return None
    with open(mpath, "r", encoding="utf-8") as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------
# tf.data
# ---------------------------------------------------------------------------------------------


def classifier_dataset(record_path, batch_size: int, is_training: bool, max_seq_length: int,
                       is_regression: bool = False, input_context=None, seed: Optional[int] = 0,
                       shuffle_buffer: int = 2048, repeat: Optional[bool] = None):
    """tf.data pipeline over a classification TFRecord file.

    Args:
      record_path: file written by ``prepare_classifier_records``.
      batch_size: global batch size; with ``input_context`` each input pipeline gets
        ``input_context.get_per_replica_batch_size(batch_size)``.
      is_training: shuffle (buffer ``shuffle_buffer``, ``seed``), repeat forever and drop the
        last partial batch (static batch dimension). Evaluation keeps file order and the last
        batch (files padded with ``eval_batch_size`` have only full batches).
      max_seq_length: T; must match the file (checked against the manifest when present).
      is_regression: labels are float32 instead of int32.
      input_context: ``tf.distribute.InputContext``; the records are sharded over its input
        pipelines.
      repeat: override the default (repeat only when training).
    Yields:
      dicts ``input_ids`` int32 ``[b, T]``, ``seg_ids`` int32 ``[b, T]``, ``input_mask`` float32
      ``[b, T]`` (1 = padding), ``label`` ``[b]`` int32 (float32 for regression),
      ``is_real_example`` float32 ``[b]`` (a weight: 0 for eval padding rows).
    """
    record_path = os.fspath(record_path)
    if not os.path.isfile(record_path):
        raise FileNotFoundError(f"classifier record file {record_path!r} does not exist; build it with "
                                f"prepare_classifier_records.")
    T = int(max_seq_length)
    manifest = read_manifest(record_path)
    if manifest is not None:
        s = manifest["settings"]
        if s["max_seq_length"] != T:
            raise ValueError(f"{record_path} was written with max_seq_length={s['max_seq_length']}, but "
                             f"max_seq_length={T} was requested; rebuild the records or pass the same length.")
        if bool(s["is_regression"]) != bool(is_regression):
            raise ValueError(f"{record_path} was written with is_regression={s['is_regression']}, but "
                             f"is_regression={is_regression} was requested.")
    if repeat is None:
        repeat = is_training
    per_batch = int(batch_size)
    d = tf.data.TFRecordDataset(record_path)
    if input_context is not None:
        per_batch = input_context.get_per_replica_batch_size(batch_size)
        d = d.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if is_training:
        d = d.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        d = d.repeat()
    d = d.batch(per_batch, drop_remainder=is_training)
    spec = {
        "input_ids": tf.io.FixedLenFeature([T], tf.int64),
        "input_mask": tf.io.FixedLenFeature([T], tf.float32),
        "segment_ids": tf.io.FixedLenFeature([T], tf.int64),
        "label_ids": tf.io.FixedLenFeature([], tf.float32 if is_regression else tf.int64),
        "is_real_example": tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(serialized):
        ex = tf.io.parse_example(serialized, spec)
        return {
            "input_ids": tf.cast(ex["input_ids"], tf.int32),  # [b, T]
            "seg_ids": tf.cast(ex["segment_ids"], tf.int32),  # [b, T]
            "input_mask": ex["input_mask"],  # [b, T] float32, 1 = padding
            "label": ex["label_ids"] if is_regression else tf.cast(ex["label_ids"], tf.int32),  # [b]
            "is_real_example": tf.cast(ex["is_real_example"], tf.float32),  # [b]
        }

    d = d.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return d.prefetch(tf.data.AUTOTUNE)
