"""SQuAD examples -> model features: the original ``run_squad.py``'s
``convert_examples_to_features``, step by step:

1. ``query = encode_ids(preprocess_text(question, lower=uncased))[:max_query_length]``.
2. The paragraph's pieces and their raw-character maps (:mod:`xlnet_tf.squad.alignment`),
   computed once per distinct paragraph.
3. Training labels: the answer's character span -> piece span.
4. Sliding windows (``doc_stride``) with the ``token_is_max_context`` rule.
5. Layout ``P <sep> Q <sep> <cls>`` + RIGHT padding (pad id 0, input_mask 1 = padding,
   segment P=0 Q=1 CLS=2 PAD=3), ``p_mask`` 1 = cannot be an answer boundary (the CLS
   position has p_mask 0 so "no answer" can point there).
6. Labels relative to the window; answer outside the window or unanswerable -> both
   positions = ``cls_index`` and ``is_impossible`` = 1.
7. ``unique_id`` from 1000000000, one per feature, in example order.

The paragraphs are converted in a multiprocessing pool (``num_workers``, default all cores).
"""
import collections
import logging
import multiprocessing
import os
import time

import numpy as np

from xlnet_tf.squad.alignment import convert_index, prepare_paragraph
from xlnet_tf.tokenization import tokenizer as tok_lib

log = logging.getLogger("xlnet_tf")

FIRST_UNIQUE_ID = 1000000000
SEG_ID_P = tok_lib.SQUAD_SEG_ID_P
SEG_ID_Q = tok_lib.SQUAD_SEG_ID_Q
SEG_ID_CLS = tok_lib.SQUAD_SEG_ID_CLS
SEG_ID_PAD = tok_lib.SQUAD_SEG_ID_PAD
# The fine-tuning scripts pad with id 0 (<unk>), not <pad>=5; padding is masked anyway.
PAD_TOKEN_ID = 0


class InputFeatures:
    """One window of one example (the original's ``InputFeatures``).

    Memory matters for SQuAD train (~130k features), so only the unpadded token ids and
    lengths are stored; the padded model inputs are built on access:

      input_ids    int32   [max_seq_length]  P <sep> Q <sep> <cls> then pad id 0
      input_mask   float32 [max_seq_length]  0 = real token, 1 = padding
      seg_ids      int32   [max_seq_length]  P (and first <sep>) 0, Q (and second <sep>) 1,
                                             <cls> 2, padding 3
      p_mask       float32 [max_seq_length]  1 = cannot be an answer boundary (sep, Q, pad);
                                             0 for paragraph tokens and <cls>

    Other attributes: ``unique_id``, ``example_index``, ``doc_span_index``,
    ``paragraph_len`` (P tokens in this window), ``cls_index``,
    ``tok_start_to_orig_index`` / ``tok_end_to_orig_index`` (int32 ``[paragraph_len]``:
    first/last raw character of each window token), ``token_is_max_context`` (bool
    ``[paragraph_len]``; the original used a dict {position: bool}), and for training
    ``start_position``, ``end_position`` (window positions; ``cls_index`` when there is no
    answer in the window) and ``is_impossible``.
    """
    __slots__ = ("unique_id", "example_index", "doc_span_index", "tok_start_to_orig_index",
                 "tok_end_to_orig_index", "token_is_max_context", "tokens", "query_len",
                 "max_seq_length", "paragraph_len", "start_position", "end_position",
                 "is_impossible")

    def __init__(self, unique_id, example_index, doc_span_index, tok_start_to_orig_index,
                 tok_end_to_orig_index, token_is_max_context, tokens, query_len, max_seq_length,
                 paragraph_len, start_position=None, end_position=None, is_impossible=None):
        self.unique_id = unique_id
        self.example_index = example_index
        self.doc_span_index = doc_span_index
        self.tok_start_to_orig_index = tok_start_to_orig_index
        self.tok_end_to_orig_index = tok_end_to_orig_index
        self.token_is_max_context = token_is_max_context
        self.tokens = tokens  # int32 [paragraph_len + query_len + 3], unpadded
        self.query_len = query_len
        self.max_seq_length = max_seq_length
        self.paragraph_len = paragraph_len
        self.start_position = start_position
        self.end_position = end_position
        self.is_impossible = is_impossible

    @property
    def cls_index(self):
        return self.paragraph_len + self.query_len + 2

    @property
    def input_ids(self):
        out = np.full(self.max_seq_length, PAD_TOKEN_ID, dtype=np.int32)  # [L]
        out[:len(self.tokens)] = self.tokens
        return out

    @property
    def input_mask(self):
        out = np.ones(self.max_seq_length, dtype=np.float32)  # [L]
        out[:len(self.tokens)] = 0.0
        return out

    @property
    def seg_ids(self):
        out = np.full(self.max_seq_length, SEG_ID_PAD, dtype=np.int32)  # [L]
        p, q = self.paragraph_len, self.query_len
        out[:p + 1] = SEG_ID_P
        out[p + 1:p + q + 2] = SEG_ID_Q
        out[p + q + 2] = SEG_ID_CLS
        return out

    @property
    def p_mask(self):
        out = np.ones(self.max_seq_length, dtype=np.float32)  # [L]
        out[:self.paragraph_len] = 0.0
        out[self.cls_index] = 0.0
        return out

    def __repr__(self):
        return (f"InputFeatures(unique_id={self.unique_id}, example_index={self.example_index}, "
                f"doc_span_index={self.doc_span_index}, paragraph_len={self.paragraph_len}, "
                f"cls_index={self.cls_index}, start_position={self.start_position}, "
                f"end_position={self.end_position}, is_impossible={self.is_impossible})")


