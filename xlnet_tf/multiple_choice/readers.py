"""Multiple-choice reading comprehension readers (``get_reader(task, **options)``).

Every reader turns one split of a data set into :class:`MCExample` tuples (an id, the
passage, the question, its options, the gold option index and a level used to break the
accuracy down).  One question is one example; the original ``run_race.py`` likewise
yields one example per question, with the passage repeated.

=================  ================================================  ==================
task               files in ``data_dir``                              levels
=================  ================================================  ==================
race               the RACE release: ``{split}/{middle,high}/*.txt``  middle, high
                   (one JSON passage per file), or the JSON-lines
                   export ``{split}_{middle,high}.jsonl`` (one such
                   passage per line); ``--high_only/--middle_only``
dream              ``{split}.json`` of the DREAM release (dialogue    (none)
                   turns joined by newlines; 3 options)
mctest             ``mc160.{split}.tsv`` + ``.ans`` and                mc160, mc500
                   ``mc500.{split}.tsv`` + ``.ans`` (``mc160`` /
                   ``mc500`` read one of the sets)
generic            ``{split}.jsonl`` / ``.csv`` / ``.tsv`` with named  (none)
                   columns: context (optional), question, options
                   (one field holding a list, or several columns),
                   label (a letter A.. or a 0-based index; empty or
                   absent in unlabelled test files)
=================  ================================================  ==================

All questions of one split must have the same number of options (the model scores C
sequences per question); a file that mixes counts is refused naming the first question
whose count differs.  A passage without options, an answer letter beyond the options, an
empty passage and a JSON value of the wrong type are refused naming the file and the
question.  Nothing here needs TensorFlow.
"""
import csv
import glob
import json
import os
import re
from typing import List, NamedTuple, Optional, Sequence

from xlnet_tf.io import check_text_file

SPLITS = ("train", "dev", "test")
RACE_LEVELS = ("middle", "high")
#: at most 26 options: answers are letters A-Z
MAX_CHOICES = 26


class MCExample(NamedTuple):
    """One question: ``label`` is the 0-based index of the gold option, or None when the
    split has no answers; ``level`` is e.g. ``"middle"``/``"high"`` for RACE, else ``""``."""
    qid: str
    context: str
    question: str
    options: tuple
    label: Optional[int]
    level: str = ""


def letter(index):
    """Answer letter of option ``index`` (0 -> "A")."""
    return chr(ord("A") + int(index))


def parse_label(raw, n_options, where):
    """A gold answer given as a letter (``"C"``) or a 0-based index (``2``, ``"2"``) ->
    index; ValueError naming ``where`` when it names no option."""
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"{where}: answer {raw!r} is not an option letter A-"
                         f"{letter(n_options - 1)} or a 0-based index")
    text = str(raw).strip()
    if re.fullmatch(r"[A-Za-z]", text):
        index = ord(text.upper()) - ord("A")
    elif re.fullmatch(r"\d+", text):
        index = int(text)
    else:
        raise ValueError(f"{where}: answer {raw!r} is not an option letter A-"
                         f"{letter(n_options - 1)} or a 0-based index")
    if index >= n_options:
        raise ValueError(f"{where}: answer {raw!r} names option {index + 1} but the question "
                         f"has {n_options} options (A-{letter(n_options - 1)}); fix the "
                         f"answer or add the missing options")
    return index


def check_example(ex, where, need_context=True):
    """The checks every reader applies to one question (ValueError naming ``where``)."""
    if need_context and not ex.context.strip():
        raise ValueError(f"{where}: the passage is empty; remove the question or add its "
                         f"text")
    if not ex.options:
        raise ValueError(f"{where}: the question has no options; a multiple-choice question "
                         f"needs at least 2")
    if len(ex.options) < 2:
        raise ValueError(f"{where}: the question has only 1 option; a multiple-choice "
                         f"question needs at least 2")
    if len(ex.options) > MAX_CHOICES:
        raise ValueError(f"{where}: the question has {len(ex.options)} options; at most "
                         f"{MAX_CHOICES} (answers are letters A-Z)")
    for i, o in enumerate(ex.options):
        if not isinstance(o, str):
            raise ValueError(f"{where}: option {letter(i)} is a {type(o).__name__}, expected "
                             f"text")


