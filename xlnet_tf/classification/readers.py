"""Classification / regression task readers (``get_task(name, **options)``): the original
``run_classifier.py``'s ``DataProcessor`` classes, for GLUE, IMDB, Yelp and any CSV/TSV.

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

:func:`task_has_text_b` says whether a reader yields a second text (the serving signature
then takes ``text_b``).
"""
import csv
import dataclasses
import glob
import logging
import os
import sys
from typing import Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from xlnet_tf.io import check_text_file, sniff_text_problem
from xlnet_tf.tokenization.text import clean_text

log = logging.getLogger("xlnet_tf")

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
    check_text_file(path, "data file")
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
                log.info("%s/%s: reading %d files matching %r: %s", self.name, split, len(found),
                             pattern, ", ".join(os.path.basename(p) for p in found))
            elif _is_glob(pattern):
                log.info("%s/%s: no exact default file, using %s", self.name, split, found[0])
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
                    log.warning(
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
        log.info("%s/%s: reading %s (layout %s)", self.name, split, path, res.layout.name)
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
            log.warning("%s: skipped %d malformed rows (lines %s%s)", path, len(skipped),
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
    test (header ``index sentence``), HF export, and ``sentence<TAB>label`` without header (as
    in the lowercased copies some CoLA folders hold: ``train.lowercased.tsv``,
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
                text = _read_review(os.path.join(sub, n))
                examples.append(InputExample(
                    guid=f"{split}-{os.path.basename(path)}/{label}/{n}",
                    text_a=self.clean_text(text), text_b=None, label=label))
        if not examples:
            raise ValueError(f"{path}: no .txt reviews found in neg/ or pos/.")
        log.info("%s/%s: read %d reviews from %s", self.name, split, len(examples), path)
        return examples


def _read_review(path):
    """One review file as text; a UTF-16, compressed or non-UTF-8 file is a ValueError naming
    it."""
    with open(path, "rb") as f:
        data = f.read()
    problem = sniff_text_problem(data[:16])
    if problem:
        raise ValueError(f"review file {path!r} {problem}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"review file {path!r} is not valid UTF-8 text (byte {e.start}: "
                         f"{e.reason}); convert it to UTF-8") from None


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
            log.warning("task 'generic' without label_column: only the test split can be read.")
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


def task_has_text_b(processor):
    """Whether a task reader yields a second text (then the export takes ``text_b``)."""
    columns = getattr(processor, "columns", None)
    if isinstance(columns, dict):                                 # the generic task
        return columns.get("text_b") is not None
    layouts = getattr(processor, "layouts", None) or ()
    return any(getattr(layout, "text_b", None) is not None for layout in layouts)


# Readable names of the labels of the registered tasks whose labels are codes (the GLUE
# files' 0/1, IMDB's neg/pos, Yelp's stars); the others' labels are names already.
LABEL_NAMES = {
    "cola": {"0": "unacceptable", "1": "acceptable"},
    "sst-2": {"0": "negative", "1": "positive"},
    "mrpc": {"0": "not_equivalent", "1": "equivalent"},
    "qqp": {"0": "not_duplicate", "1": "duplicate"},
    "wnli": {"0": "not_entailment", "1": "entailment"},
    "imdb": {"neg": "negative", "pos": "positive"},
    "yelp2": {"1": "negative", "2": "positive"},
    "yelp5": {str(k): f"{k} star{'s' if k > 1 else ''}" for k in range(1, 6)},
}


def label_names(task_name, label_list):
    """The readable name of each label of ``label_list`` (in id order) for ``task_name``;
    a label without a name is its own name."""
    names = LABEL_NAMES.get(str(task_name).lower(), {})
    return [names.get(str(label), str(label)) for label in (label_list or [])]
