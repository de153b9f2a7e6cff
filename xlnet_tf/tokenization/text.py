"""XLNet's text rules and the task readers' text clean-ups, each declared ONCE.

Both the Python path (the data readers, :class:`xlnet_tf.tokenization.Tokenizer`) and the
in-graph path (``tf.strings`` ops in :mod:`xlnet_tf.tokenization.in_graph` and in exported
SavedModels) apply the declarations below, so an exported model sees the text exactly as
training did.

XLNet's text rules (the original's ``prepro_utils.preprocess_text``), in this order:

1. whitespace: strip, then collapse every run of `is_space` characters to one ASCII space;
2. the literal replacements `QUOTE_REPLACEMENTS` (LaTeX-style quotes of tokenized corpora);
3. accents: Unicode NFKD, then delete every `is_accent` character;
4. lower-case (``str.lower``), when asked.

Task clean-ups (`TASK_CLEANUPS`) run before those rules, on the raw text a task reader
read: literal (search, replacement) pairs applied in order.

Light module: TensorFlow is imported only by the ``*_tf`` functions.
"""
import unicodedata

# Character predicates of the rules; the in-graph path builds its RE2 character classes from
# them, so both paths use exactly the same characters.
is_space = str.isspace                      # str.split() / str.strip() whitespace


def is_accent(c):
    """A combining character (canonical combining class > 0): deleted after NFKD."""
    return unicodedata.combining(c) != 0


# Rule 2: replaced left to right, non-overlapping, in this order (str.replace semantics).
QUOTE_REPLACEMENTS = (("``", '"'), ("''", '"'))

# The Yelp CSVs of the Zhang et al. (2015) release still hold their escapes after CSV
# parsing: ``\"`` and a doubled ``""`` for a quote (the original fixes both) and a literal
# backslash-n for a line break.  We also turn the literal ``\n`` into a space (the original
# left it, so it became the pieces of ``\`` and ``n``); preprocess_text then collapses the
# whitespace.
_YELP = (("\\n", " "), ('\\"', '"'), ('""', '"'))

# Task reader clean-ups by task name (other tasks: none).  IMDB reviews hold HTML line
# breaks, ``<br />``, which become a space.
TASK_CLEANUPS = {
    "imdb": (("<br />", " "),),
    "yelp2": _YELP,
    "yelp5": _YELP,
}


def task_cleanups(task):
    """The (search, replacement) pairs of ``task`` (case-insensitive; () for most tasks)."""
    return TASK_CLEANUPS.get(str(task).lower(), ())


def replace_literals(text, pairs):
    """Apply literal (search, replacement) ``pairs`` in order (``str.replace``)."""
    for old, new in pairs:
        text = text.replace(old, new)
    return text


_RE2_SPECIAL = set("\\.^$|?*+()[]{}")


def _re2_literal(text):
    """An RE2 pattern matching ``text`` literally."""
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in text)


def replace_literals_tf(texts, pairs):
    """`replace_literals` on a ``tf.string`` tensor (any shape): ``tf.strings.regex_replace``
    with each search escaped and each replacement's backslashes doubled (RE2 rewrite
    strings treat ``\\`` as an escape).  Global RE2 replacement of a literal is left to
    right and non-overlapping, like ``str.replace``."""
    import tensorflow as tf

    texts = tf.convert_to_tensor(texts, dtype=tf.string)
    for old, new in pairs:
        texts = tf.strings.regex_replace(texts, _re2_literal(old), new.replace("\\", "\\\\"))
    return texts


def clean_text(text, task):
    """The clean-up of ``task``'s reader on one ``str`` (identity for most tasks)."""
    return replace_literals(text, task_cleanups(task))


def clean_text_tf(texts, task):
    """In-graph `clean_text` on a ``tf.string`` tensor (identity for most tasks)."""
    return replace_literals_tf(texts, task_cleanups(task))


def preprocess_text(inputs, lower=False, remove_space=True, keep_accents=False):
    """Applies XLNet's text rules, in the original order.

    1. ``remove_space``: strip, then collapse every whitespace run (``str.split()`` rules,
       so Unicode spaces count too) to one ASCII space.
    2. ``\\`\\``` and ``''`` become ``"`` (`QUOTE_REPLACEMENTS`).
    3. Unless ``keep_accents``: Unicode NFKD, then drop every character whose canonical
       combining class is non-zero. NFKD is a *compatibility* decomposition, so ligatures
       (``ﬁ`` → ``fi``), full-width forms, fractions, superscripts are rewritten too.
    4. ``lower``: lower-case (after accent stripping; ``str.lower``).

    Args:
      inputs: a ``str`` (``bytes`` are decoded as UTF-8).
    Returns:
      the normalised ``str``.
    """
    if isinstance(inputs, bytes):
        inputs = inputs.decode("utf-8")
    if not isinstance(inputs, str):
        raise TypeError(f"preprocess_text expects str or bytes, got {type(inputs).__name__}: {inputs!r}")
    outputs = " ".join(inputs.strip().split()) if remove_space else inputs
    outputs = replace_literals(outputs, QUOTE_REPLACEMENTS)
    if not keep_accents:
        outputs = unicodedata.normalize("NFKD", outputs)
        outputs = "".join(c for c in outputs if not is_accent(c))
    if lower:
        outputs = outputs.lower()
    return outputs