class FeatureList(list):
    """A list of :class:`InputFeatures` plus what conversion dropped.

    Attributes:
      num_examples: examples given.
      dropped_qas_ids: examples that produced no feature (alignment mismatch, empty
        paragraph, answer that could not be mapped).
    """
    num_examples = 0
    dropped_qas_ids = ()


def _max_context_owner(doc_spans, num_tokens):
    """For every token, the index of the span that gives it the most context.

    The original's ``_check_is_max_context`` per token: score = ``min(left context, right
    context) + 0.01 * span length``, and the first span with the highest score owns the token
    (``np.argmax`` returns the first maximum).
    """
    scores = np.full((len(doc_spans), num_tokens), -np.inf)                  # [S, N]
    pos = np.arange(num_tokens)                                               # [N]
    for s, (start, length) in enumerate(doc_spans):
        end = start + length - 1
        p = pos[start:end + 1]
        scores[s, start:end + 1] = np.minimum(p - start, end - p) + 0.01 * length
    return np.argmax(scores, axis=0)                                          # [N]


def _doc_spans(num_tokens, max_tokens_for_doc, doc_stride):
    """Sliding windows ``(start, length)`` covering ``num_tokens`` tokens."""
    spans, start = [], 0
    while start < num_tokens:
        length = min(num_tokens - start, max_tokens_for_doc)
        spans.append((start, length))
        if start + length == num_tokens:
            break
        start += min(length, doc_stride)
    return spans


