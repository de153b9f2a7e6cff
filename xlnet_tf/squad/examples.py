"""SQuAD v1.1 / v2.0 JSON -> :class:`SquadExample` objects (the original's
``read_squad_examples``), with the questions that cannot be used counted and logged."""
import json
import logging

from xlnet_tf.io import read_json

log = logging.getLogger("xlnet_tf")


class SquadExample:
    """One question over one paragraph (the original's ``SquadExample``).

    Attributes:
      qas_id: the question id.
      question_text: the question.
      paragraph_text: the RAW context (answers are cut out of this text).
      orig_answer_text: training answer text ("" for impossible; None at prediction).
      start_position: training answer character offset (-1 for impossible; None at prediction).
      is_impossible: True for SQuAD 2.0 unanswerable questions.
      answers: all gold answers as ``[(text, answer_start), ...]`` (empty if unanswerable);
        kept for evaluation and tests, not used to build features.
    """
    __slots__ = ("qas_id", "question_text", "paragraph_text", "orig_answer_text",
                 "start_position", "is_impossible", "answers")

    def __init__(self, qas_id, question_text, paragraph_text, orig_answer_text=None,
                 start_position=None, is_impossible=False, answers=()):
        self.qas_id = qas_id
        self.question_text = question_text
        self.paragraph_text = paragraph_text
        self.orig_answer_text = orig_answer_text
        self.start_position = start_position
        self.is_impossible = is_impossible
        self.answers = list(answers)

    def __repr__(self):
        return (f"SquadExample(qas_id={self.qas_id!r}, question={self.question_text[:40]!r}, "
                f"start_position={self.start_position}, is_impossible={self.is_impossible})")


class ExampleList(list):
    """A list of :class:`SquadExample` plus what reading skipped.

    Attributes:
      num_bad_offsets: answers whose ``answer_start`` does not point at their text.
      num_empty_context: questions skipped because their context is empty.
      skipped_qas_ids: ids of questions that were skipped.
    """
    num_bad_offsets = 0
    num_empty_context = 0
    skipped_qas_ids = ()


def _answer_matches(context, text, start):
    return isinstance(start, int) and 0 <= start and context[start:start + len(text)] == text


def _field(obj, key, kinds, where, what):
    """``obj[key]`` when it has one of the types ``kinds``, else ValueError naming ``where``."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where} is a JSON {type(obj).__name__}, expected an object with "
                         f"{what}")
    if key not in obj:
        raise ValueError(f"{where} has no {key!r} (keys found: {sorted(obj)[:10]}); "
                         f"expected {what}")
    value = obj[key]
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise ValueError(f"{where}.{key} is {_describe(value)}; expected {what}")
    return value


def _describe(value, limit=40):
    """``null`` or ``a JSON <type> <value>`` (cut to ``limit`` characters) for a message."""
    if value is None:
        return "null"
    text = json.dumps(value, ensure_ascii=False)
    kind = {str: "string", int: "number", float: "number", list: "list", dict: "object",
            bool: "boolean"}.get(type(value), type(value).__name__)
    return f"the JSON {kind} {text if len(text) <= limit else text[:limit] + '...'}"


def _answer_start(value, where):
    """``answer_start``: an integer, or a string of digits (accepted: the number is
    unambiguous)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"{where}.answer_start is {_describe(value)}; expected the answer's character offset "
                     f"in the context (an integer)")


