"""The inputs that make XLNet's permutation LM predict a new token, and their masks.

Generation reads the text as one factorization order of the pretraining objective: the
prompt first (its tokens see each other: bidirectional), then the generated tokens in
order (each sees the prompt and the tokens generated before it), then the position to
predict, which no content position may see.  It is predicted by the QUERY stream at that
position (a ``target_mapping`` row selecting it), which sees everything before it in the
order but not its own token.  ``perm_mask`` uses the original's convention:
perm_mask[b, i, j] = 1 means position i may NOT attend position j.

Worked example: prompt p0 p1, one generated token g0, the new position n::

    perm_mask          p0 p1 g0  n          target_mapping  p0 p1 g0  n
                 p0 [   0  0  1  1 ]                       [  0  0  0  1 ]
                 p1 [   0  0  1  1 ]
                 g0 [   0  0  0  1 ]
                 n  [   0  0  0  1 ]

The prompt rows never see g0, so the prompt's states do not change when a token is added:
that is what lets the cached path keep them as Transformer-XL memory.  Rows of a batch
are LEFT-padded to one length; the padding is masked out as keys (``input_mask``) and,
since XLNet's attention is relative, a row's numbers do not depend on how much padding it
got.  The token at the new position is ``<mask>`` (its content is never seen).
"""
import numpy as np

from xlnet_tf.tokenization.tokenizer import MASK_ID, PAD_ID


def next_token_perm_mask(prompt_len, n_generated):
    """float32 [n, n] perm_mask of one unpadded row (n = prompt_len + n_generated + 1, the
    last position is the one predicted): blocked(i, j) = j is the new position, or j is a
    generated token after i."""
    n = prompt_len + n_generated + 1
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    blocked = (j == n - 1) | ((j >= prompt_len) & (j > i))
    return blocked.astype(np.float32)


def next_token_inputs(prompts, generated=None, length=None):
    """Full-sequence inputs predicting the next token of every row.

    Args:
      prompts: list of B lists of prompt ids (each at least one id).
      generated: list of B lists of ids generated so far (default: none).
      length: pad every row to this length (default: the longest row + 1).
    Returns:
      dict of numpy arrays: input_ids int32 [B, T], input_mask float32 [B, T] (1 =
      padding), perm_mask float32 [B, T, T], target_mapping float32 [B, 1, T] (the last
      position).
    """
    generated = generated or [[] for _ in prompts]
    rows = [list(p) + list(g) for p, g in zip(prompts, generated)]
    T = length or max(len(r) for r in rows) + 1
    B = len(rows)
    ids = np.full([B, T], PAD_ID, np.int32)
    mask = np.ones([B, T], np.float32)
    perm = np.zeros([B, T, T], np.float32)
    for b, (row, p) in enumerate(zip(rows, prompts)):
        n = len(row) + 1
        if n > T:
            raise ValueError(f"row {b} needs {n} positions but length={T}")
        o = T - n                                                     # left padding
        ids[b, o:] = row + [MASK_ID]
        mask[b, o:] = 0.0
        perm[b, o:, o:] = next_token_perm_mask(len(p), len(row) - len(p))
    tm = np.zeros([B, 1, T], np.float32)
    tm[:, 0, T - 1] = 1.0
    return {"input_ids": ids, "input_mask": mask, "perm_mask": perm, "target_mapping": tm}


def fill_inputs(ids, unfilled, left_context_only=False):
    """Inputs predicting every still-unfilled position of one text at once.

    ``ids``: the text's ids (unfilled positions hold ``<mask>``); ``unfilled``: their
    positions.  No position may see an unfilled one (perm_mask column = 1 for every row);
    each gets a target_mapping row, so its query stream sees the whole text on both sides
    except the blanks not yet filled.  ``left_context_only``: the query rows also may not
    see anything right of their position (a left-to-right LM's view, for comparison).
    Returns dict of numpy arrays with a batch of 1 (input_ids [1, T], perm_mask [1, T, T],
    target_mapping [1, P, T]).
    """
    T, P = len(ids), len(unfilled)
    perm = np.zeros([T, T], np.float32)
    perm[:, unfilled] = 1.0
    if left_context_only:
        j = np.arange(T)[None, :]
        for pos in unfilled:
            perm[pos] = np.maximum(perm[pos], (j > pos)[0].astype(np.float32))
    tm = np.zeros([P, T], np.float32)
    tm[np.arange(P), unfilled] = 1.0
    return {"input_ids": np.asarray(ids, np.int32)[None], "perm_mask": perm[None],
            "target_mapping": tm[None]}