def _example_features(sp_model, example, info, settings):
    """Steps 1 and 3-6 for one example; returns (list of feature kwargs, warning or None)."""
    max_seq_length, doc_stride, max_query_length, is_training, lower, keep_accents = settings
    query_ids = tok_lib.encode_ids(
        sp_model, tok_lib.preprocess_text(example.question_text, lower=lower, keep_accents=keep_accents))
    query_ids = query_ids[:max_query_length]
    q_len = len(query_ids)

    tok_start_position = tok_end_position = -1
    if is_training and not example.is_impossible:
        start_char = example.start_position
        end_char = start_char + len(example.orig_answer_text) - 1
        start_chartok = convert_index(info.orig_to_chartok, start_char, is_start=True)
        end_chartok = convert_index(info.orig_to_chartok, end_char, is_start=False)
        tok_start_position = info.chartok_to_tok[start_chartok]
        tok_end_position = info.chartok_to_tok[end_chartok]
        if tok_start_position > tok_end_position:
            return [], (f"question {example.qas_id}: answer {example.orig_answer_text!r} maps to "
                        f"pieces {tok_start_position}..{tok_end_position} (start after end); skipped")

    all_doc_tokens = info.para_ids
    max_tokens_for_doc = max_seq_length - q_len - 3
    doc_spans = _doc_spans(len(all_doc_tokens), max_tokens_for_doc, doc_stride)
    owner = _max_context_owner(doc_spans, len(all_doc_tokens))                 # [N]
    tail = [tok_lib.SEP_ID] + query_ids + [tok_lib.SEP_ID, tok_lib.CLS_ID]
    out = []
    for span_index, (doc_start, length) in enumerate(doc_spans):
        window = slice(doc_start, doc_start + length)
        tokens = np.asarray(all_doc_tokens[window] + tail, dtype=np.int32)       # [P + Q + 3]
        is_max = owner[window] == span_index                                      # [P]
        cls_index = length + q_len + 2
        start_position = end_position = span_is_impossible = None
        if is_training:
            span_is_impossible = bool(example.is_impossible)
            if not span_is_impossible:
                doc_end = doc_start + length - 1
                if tok_start_position >= doc_start and tok_end_position <= doc_end:
                    # P comes first in the layout, so the offset inside the window is 0.
                    start_position = tok_start_position - doc_start
                    end_position = tok_end_position - doc_start
                else:
                    span_is_impossible = True
            if span_is_impossible:
                start_position = end_position = cls_index
        out.append(dict(
            doc_span_index=span_index,
            tok_start_to_orig_index=np.asarray(info.tok_start_to_orig[window], dtype=np.int32),
            tok_end_to_orig_index=np.asarray(info.tok_end_to_orig[window], dtype=np.int32),
            token_is_max_context=is_max, tokens=tokens, query_len=q_len,
            max_seq_length=max_seq_length, paragraph_len=length, start_position=start_position,
            end_position=end_position,
            is_impossible=None if span_is_impossible is None else float(span_is_impossible)))
    return out, None


# -- worker side -----------------------------------------------------------------------------
_WORKER = {}


def _init_worker(model_proto, settings):
    import sentencepiece as spm
    sp_model = spm.SentencePieceProcessor()
    sp_model.LoadFromSerializedProto(model_proto)
    _WORKER["sp"] = sp_model
    _WORKER["settings"] = settings


def _convert_group(group):
    """Converts all examples of one paragraph: ``[(example_index, example), ...]``.

    Returns ``(results, warnings)`` with ``results = [(example_index, [feature kwargs])]``.
    Warnings travel back to the parent so they are logged in one place.
    """
    sp_model, settings = _WORKER["sp"], _WORKER["settings"]
    lower, keep_accents = settings[4], settings[5]
    results, warnings = [], []
    paragraph_text = group[0][1].paragraph_text
    info = prepare_paragraph(sp_model, paragraph_text, lower, keep_accents)
    if info is None:
        ids = ", ".join(ex.qas_id for _, ex in group[:5])
        warnings.append(f"MISMATCH DETECTED! the paragraph of question(s) {ids}"
                        f"{' ...' if len(group) > 5 else ''} is empty or does not align with its "
                        f"SentencePiece pieces (< 80% of characters matched); {len(group)} "
                        f"question(s) dropped.")
        return [(idx, []) for idx, _ in group], warnings
    for idx, example in group:
        feats, warning = _example_features(sp_model, example, info, settings)
        if warning:
            warnings.append(warning)
        results.append((idx, feats))
    return results, warnings


def _group_by_paragraph(examples):
    """Groups example indices by paragraph text (first-appearance order)."""
    groups = collections.OrderedDict()
    for idx, ex in enumerate(examples):
        groups.setdefault(ex.paragraph_text, []).append((idx, ex))
    return list(groups.values())