def check_same_count(examples, source):
    """All questions of ``source`` must have the same number of options."""
    if not examples:
        return
    first = examples[0]
    for ex in examples:
        if len(ex.options) != len(first.options):
            raise ValueError(
                f"{source}: question {ex.qid!r} has {len(ex.options)} options but question "
                f"{first.qid!r} has {len(first.options)}; every question of a data set needs "
                f"the same number of options")


def _numeric_key(path):
    name = os.path.basename(path)
    digits = re.findall(r"\d+", name)
    return (int(digits[-1]) if digits else -1, name)


def _read_text(path):
    check_text_file(path, "data file")
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"data file {path!r} is not UTF-8 text ({e})") from None


class Reader:
    """Base class: ``name``, ``options()``, ``source_files(data_dir, split)``,
    ``get_examples(data_dir, split)``, ``num_choices`` (None: taken from the data)."""
    name = "reader"
    num_choices = None
    has_levels = False

    def options(self):
        return {}

    def source_files(self, data_dir, split):
        raise NotImplementedError

    def get_examples(self, data_dir, split) -> List[MCExample]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        examples = []
        for path in self.read_files(data_dir, split):
            part = self.read_source(path, split)
            check_same_count(part, repr(path))
            examples.extend(part)
        check_same_count(examples, f"{self.name} {split} split in {data_dir!r}")
        return examples

    def read_files(self, data_dir, split):
        """The files (or folders) :meth:`read_source` reads, one after another."""
        return self.source_files(data_dir, split)

    def read_source(self, path, split):
        raise NotImplementedError


def _missing(data_dir, wanted):
    listing = sorted(os.listdir(data_dir))[:12] if os.path.isdir(data_dir) else None
    where = f"it holds {listing}" if listing is not None else "it does not exist"
    return FileNotFoundError(f"--data_dir {data_dir!r} has no {wanted} ({where}); pass the "
                             f"folder of the data set")


class RaceReader(Reader):
    """RACE (Lai et al. 2017), as the original ``run_race.py`` reads it, or its JSON-lines
    export.  Each passage is ``{"article", "questions", "options", "answers", "id"}``;
    question ``i`` has options ``options[i]`` and answer letter ``answers[i]``."""
    name = "race"
    has_levels = True

    def __init__(self, levels=RACE_LEVELS):
        levels = tuple(levels)
        bad = [lv for lv in levels if lv not in RACE_LEVELS]
        if bad or not levels:
            raise ValueError(f"RACE levels must be among {RACE_LEVELS}, got {levels}")
        self.levels = levels

    def options(self):
        return {"levels": list(self.levels)}

    def source_files(self, data_dir, split):
        files = []
        for level in self.levels:
            folder = os.path.join(data_dir, split, level)
            jsonl = os.path.join(data_dir, f"{split}_{level}.jsonl")
            if os.path.isdir(folder):
                files.append(folder)
            elif os.path.isfile(jsonl):
                files.append(jsonl)
            else:
                raise _missing(data_dir, f"RACE {split}/{level}/ folder nor "
                                         f"{split}_{level}.jsonl")
        return files

    def read_source(self, path, split):
        level = next(lv for lv in self.levels
                     if path.endswith(f"_{lv}.jsonl") or os.path.basename(path) == lv)
        if os.path.isdir(path):
            names = sorted((n for n in os.listdir(path) if not n.startswith(".")),
                           key=_numeric_key)
            passages = [(os.path.join(path, n), n, _read_text(os.path.join(path, n)))
                        for n in names]
            where_of = lambda p, n: repr(p)                               # noqa: E731
        else:
            text = _read_text(path)
            passages = [(path, f"line {i}", line) for i, line in
                        enumerate(text.splitlines(), 1) if line.strip()]
            where_of = lambda p, n: f"{p!r} {n}"                          # noqa: E731
        examples = []
        for p, n, text in passages:
            where = where_of(p, n)
            try:
                obj = json.loads(text)
            except ValueError as e:
                raise ValueError(f"{where} is not a RACE JSON passage ({e})") from None
            examples.extend(self._passage(obj, level, where, default_id=n))
        return examples

    def _passage(self, obj, level, where, default_id):
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: a RACE passage is a JSON object, got "
                             f"{type(obj).__name__}")
        pid = str(obj.get("id") or default_id)
        for key, kind in (("article", str), ("questions", list), ("options", list)):
            if not isinstance(obj.get(key), kind):
                raise ValueError(f"{where} (id {pid}): a RACE passage needs {key!r} "
                                 f"({kind.__name__}); it has {type(obj.get(key)).__name__}")
        questions, options = obj["questions"], obj["options"]
        answers = obj.get("answers")
        if len(options) != len(questions):
            raise ValueError(f"{where} (id {pid}): {len(questions)} questions but "
                             f"{len(options)} option lists; every question needs its options")
        if answers is not None and len(answers) != len(questions):
            raise ValueError(f"{where} (id {pid}): {len(questions)} questions but "
                             f"{len(answers)} answers")
        out = []
        for i, (q, opts) in enumerate(zip(questions, options)):
            qwhere = f"{where} (id {pid}) question {i + 1}"
            if not isinstance(opts, list):
                raise ValueError(f"{qwhere}: options must be a list, got "
                                 f"{type(opts).__name__}")
            ex = MCExample(f"{pid}-{i}", obj["article"], str(q), tuple(opts), None, level)
            check_example(ex, qwhere)
            if answers is not None:
                ex = ex._replace(label=parse_label(answers[i], len(opts), qwhere))
            out.append(ex)
        return out


