"""Infilling: blanks anywhere in a text, predicted with the text on both sides visible.

    fill(model, tokenizer, "The <mask> sat on the <mask> .", order="confidence").text

Each ``<mask>`` becomes ``span_length`` blank positions.  At every step the query stream
predicts all unfilled blanks at once (one target_mapping row each); no position may see a
blank that is still unfilled (its perm_mask column is 1), so a blank sees the whole text
and the blanks filled before it.  One blank is filled per step: the leftmost
(``left_to_right``) or the one whose best token is most probable (``confidence``); it then
becomes visible to the others.  ``left_context_only=True`` also hides everything right of
a blank: what a left-to-right LM could use (for comparisons).
"""
import dataclasses

import numpy as np

from xlnet_tf.generation import inputs as inputs_lib
from xlnet_tf.generation import sampling
from xlnet_tf.generation.generator import NEVER_GENERATED, inference_options
from xlnet_tf.tokenization.tokenizer import EOD_ID, EOS_ID, MASK_ID

ORDERS = ("left_to_right", "confidence")


@dataclasses.dataclass
class Fill:
    """``text``: the filled text; ``ids``: its ids; ``filled``: (position, id) in the
    order the blanks were filled."""
    text: str
    ids: list
    filled: list


def blank_ids(tokenizer, text, span_length=1, mask_token="<mask>"):
    """(ids with ``<mask>`` at the blanks, blank positions) of ``text``."""
    parts = text.split(mask_token)
    if len(parts) < 2:
        raise ValueError(f"the text has no {mask_token}: mark each blank with {mask_token}")
    ids, blanks = [], []
    for k, part in enumerate(parts):
        if part.strip():
            ids += tokenizer.encode_ids(part)
        if k < len(parts) - 1:
            blanks += list(range(len(ids), len(ids) + span_length))
            ids += [MASK_ID] * span_length
    return ids, blanks


def fill(model, tokenizer, text, order="left_to_right", span_length=1, strategy="greedy",
         temperature=1.0, top_k=0, top_p=1.0, seed=0, mask_token="<mask>",
         left_context_only=False):
    """Fill every ``mask_token`` of ``text`` (see the module doc); returns a :class:`Fill`."""
    if order not in ORDERS:
        raise ValueError(f"order={order!r}: use one of {', '.join(ORDERS)}")
    if int(span_length) < 1:
        raise ValueError(f"span_length={span_length!r} must be >= 1")
    sampling.check_options(strategy, temperature, top_k, top_p)
    ids, unfilled = blank_ids(tokenizer, text, int(span_length), mask_token)
    n_token = model.xlnet_config.n_token
    banned = np.zeros([n_token], bool)
    banned[tokenizer.vocab_size:] = True
    banned[list(NEVER_GENERATED) + [EOD_ID, EOS_ID]] = True
    filled = []
    with inference_options(model, None):
        step = 0
        while unfilled:
            feats = inputs_lib.fill_inputs(ids, unfilled, left_context_only)
            logits = model(feats, training=False)["logits"][0].numpy()       # [P, V]
            logits = np.where(banned[None], -np.inf, logits)
            if order == "left_to_right":
                k = 0
            else:
                probs = np.stack([sampling.filtered_probs(row) for row in logits])
                k = int(np.argmax(probs.max(-1)))
            token = int(sampling.choose(logits[k:k + 1], strategy, temperature, top_k, top_p,
                                        [seed], step)[0])
            pos = unfilled.pop(k)
            ids[pos] = token
            filled.append((pos, token))
            step += 1
    return Fill(tokenizer.decode(ids), ids, filled)