def _is_impossible(value, where):
    """``is_impossible``: true/false, 0/1 or the strings "true"/"false"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{where}.is_impossible is {_describe(value)}; expected true or false")


def read_squad_examples(input_file, is_training):
    """Reads a SQuAD v1.1 or v2.0 JSON file into :class:`SquadExample` objects.

    * ``is_impossible`` is optional (SQuAD 1.1 has none) and defaults to False (the
      original required it, so it could not train on 1.1 — zihangdai/xlnet#58).
    * Training uses the first gold answer (SQuAD train files have exactly one; dev files
      list several, the first is taken). Impossible → ``start_position`` -1, text "".
    * An answer whose ``answer_start`` does not point at its text is logged and counted
      (``num_bad_offsets``). At training time the question is skipped; at prediction time the
      question is kept (its answers are not used to build features) and the bad answer is
      left out of ``answers``.
    * A question whose context is empty or only whitespace is logged and skipped.
    * A malformed entry is a ValueError naming the file and its position (e.g.
      ``data[0].paragraphs[3].qas[1]``): a question without a string ``id`` or ``question``,
      an id used twice, a ``context`` that is null or not a string, an answer without
      ``text``.  Values that are unambiguous are accepted: ``answer_start`` as a string of
      digits, ``is_impossible`` as 0/1 or "true"/"false".  A UTF-16, compressed or JSON
      Lines file is named as such (:func:`xlnet_tf.io.read_json`).

    Returns:
      an :class:`ExampleList` (a list) with the counts as attributes.
    """
    path = str(input_file)
    obj = read_json(path, what="SQuAD file")
    if not isinstance(obj.get("data"), list):
        found = sorted(obj)[:10]
        raise ValueError(f"SQuAD file {path!r} has no top-level 'data' list (found {found}); "
                         f"pass the official SQuAD v1.1/v2.0 JSON.")

    examples = ExampleList()
    skipped, num_bad, num_empty = [], 0, 0
    seen = {}
    for a_i, entry in enumerate(obj["data"]):
        here = f"SQuAD file {path!r}: data[{a_i}]"
        if isinstance(entry, dict) and "paragraphs" not in entry:
            continue                    # an article without paragraphs has no questions
        paragraphs = _field(entry, "paragraphs", list, here, "a list of paragraphs")
        for p_i, paragraph in enumerate(paragraphs):
            where = f"{here}.paragraphs[{p_i}]"
            paragraph_text = _field(paragraph, "context", str, where, "the paragraph text "
                                    "(a string)")
            qas = _field(paragraph, "qas", list, where, "a list of questions")
            empty = not paragraph_text.strip()
            if empty and qas:
                log.warning("%s: data[%d].paragraphs[%d] has an empty context; skipping its "
                               "%d question(s).", path, a_i, p_i, len(qas))
            for q_i, qa in enumerate(qas):
                q_where = f"{where}.qas[{q_i}]"
                qas_id = _field(qa, "id", str, q_where, "a question id (a string)")
                if qas_id in seen:
                    raise ValueError(f"{q_where} has the id {qas_id!r} of {seen[qas_id]}; "
                                     f"question ids must be unique")
                seen[qas_id] = q_where.split(": ", 1)[1]
                question = _field(qa, "question", str, q_where, "the question text (a string)")
                if empty:
                    num_empty += 1
                    skipped.append(qas_id)
                    continue
                is_impossible = _is_impossible(qa.get("is_impossible", False), q_where)
                raw_answers = qa.get("answers") or []
                if not isinstance(raw_answers, list):
                    raise ValueError(f"{q_where}.answers is a JSON "
                                     f"{type(raw_answers).__name__}; expected a list")
                answers = []
                bad = False
                for n_i, ans in enumerate(raw_answers):
                    a_where = f"{q_where}.answers[{n_i}]"
                    text = _field(ans, "text", str, a_where, "the answer text (a string)")
                    start = _answer_start(ans.get("answer_start"), a_where)
                    if _answer_matches(paragraph_text, text, start):
                        answers.append((text, start))
                    else:
                        bad = True
                        num_bad += 1
                        log.warning(
                            "%s: question %s: answer %r does not occur at answer_start=%s "
                            "(the context there reads %r).", path, qas_id, text, start,
                            paragraph_text[start:start + len(text)] if start >= 0 else None)
                orig_answer_text, start_position = None, None
                if is_training:
                    if is_impossible:
                        orig_answer_text, start_position = "", -1
                    else:
                        if bad or not raw_answers:
                            if not bad:
                                log.warning("%s: question %s is answerable but has no answers; "
                                               "skipping it.", path, qas_id)
                            skipped.append(qas_id)
                            continue
                        orig_answer_text, start_position = answers[0]
                examples.append(SquadExample(
                    qas_id=qas_id, question_text=question, paragraph_text=paragraph_text,
                    orig_answer_text=orig_answer_text, start_position=start_position,
                    is_impossible=is_impossible, answers=answers))
    examples.num_bad_offsets = num_bad
    examples.num_empty_context = num_empty
    examples.skipped_qas_ids = tuple(skipped)
    if num_bad or skipped:
        log.warning("%s: read %d questions; %d answer offset(s) did not match the text; "
                       "%d question(s) skipped.", path, len(examples), num_bad, len(skipped))
    return examples