class DreamReader(Reader):
    """DREAM (Sun et al. 2019): ``{split}.json`` is a list of ``[turns, [{"question",
    "choice", "answer"}], dialogue id]``; the passage is the turns joined by newlines, the
    answer the text of the right choice."""
    name = "dream"

    def source_files(self, data_dir, split):
        path = os.path.join(data_dir, f"{split}.json")
        if not os.path.isfile(path):
            raise _missing(data_dir, f"DREAM {split}.json")
        return [path]

    def read_source(self, path, split):
        try:
            data = json.loads(_read_text(path))
        except ValueError as e:
            raise ValueError(f"DREAM file {path!r} is not valid JSON ({e})") from None
        if not isinstance(data, list):
            raise ValueError(f"DREAM file {path!r} holds a {type(data).__name__}, expected a "
                             f"list of [turns, questions, id]")
        out = []
        for k, item in enumerate(data):
            where = f"{path!r} dialogue {k}"
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], list)
                    and isinstance(item[1], list)):
                raise ValueError(f"{where}: expected [turns, questions, id]")
            context = "\n".join(str(t) for t in item[0])
            for i, q in enumerate(item[1]):
                qwhere = f"{where} (id {item[2]}) question {i + 1}"
                if not isinstance(q, dict) or not isinstance(q.get("choice"), list):
                    raise ValueError(f"{qwhere}: expected {{question, choice, answer}}")
                ex = MCExample(f"{item[2]}-{i}", context, str(q.get("question", "")),
                               tuple(q["choice"]), None)
                check_example(ex, qwhere)
                if "answer" in q:
                    if q["answer"] not in ex.options:
                        raise ValueError(f"{qwhere}: the answer {q['answer']!r} is none of "
                                         f"the choices {list(ex.options)}")
                    ex = ex._replace(label=ex.options.index(q["answer"]))
                out.append(ex)
        return out


