"""Turn the raw pretraining text of the transfer experiment into the records' input format:
one sentence per line, a blank line between documents.

The record builder (like the original ``data_utils.py``) takes a line as a sentence and a
blank line as the end of a document; the A/B split of a record cuts at sentence boundaries.
A file with one whole review per line and no blank lines (the IMDB unlabelled reviews) would
read as ONE document whose "sentences" are ~300-token reviews: almost no window of 128
tokens would then hold a sentence boundary, and the HTML line breaks (``<br />``) would be
pretrained as text.  So each review becomes a document, ``<br />`` a sentence break, and
Wikipedia paragraphs are split into sentences (section headings dropped).
"""
import os
import re

_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
# a sentence ends at . ! ? (optionally closed by a quote or bracket) before white space and
# an upper-case letter, a digit or an opening quote/bracket
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[])")
_SPACES = re.compile(r"\s+")


def split_sentences(text):
    """Sentences of a paragraph (a rule-based split: good enough for span/segment
    boundaries; it never drops text)."""
    text = _SPACES.sub(" ", text).strip()
    if not text:
        return []
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def review_documents(path):
    """IMDB-style file: one review per line -> one document per review."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            sentences = [s for part in _BR.split(line) for s in split_sentences(part)]
            if sentences:
                yield sentences


def wiki_documents(path, min_words=6):
    """WikiExtractor-style file: a title line, paragraphs one per line, a blank line between
    articles.  Lines shorter than ``min_words`` words (titles, section headings such as
    "Professional career.") are left out."""
    doc = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                if doc:
                    yield doc
                doc = []
                continue
            if len(line.split()) < min_words:
                continue
            doc.extend(split_sentences(line))
    if doc:
        yield doc


def write_corpus(out_path, sources):
    """Write [(kind, path)] (kind "reviews" or "wiki") to ``out_path`` in the records'
    format, through a temporary file.  Returns (documents, sentences, words)."""
    readers = {"reviews": review_documents, "wiki": wiki_documents}
    n_doc = n_sent = n_word = 0
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        for kind, path in sources:
            if kind not in readers:
                raise ValueError(f"unknown corpus kind {kind!r} for {path} "
                                 f"(use one of {sorted(readers)})")
            for doc in readers[kind](path):
                out.write("\n".join(doc) + "\n\n")
                n_doc += 1
                n_sent += len(doc)
                n_word += sum(len(s.split()) for s in doc)
    os.replace(tmp, out_path)
    return n_doc, n_sent, n_word
