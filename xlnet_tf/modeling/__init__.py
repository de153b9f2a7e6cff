"""The XLNet model core: configuration, Keras layers, the backbone and the LM model,
checkpoint conversion (original TF1 names, Hugging Face weights).

* ``config``: `XLNetConfig` (``xlnet_config.json`` + run options);
* ``ops``: the performance machinery (hand-written gradients, seeded dropout, recompute);
* ``layers``: `RelativeAttention`, `FeedForward`, `XLNetLayer`, `LayerNorm`, positional
  encoding and relative shift;
* ``masks``: the one conversion of the original's mask convention;
* ``model``: `XLNetModel` (backbone) and `XLNetLMModel` (tied LM head);
* ``checkpoint``: `load_original_checkpoint`, `save_original_checkpoint`,
  `load_hf_checkpoint`, `original_names`.

Imports are lazy (PEP 562), like the top-level package.
"""
from xlnet_tf._lazy import lazy_exports

_LAZY = {
    "XLNetConfig": "xlnet_tf.modeling.config",
    "XLNET_BASE": "xlnet_tf.modeling.config",
    "XLNET_LARGE": "xlnet_tf.modeling.config",
    "XLNetModel": "xlnet_tf.modeling.model",
    "XLNetLMModel": "xlnet_tf.modeling.model",
    "model_from_config": "xlnet_tf.modeling.model",
    "DEFAULT_QUERY_CHUNK": "xlnet_tf.modeling.model",
    "LayerNorm": "xlnet_tf.modeling.layers",
    "RelativeAttention": "xlnet_tf.modeling.layers",
    "FeedForward": "xlnet_tf.modeling.layers",
    "XLNetLayer": "xlnet_tf.modeling.layers",
    "NEG_INF": "xlnet_tf.modeling.layers",
    "initializer": "xlnet_tf.modeling.layers",
    "dropout": "xlnet_tf.modeling.ops",
    "fold_seed": "xlnet_tf.modeling.ops",
    "load_original_checkpoint": "xlnet_tf.modeling.checkpoint",
    "save_original_checkpoint": "xlnet_tf.modeling.checkpoint",
    "load_hf_checkpoint": "xlnet_tf.modeling.checkpoint",
    "original_names": "xlnet_tf.modeling.checkpoint",
    "resolve_checkpoint_prefix": "xlnet_tf.modeling.checkpoint",
    "read_safetensors": "xlnet_tf.modeling.checkpoint",
    "LoadResult": "xlnet_tf.modeling.checkpoint",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