class MCTestReader(Reader):
    """MCTest (Richardson et al. 2013): ``mc{160,500}.{split}.tsv`` (id, properties, story,
    4 x [question, A, B, C, D]; ``\\newline`` / ``\\tab`` escapes restored) with the answer
    letters in the ``.ans`` file beside it.  The ``one:`` / ``multiple:`` prefix of each
    question is dropped."""
    name = "mctest"
    has_levels = True

    def __init__(self, sets=("mc160", "mc500")):
        self.sets = tuple(sets)

    def options(self):
        return {"sets": list(self.sets)}

    def source_files(self, data_dir, split):
        files = []
        for s in self.sets:
            path = os.path.join(data_dir, f"{s}.{split}.tsv")
            if not os.path.isfile(path):
                raise _missing(data_dir, f"MCTest {s}.{split}.tsv")
            files.append(path)
            if os.path.isfile(path[:-4] + ".ans"):
                files.append(path[:-4] + ".ans")
        return files

    def read_files(self, data_dir, split):
        # each .ans file is read with its .tsv file
        return [p for p in self.source_files(data_dir, split) if p.endswith(".tsv")]

    def read_source(self, path, split):
        level = os.path.basename(path).split(".")[0]
        rows = [r for r in csv.reader(_read_text(path).splitlines(), delimiter="\t",
                                      quoting=csv.QUOTE_NONE) if r]
        ans_path = path[:-4] + ".ans"
        answers = None
        if os.path.isfile(ans_path):
            answers = [line.split("\t") for line in _read_text(ans_path).splitlines()
                       if line.strip()]
            if len(answers) != len(rows):
                raise ValueError(f"{ans_path!r} has {len(answers)} lines but {path!r} has "
                                 f"{len(rows)} stories")
        out = []
        for k, row in enumerate(rows):
            where = f"{path!r} line {k + 1}"
            if len(row) < 8 or (len(row) - 3) % 5:
                raise ValueError(f"{where}: expected id, properties, story and groups of 5 "
                                 f"fields (question, A, B, C, D); got {len(row)} fields")
            story = row[2].replace("\\newline", "\n").replace("\\tab", "\t")
            for i in range((len(row) - 3) // 5):
                q, *opts = row[3 + 5 * i: 8 + 5 * i]
                q = re.sub(r"^(one|multiple):\s*", "", q)
                qwhere = f"{where} question {i + 1}"
                ex = MCExample(f"{row[0]}-{i}", story, q, tuple(opts), None, level)
                check_example(ex, qwhere)
                if answers is not None:
                    raw = answers[k][i].strip() if i < len(answers[k]) else None
                    ex = ex._replace(label=parse_label(raw, len(opts),
                                                       f"{ans_path!r} line {k + 1} answer "
                                                       f"{i + 1}"))
                out.append(ex)
        return out


class GenericReader(Reader):
    """Any CSV / TSV / JSON-lines file set with named columns.

    Args:
      question_column: the question field.
      options_column: one field holding a list of options (JSON lines; a JSON list in a
        CSV/TSV cell), or several comma-separated column names, one option each.
      context_column: the passage field (optional: questions without a passage).
      label_column: the answer field (a letter A.. or a 0-based index); optional in test
        files, and a row whose answer is empty is unlabelled.
      id_column: the question id (default: file name and row number).
    """
    name = "generic"
    EXTENSIONS = (".jsonl", ".csv", ".tsv")

    def __init__(self, question_column=None, options_column=None, context_column=None,
                 label_column=None, id_column=None):
        if not question_column or not options_column:
            raise ValueError("--task=generic needs --question_column and --options_column "
                             "(and usually --context_column and --label_column)")
        self.question_column, self.context_column = question_column, context_column
        self.option_columns = [c.strip() for c in options_column.split(",") if c.strip()]
        self.label_column, self.id_column = label_column, id_column

    def options(self):
        return {"question_column": self.question_column,
                "options_column": ",".join(self.option_columns),
                "context_column": self.context_column, "label_column": self.label_column,
                "id_column": self.id_column}

    def source_files(self, data_dir, split):
        found = [p for ext in self.EXTENSIONS for p in
                 sorted(glob.glob(os.path.join(glob.escape(data_dir), f"{split}{ext}")))]
        if not found:
            raise _missing(data_dir, f"{split}.jsonl, {split}.csv or {split}.tsv")
        if len(found) > 1:
            raise ValueError(f"--data_dir {data_dir!r} has several {split} files "
                             f"{[os.path.basename(p) for p in found]}; keep one")
        return found

    def _rows(self, path):
        text = _read_text(path)
        if path.endswith(".jsonl"):
            for i, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as e:
                    raise ValueError(f"{path!r} line {i} is not JSON ({e})") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path!r} line {i}: expected a JSON object, got "
                                     f"{type(row).__name__}")
                yield i, row
        else:
            delimiter = "\t" if path.endswith(".tsv") else ","
            reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
            for i, row in enumerate(reader, 2):
                yield i, row

    def _field(self, row, column, path, i, required=True):
        if column not in row:
            if not required:
                return None
            raise ValueError(f"{path!r} line {i} has no column {column!r} (it has "
                             f"{sorted(row)}); check the --*_column flags")
        return row[column]

    def read_source(self, path, split):
        out = []
        for i, row in self._rows(path):
            where = f"{path!r} line {i}"
            question = self._field(row, self.question_column, path, i)
            if len(self.option_columns) == 1:
                opts = self._field(row, self.option_columns[0], path, i)
                if isinstance(opts, str):
                    try:
                        opts = json.loads(opts)
                    except ValueError:
                        raise ValueError(f"{where}: column {self.option_columns[0]!r} must "
                                         f"hold a JSON list of options, got {opts[:60]!r}; or "
                                         f"name one column per option "
                                         f"(--options_column=A,B,C,D)") from None
                if not isinstance(opts, list):
                    raise ValueError(f"{where}: column {self.option_columns[0]!r} must hold "
                                     f"a list of options, got {type(opts).__name__}")
            else:
                opts = [self._field(row, c, path, i) for c in self.option_columns]
            context = "" if not self.context_column else \
                self._field(row, self.context_column, path, i)
            qid = self._field(row, self.id_column, path, i) if self.id_column else \
                f"{os.path.basename(path)}-{i}"
            ex = MCExample(str(qid), str(context), str(question), tuple(opts), None)
            check_example(ex, where, need_context=bool(self.context_column))
            raw = self._field(row, self.label_column, path, i, required=split == "train") \
                if self.label_column else None
            if split == "train" and (raw is None or str(raw).strip() == ""):
                raise ValueError(f"{where}: a training question needs its answer "
                                 f"(--label_column={self.label_column})")
            if raw is not None and str(raw).strip() != "":
                ex = ex._replace(label=parse_label(raw, len(opts), where))
            out.append(ex)
        return out