def _tokenizer_parts(tokenizer):
    sp_model = getattr(tokenizer, "sp_model", None) or getattr(tokenizer, "sp", None)
    if sp_model is None:
        raise TypeError(f"tokenizer must be an xlnet_tf.tokenization.tokenizer.Tokenizer, got {type(tokenizer).__name__}")
    if hasattr(tokenizer, "serialized_model_proto"):
        proto = tokenizer.serialized_model_proto()
    else:
        proto = sp_model.serialized_model_proto()
    return sp_model, proto, bool(getattr(tokenizer, "lower", False)), bool(getattr(tokenizer, "keep_accents", False))


def convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length,
                                 is_training, num_workers=None, log_every_sec=10.0):
    """Turns examples into model features (module docstring, steps 1-7).

    Args:
      examples: list of :class:`SquadExample` (from :func:`read_squad_examples`).
      tokenizer: an ``xlnet_tf.tokenization.tokenizer.Tokenizer``; its ``lower`` is the original
        ``--uncased`` flag.
      max_seq_length, doc_stride, max_query_length: the original flags (512, 128, 64).
      is_training: also build start/end labels and ``is_impossible``.
      num_workers: processes for the conversion (default ``os.cpu_count()``); small inputs
        are converted in this process.
      log_every_sec: progress log interval.
    Returns:
      a :class:`FeatureList` in example order, ``unique_id`` from 1000000000.
    """
    if max_seq_length < 8:
        raise ValueError(f"max_seq_length={max_seq_length} is too small for SQuAD windows.")
    if max_query_length < 1 or doc_stride < 1:
        raise ValueError(f"max_query_length ({max_query_length}) and doc_stride ({doc_stride}) must be >= 1.")
    if max_seq_length - max_query_length - 3 < 1:
        raise ValueError(
            f"max_seq_length={max_seq_length} leaves no room for the paragraph after a "
            f"max_query_length={max_query_length} question and 3 special tokens; use "
            f"max_seq_length > max_query_length + 3 (the original used 512 and 64).")
    sp_model, proto, lower, keep_accents = _tokenizer_parts(tokenizer)
    settings = (int(max_seq_length), int(doc_stride), int(max_query_length), bool(is_training),
                lower, keep_accents)
    groups = _group_by_paragraph(examples)
    num_workers = (os.cpu_count() or 1) if num_workers is None else max(1, int(num_workers))

    per_example = [None] * len(examples)
    done = 0
    t0 = last_log = time.time()

    def consume(results, warnings):
        nonlocal done, last_log
        for w in warnings:
            log.warning("%s", w)
        for idx, feats in results:
            per_example[idx] = feats
        done += len(results)
        now = time.time()
        if now - last_log >= log_every_sec:
            last_log = now
            log.info("SQuAD features: %d/%d examples (%.0f examples/s)", done, len(examples),
                        done / max(now - t0, 1e-9))

    if num_workers > 1 and len(groups) >= 4 * num_workers and len(examples) >= 200:
        # fork keeps the parent's imported modules (the xlnet_tf package imports TensorFlow,
        # which a spawned worker would import again); workers only run SentencePiece + Python.
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        chunksize = max(1, min(32, len(groups) // (num_workers * 8)))
        with ctx.Pool(num_workers, initializer=_init_worker, initargs=(proto, settings)) as pool:
            for results, warnings in pool.imap_unordered(_convert_group, groups, chunksize=chunksize):
                consume(results, warnings)
    else:
        _init_worker(proto, settings)
        for group in groups:
            consume(*_convert_group(group))

    features = FeatureList()
    dropped = []
    unique_id = FIRST_UNIQUE_ID
    for idx, feats in enumerate(per_example):
        if not feats:
            dropped.append(examples[idx].qas_id)
            continue
        for kw in feats:
            features.append(InputFeatures(unique_id=unique_id, example_index=idx, **kw))
            unique_id += 1
    features.num_examples = len(examples)
    features.dropped_qas_ids = tuple(dropped)
    elapsed = max(time.time() - t0, 1e-9)
    log.info("SQuAD features: %d examples -> %d features in %.1fs (%.0f examples/s, %d workers); "
                "%d example(s) dropped.", len(examples), len(features), elapsed,
                len(examples) / elapsed, num_workers, len(dropped))
    return features

