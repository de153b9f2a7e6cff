"""Left-to-right generation with XLNet's permutation LM and a Transformer-XL cache.

    from xlnet_tf.generation import generate
    out = generate(model, tokenizer, ["The cat", "Once upon a time"], max_new_tokens=20,
                   strategy="sample", top_p=0.9, seed=1)
    out[0].text    # the new text of the first prompt

Each new token is predicted by the query stream at a position no content position sees
(see ``inputs``).  Cached path: one call reads the (left-padded) prompts plus the new
position; the layer inputs of the prompt come back as the model's ``new_mems`` and become
the memory.  Each later step is ONE call on two positions, the token chosen last (its
content states join the memory) and the next new position, against the memory: the cost
of a step does not grow with the text, except the attention over the memory.

The memory is a fixed-size buffer of ``capacity`` slots (so one traced graph serves every
step): the text is right-aligned in it and slots not yet filled are masked out as keys
(``mem_mask``); each step shifts it by one slot, the Transformer-XL ``cache_mem`` with
``mem_len = capacity + 1`` minus the new position.  Because the attention is relative and
masked slots get exactly zero weight, a row gives the same tokens whatever its padding and
whatever else is in its batch.  The whole text stays in memory (a KV cache, no window):
while generating, the config's ``mem_len`` is replaced by the capacity, and ``bi_data``
and ``same_length`` are off.

The uncached path (``use_cache=False``) recomputes the full sequence every step with the
same masks; it is the reference the tests compare the cached path to.
"""
import contextlib
import dataclasses
import weakref

import numpy as np

from xlnet_tf.generation import inputs as inputs_lib
from xlnet_tf.generation import sampling
from xlnet_tf.tokenization.tokenizer import CLS_ID, EOD_ID, EOS_ID, MASK_ID, PAD_ID, SEP_ID

DEFAULT_STOP_IDS = (EOD_ID, EOS_ID)
# structure markers: never chosen as text
NEVER_GENERATED = (CLS_ID, SEP_ID, PAD_ID, MASK_ID)
# prompt lengths and memory capacities are rounded up to a multiple of this, so one traced
# graph serves many calls
LENGTH_BUCKET = 32