TASKS = ("race", "dream", "mctest", "mc160", "mc500", "generic")


def get_reader(task, *, high_only=False, middle_only=False, **generic):
    """The reader of ``--task`` (see the module docstring); ValueError for an unknown task
    or options that do not apply to it."""
    name = (task or "").strip().lower()
    if name not in TASKS:
        raise ValueError(f"--task={task!r} is not known; choose one of {', '.join(TASKS)}")
    given = {k: v for k, v in generic.items() if v is not None}
    if name != "generic" and given:
        raise ValueError(f"{', '.join('--' + k for k in sorted(given))} only apply to "
                         f"--task=generic, not --task={name}")
    if (high_only or middle_only) and name != "race":
        raise ValueError("--high_only/--middle_only only apply to --task=race")
    if high_only and middle_only:
        raise ValueError("give --high_only or --middle_only, not both")
    if name == "race":
        return RaceReader(("high",) if high_only else ("middle",) if middle_only
                          else RACE_LEVELS)
    if name == "dream":
        return DreamReader()
    if name in ("mc160", "mc500"):
        return MCTestReader((name,))
    if name == "mctest":
        return MCTestReader()
    return GenericReader(**generic)


def level_names(examples: Sequence[MCExample]):
    """The levels present, in first-seen order (``[]`` when the set has none)."""
    seen = []
    for ex in examples:
        if ex.level and ex.level not in seen:
            seen.append(ex.level)
    return seen
