"""xlnet_tf: XLNet in TensorFlow 2 / Keras 3, faithful to the original checkpoints.

Imports are lazy so that light modules (tokenization, squad_eval, train_spm) start without
loading TensorFlow."""

__all__ = ["XLNetConfig", "XLNetModel", "XLNetLMModel", "load_original_checkpoint",
           "load_hf_checkpoint", "save_original_checkpoint", "original_names"]

_LAZY = {"XLNetConfig": "xlnet_tf.modeling.config", "XLNetModel": "xlnet_tf.modeling.model",
         "XLNetLMModel": "xlnet_tf.modeling.model", "load_original_checkpoint": "xlnet_tf.modeling.checkpoint",
         "load_hf_checkpoint": "xlnet_tf.modeling.checkpoint",
         "save_original_checkpoint": "xlnet_tf.modeling.checkpoint",
         "original_names": "xlnet_tf.modeling.checkpoint"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xlnet_tf' has no attribute {name!r}")