def _bucket(n):
    return -(-n // LENGTH_BUCKET) * LENGTH_BUCKET


@dataclasses.dataclass
class Generation:
    """One prompt's result: ``ids`` the new tokens (with the stop token when one ended
    it), ``text`` their text (cut before a stop string), ``stop_reason`` one of
    ``stop_id``, ``stop_string``, ``length``."""
    prompt_ids: list
    ids: list
    text: str
    stop_reason: str


@contextlib.contextmanager
def inference_options(model, mem_len):
    """Run ``model`` (an XLNetLMModel) with ``mem_len`` and without bi_data/same_length
    for the duration (its backbone reads its config when it is called or traced)."""
    backbone = model.transformer
    saved = backbone.xlnet_config
    backbone.xlnet_config = saved.replace(mem_len=mem_len, reuse_len=None, bi_data=False,
                                          same_length=False)
    try:
        yield
    finally:
        backbone.xlnet_config = saved


def prompt_ids_of(tokenizer, prompts):
    """Ids of each prompt (a str, or already a list of ids); ValueError for an empty one."""
    out = []
    for i, p in enumerate(prompts):
        ids = tokenizer.encode_ids(p) if isinstance(p, str) else [int(x) for x in p]
        if not ids:
            raise ValueError(f"prompt {i} ({p!r}) has no tokens: give at least one word")
        out.append(ids)
    return out


class Generator:
    """Generation with one model and tokenizer; keeps its traced graphs between calls.

    ``model``: an XLNetLMModel (the pretraining head: logits tied to the word embedding).
    """

    def __init__(self, model, tokenizer):
        import tensorflow as tf
        if not hasattr(model, "lm_logits"):
            raise ValueError(f"generation needs an XLNetLMModel (the LM head), got "
                             f"{type(model).__name__}")
        self.model, self.tokenizer = model, tokenizer
        n_token = model.xlnet_config.n_token
        if tokenizer.vocab_size > n_token:
            raise ValueError(f"the tokenizer has {tokenizer.vocab_size} pieces but the model "
                             f"only n_token={n_token}: use the checkpoint's SentencePiece model")
        ban = np.zeros([n_token], bool)
        ban[tokenizer.vocab_size:] = True
        ban[list(NEVER_GENERATED)] = True
        self.banned = ban
        self._prefill = tf.function(self._prefill_graph)
        self._step = tf.function(self._step_graph)

    # ------------------------------------------------------------------ model calls
    def _prefill_graph(self, feats):
        out = self.model(feats, training=False)
        mems = [m[:, :-1] for m in out["new_mems"]]           # n_layer x [B, L, d]
        return out["logits"][:, 0], mems                       # [B, V]

    def _step_graph(self, ids, mems, mem_mask):
        import tensorflow as tf
        b = ids.shape[0]
        # position 0: the token chosen last (sees the memory and itself); position 1: the
        # new position, seen by nobody, predicted by its query stream
        perm = tf.constant([[0.0, 1.0], [0.0, 1.0]])[None]    # [1, 2, 2]
        tm = tf.constant([[[0.0, 1.0]]])                       # [1, 1, 2]
        out = self.model({"input_ids": ids, "perm_mask": tf.tile(perm, [b, 1, 1]),
                          "target_mapping": tf.tile(tm, [b, 1, 1]), "mems": mems,
                          "mem_mask": mem_mask}, training=False)
        new_mems = [m[:, :-1] for m in out["new_mems"]]       # n_layer x [B, C, d]
        new_mask = tf.concat([mem_mask[:, 1:], tf.zeros([b, 1], mem_mask.dtype)], 1)  # [B, C]
        return out["logits"][:, 0], new_mems, new_mask

    def _first_step(self, prompt_ids, capacity):
        L = _bucket(max(len(p) for p in prompt_ids))
        feats = inputs_lib.next_token_inputs(prompt_ids, length=L + 1)
        logits, mems = self._prefill(feats)
        b = len(prompt_ids)
        pad = capacity - L
        mems = [np.concatenate([np.zeros([b, pad, m.shape[-1]], np.float32), m.numpy()], 1)
                for m in mems]                                 # n_layer x [B, C, d]
        mem_mask = np.concatenate([np.ones([b, pad], np.float32),
                                   feats["input_mask"][:, :L]], 1)  # [B, C]
        return logits.numpy(), mems, mem_mask

    def uncached_logits(self, prompt_ids, generated):
        """float32 [B, V]: the next-token logits from the full sequence (no memory)."""
        feats = inputs_lib.next_token_inputs(prompt_ids, generated)
        return self.model(feats, training=False)["logits"][:, 0].numpy()

    # ------------------------------------------------------------------ the loop
    def generate(self, prompts, max_new_tokens=32, strategy="greedy", temperature=1.0,
                 top_k=0, top_p=1.0, seed=0, stop_ids=DEFAULT_STOP_IDS, stop_strings=(),
                 use_cache=True, callback=None):
        """New text for each prompt.

        Args:
          prompts: a str / list of ids, or a list of them (a batch; lengths may differ).
          max_new_tokens: at most this many new tokens per prompt.
          strategy: ``greedy`` (the most likely token) or ``sample`` (with ``temperature``,
            ``top_k`` (0 = off) and ``top_p`` (1 = off)).
          seed: an int (row b uses seed + b) or one int per prompt; the draw of row b at
            step t depends only on (its seed, t), so batches do not change a row's tokens.
          stop_ids: a row stops after one of these tokens (default ``<eod>``, ``</s>``).
          stop_strings: a row stops when its new text contains one of them (cut before it).
          use_cache: False = recompute the whole sequence every step (the reference).
          callback: ``callback(row, text)`` with each row's new text as it is produced
            (streaming); text pieces of a row concatenate to its final text.
        Returns:
          a :class:`Generation` (for one prompt) or a list of them.
        """
        single = isinstance(prompts, str) or (
            len(prompts) > 0 and isinstance(prompts[0], (int, np.integer)))
        batch = [prompts] if single else list(prompts)
        if not batch:
            raise ValueError("no prompts given")
        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens!r} must be >= 1")
        sampling.check_options(strategy, temperature, top_k, top_p)
        stop_strings = [s for s in stop_strings if s]
        prompt_ids = prompt_ids_of(self.tokenizer, batch)
        B = len(prompt_ids)
        seeds = [int(seed) + b for b in range(B)] if np.ndim(seed) == 0 else \
            [int(s) for s in seed]
        if len(seeds) != B:
            raise ValueError(f"{len(seeds)} seeds for {B} prompts: give one per prompt or one "
                             f"int")
        generated = [[] for _ in range(B)]
        texts = [""] * B
        reasons = [None] * B
        prompt_text = [self.tokenizer.decode(p) for p in prompt_ids]
        capacity = _bucket(_bucket(max(len(p) for p in prompt_ids)) + max_new_tokens - 1)
        last = np.zeros([B], np.int32)
        with inference_options(self.model, capacity + 1 if use_cache else None):
            for step in range(int(max_new_tokens)):
                if not use_cache:
                    logits = self.uncached_logits(prompt_ids, generated)
                elif step == 0:
                    logits, mems, mem_mask = self._first_step(prompt_ids, capacity)
                else:
                    ids = np.stack([last, np.full([B], MASK_ID, np.int32)], 1)  # [B, 2]
                    logits, mems, mem_mask = self._step(ids, mems, mem_mask)
                    logits = logits.numpy()
                logits = np.where(self.banned[None], -np.inf, logits)
                tokens = sampling.choose(logits, strategy, temperature, top_k, top_p, seeds,
                                         step)
                for b in range(B):
                    if reasons[b] is not None:
                        continue
                    t = int(tokens[b])
                    last[b] = t
                    generated[b].append(t)
                    new_text = self._text(prompt_ids[b], prompt_text[b], generated[b])
                    cut = [new_text.find(s) for s in stop_strings if s in new_text]
                    if cut:
                        new_text = new_text[:min(cut)]
                        reasons[b] = "stop_string"
                    elif t in stop_ids:
                        reasons[b] = "stop_id"
                    if callback is not None and len(new_text) > len(texts[b]):
                        callback(b, new_text[len(texts[b]):])
                    texts[b] = new_text
                if all(r is not None for r in reasons):
                    break
        out = [Generation(p, g, t, r or "length")
               for p, g, t, r in zip(prompt_ids, generated, texts, reasons)]
        return out[0] if single else out

    def _text(self, prompt_ids, prompt_text, new_ids):
        """The text ``new_ids`` add to the prompt (with its leading space)."""
        full = self.tokenizer.decode(list(prompt_ids) + list(new_ids))
        if full.startswith(prompt_text):
            return full[len(prompt_text):]
        return self.tokenizer.decode(new_ids)


_GENERATORS = weakref.WeakKeyDictionary()


def generator_for(model, tokenizer):
    """The :class:`Generator` of (model, tokenizer), reused between calls (its graphs)."""
    g = _GENERATORS.get(model)
    if g is None or g.tokenizer is not tokenizer:
        g = Generator(model, tokenizer)
        _GENERATORS[model] = g
    return g


def generate(model, tokenizer, prompts, max_new_tokens=32, strategy="greedy", top_k=0,
             top_p=1.0, temperature=1.0, seed=0, stop_strings=(), stop_ids=DEFAULT_STOP_IDS,
             use_cache=True, callback=None):
    """:meth:`Generator.generate` with the model's reusable Generator."""
    return generator_for(model, tokenizer).generate(
        prompts, max_new_tokens, strategy, temperature, top_k, top_p, seed, stop_ids,
        stop_strings, use_cache, callback)
