"""SQuAD v1.1 / v2.0 JSON -> :class:`SquadExample` objects (the original's
``read_squad_examples``), with the questions that cannot be used counted and logged."""
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
    for a_i, entry in enumerate(obj["data"]):
        for p_i, paragraph in enumerate(entry.get("paragraphs", ())):
            if "context" not in paragraph or "qas" not in paragraph:
                raise ValueError(f"SQuAD file {path!r}: data[{a_i}].paragraphs[{p_i}] lacks "
                                 f"'context' or 'qas'.")
            paragraph_text = paragraph["context"]
            empty = not paragraph_text.strip()
            if empty and paragraph["qas"]:
                log.warning("%s: data[%d].paragraphs[%d] has an empty context; skipping its "
                               "%d question(s).", path, a_i, p_i, len(paragraph["qas"]))
            for qa in paragraph["qas"]:
                qas_id = qa["id"]
                if empty:
                    num_empty += 1
                    skipped.append(qas_id)
                    continue
                is_impossible = bool(qa.get("is_impossible", False))
                answers = []
                bad = False
                for ans in qa.get("answers", ()):
                    text, start = ans["text"], ans["answer_start"]
                    if _answer_matches(paragraph_text, text, start):
                        answers.append((text, start))
                    else:
                        bad = True
                        num_bad += 1
                        log.warning(
                            "%s: question %s: answer %r does not occur at answer_start=%s "
                            "(the context there reads %r).", path, qas_id, text, start,
                            paragraph_text[start:start + len(text)] if isinstance(start, int) else None)
                orig_answer_text, start_position = None, None
                if is_training:
                    if is_impossible:
                        orig_answer_text, start_position = "", -1
                    else:
                        if bad or not qa.get("answers"):
                            if not bad:
                                log.warning("%s: question %s is answerable but has no answers; "
                                               "skipping it.", path, qas_id)
                            skipped.append(qas_id)
                            continue
                        orig_answer_text, start_position = answers[0]
                examples.append(SquadExample(
                    qas_id=qas_id, question_text=qa["question"], paragraph_text=paragraph_text,
                    orig_answer_text=orig_answer_text, start_position=start_position,
                    is_impossible=is_impossible, answers=answers))
    examples.num_bad_offsets = num_bad
    examples.num_empty_context = num_empty
    examples.skipped_qas_ids = tuple(skipped)
    if num_bad or skipped:
        log.warning("%s: read %d questions; %d answer offset(s) did not match the text; "
                       "%d question(s) skipped.", path, len(examples), num_bad, len(skipped))
    return examples

