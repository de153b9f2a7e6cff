"""Generation and infilling with XLNet's permutation LM.

* ``generate``: left-to-right generation (greedy / sampling) with the Transformer-XL
  memory as the cache, batched prompts of different lengths, stop tokens and strings;
* ``fill`` (module ``infill``): blanks anywhere in a text, predicted with both sides visible, one at a time
  (left to right or most confident first);
* ``inputs``: the perm_mask / target_mapping that make the query stream predict;
* ``sampling``: greedy, temperature, top-k, top-p with per-row seeds;
* ``loading``: an LM model and tokenizer from a checkpoint in any of the three formats;
* ``python -m xlnet_tf.generation`` (``xlnet-generate``): the command.

Imports are lazy (PEP 562), like the top-level package.
"""
from xlnet_tf._lazy import lazy_exports

_LAZY = {
    "generate": "xlnet_tf.generation.generator",
    "Generator": "xlnet_tf.generation.generator",
    "Generation": "xlnet_tf.generation.generator",
    "fill": "xlnet_tf.generation.infill",
    "Fill": "xlnet_tf.generation.infill",
    "load_lm": "xlnet_tf.generation.loading",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
