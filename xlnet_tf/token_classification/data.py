"""A split of a tagging data set as the model reads it: the sentences of a CoNLL file,
their windows (``xlnet_tf.token_classification.features``) as [N, T] arrays, and the
alignment counts.

The windows are cached in ``cache_dir`` (``OUTPUT_DIR/data_cache`` or ``--cache_dir``) as
one ``.npz`` file (plain arrays, no pickle) per (file contents, vocabulary, settings): the
name holds the sha256 of all of them, so a changed file, vocabulary or setting builds a
new one and a cached one is reused only for the same inputs.
"""
import dataclasses
import json
import logging
import os
from typing import Dict, List, Optional

import numpy as np

from xlnet_tf.io import atomic_output, sha256_bytes, sha256_file
from xlnet_tf.token_classification.alignment import align_words, underline_id
from xlnet_tf.token_classification.features import WindowFeatures, sentence_windows
from xlnet_tf.token_classification.readers import (
    Sentence, check_tags, detect_scheme, read_conll, to_iob2)
from xlnet_tf.token_classification.task import CONTEXT_KEYS, FEATURE_KEYS

log = logging.getLogger("xlnet_tf")

CACHE_FORMAT = 2


@dataclasses.dataclass
class TaggingData:
    path: str
    sentences: List[Sentence]
    windows: List[WindowFeatures]
    arrays: Dict[str, np.ndarray]
    counts: Dict[str, int]
    reused: bool = False


def load_sentences(path, label_column, scheme=None, has_labels=True):
    """(sentences, scheme) of a CoNLL file: the scheme given (every tag checked against it)
    or detected from the file."""
    sentences = read_conll(path, label_column, has_labels)
    if has_labels:
        scheme = scheme or detect_scheme(sentences, path)
        check_tags(sentences, scheme, path)
    return sentences, scheme


def tag_list_of(sentences):
    """The tags of a training set in id order: ``O`` first, then the others sorted by type,
    then prefix."""
    tags = {t for s in sentences for t in s.tags}
    others = sorted(tags - {"O"}, key=lambda t: (t.partition("-")[2], t))
    return ["O"] + others


def scoring_tags(tags, scheme):
    """Tags as they are scored and written to predictions.txt: bioes read as iob2 (conlleval
    knows no S- / E- pairs of one type), the others as they are."""
    return to_iob2(tags, scheme) if scheme == "bioes" else list(tags)


def build_windows(sentences, tokenizer, tag_list, max_seq_length, doc_stride,
                  label_all_pieces=False, context_len=0):
    """(windows, counts) of ``sentences``; tags not in ``tag_list`` (a dev tag never seen in
    training) are left out of the loss.  With ``context_len`` > 0 each window carries the
    last pieces of its document before it (``Sentence.doc``: a file without -DOCSTART-
    lines is one document)."""
    index = {t: i for i, t in enumerate(tag_list)}
    lone = underline_id(tokenizer)
    windows = []
    counts = {"num_sentences": len(sentences), "num_words": 0, "num_windows": 0,
              "num_split_sentences": 0, "num_empty_words": 0, "num_lone_underline_words": 0,
              "num_unknown_tags": 0}
    before, doc = [], None
    for n, s in enumerate(sentences):
        if s.doc != doc:                     # a new document: no context from the last one
            before, doc = [], s.doc
        aligned = align_words(tokenizer, s.words, lone)
        tag_ids = None
        if s.tags is not None:
            tag_ids = [index.get(t, -1) for t in s.tags]
            counts["num_unknown_tags"] += sum(i < 0 for i in tag_ids)
        w = sentence_windows(n, aligned, tag_ids, max_seq_length, doc_stride,
                             label_all_pieces, context_len, before)
        if context_len:
            before = (before + aligned.ids)[-context_len:]
        windows.extend(w)
        counts["num_words"] += len(s.words)
        counts["num_split_sentences"] += int(len(w) > 1)
        counts["num_empty_words"] += aligned.num_empty
        counts["num_lone_underline_words"] += aligned.num_lone_underline
    counts["num_windows"] = len(windows)
    return windows, counts


def array_keys(context_len):
    """The arrays of a split's windows: FEATURE_KEYS, and CONTEXT_KEYS with a context."""
    return FEATURE_KEYS + (CONTEXT_KEYS if context_len else ())


def _arrays(windows, context_len):
    return {k: np.asarray([getattr(w, k) for w in windows],
                          np.float32 if k.endswith("_mask") else np.int32)
            for k in array_keys(context_len)}


def prepare_data(path, sentences, tokenizer, tag_list, max_seq_length, doc_stride, *,
                 label_all_pieces=False, context_len=0, cache_dir=None, overwrite=False,
                 settings=None):
    """The :class:`TaggingData` of ``sentences`` (read from ``path``), from the cache when
    it holds the same inputs; ``settings`` (JSON-able) adds what else changes the tags."""
    key = {"format": CACHE_FORMAT, "file_sha256": sha256_file(path),
           "spm_sha256": sha256_bytes(tokenizer.serialized_model_proto()),
           "uncased": bool(tokenizer.lower), "tag_list": list(tag_list),
           "max_seq_length": int(max_seq_length), "doc_stride": int(doc_stride),
           "label_all_pieces": bool(label_all_pieces), "context_len": int(context_len),
           "settings": settings}
    digest = sha256_bytes(json.dumps(key, sort_keys=True).encode())[:16]
    cache = os.path.join(cache_dir, f"{os.path.basename(path)}.{digest}.npz") \
        if cache_dir else None
    if cache and not overwrite and os.path.isfile(cache):
        try:
            with np.load(cache, allow_pickle=False) as z:
                arrays = {k: z[k] for k in array_keys(context_len)}
                where = z["positions"]                     # [M, 3] window, word, position
                owner = z["sentence"]                      # [N]
                counts = json.loads(str(z["counts"]))
            windows = [WindowFeatures(int(owner[i]), None, None, None, None, {})
                       for i in range(len(owner))]
            for window, word, pos in where:
                windows[window].positions[int(word)] = int(pos)
            return TaggingData(path, sentences, windows, arrays, counts, True)
        except (OSError, ValueError, KeyError) as e:
            log.info("rebuilding the cached windows %s: %s", cache, e)
    windows, counts = build_windows(sentences, tokenizer, tag_list, max_seq_length,
                                    doc_stride, label_all_pieces, context_len)
    arrays = _arrays(windows, context_len)
    if cache:
        os.makedirs(cache_dir, exist_ok=True)
        where = np.asarray([(i, word, pos) for i, w in enumerate(windows)
                            for word, pos in w.positions.items()], np.int64).reshape(-1, 3)
        with atomic_output(cache) as tmp, open(tmp, "wb") as f:
            np.savez(f, positions=where, counts=np.asarray(json.dumps(counts)),
                     sentence=np.asarray([w.sentence for w in windows], np.int64), **arrays)
    return TaggingData(path, sentences, windows, arrays, counts, False)


def describe(counts, max_seq_length):
    """One line of what the alignment did."""
    return (f"{counts['num_sentences']} sentences, {counts['num_words']} words, "
            f"{counts['num_windows']} windows ({counts['num_split_sentences']} sentences "
            f"longer than {max_seq_length - 2} pieces split), {counts['num_empty_words']} "
            f"words without a piece (read as <unk>), {counts['num_lone_underline_words']} "
            f"words starting with a lone '\u2581' (labelled on their next piece)")


def optional_tags(sentences) -> Optional[List[List[str]]]:
    return None if sentences[0].tags is None else [s.tags for s in sentences]
