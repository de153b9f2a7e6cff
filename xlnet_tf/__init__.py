"""xlnet_tf: XLNet in TensorFlow 2 / Keras 3, faithful to the original checkpoints.

    import xlnet_tf
    config = xlnet_tf.XLNetConfig.from_json("xlnet_cased_L-12_H-768_A-12/xlnet_config.json")
    model = xlnet_tf.XLNetLMModel(config)
    xlnet_tf.load_original_checkpoint(model, "xlnet_cased_L-12_H-768_A-12/xlnet_model.ckpt")

Imports are lazy (PEP 562) so that light modules (tokenization, the SQuAD evaluation,
SentencePiece training) start without loading TensorFlow.
"""
import importlib

_LAZY = {
    "XLNetConfig": "xlnet_tf.modeling.config",
    "XLNetModel": "xlnet_tf.modeling.model",
    "XLNetLMModel": "xlnet_tf.modeling.model",
    "load_original_checkpoint": "xlnet_tf.modeling.checkpoint",
    "load_hf_checkpoint": "xlnet_tf.modeling.checkpoint",
    "save_original_checkpoint": "xlnet_tf.modeling.checkpoint",
    "original_names": "xlnet_tf.modeling.checkpoint",
    "Tokenizer": "xlnet_tf.tokenization.tokenizer",
    "XLNetClassifier": "xlnet_tf.classification",
    "XLNetSquadModel": "xlnet_tf.squad",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xlnet_tf' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
