"""xlnet_tf: XLNet in TensorFlow 2 / Keras 3, faithful to the original checkpoints.

    import xlnet_tf
    config = xlnet_tf.XLNetConfig.from_json("xlnet_cased_L-12_H-768_A-12/xlnet_config.json")
    model = xlnet_tf.XLNetLMModel(config)
    xlnet_tf.load_original_checkpoint(model, "xlnet_cased_L-12_H-768_A-12/xlnet_model.ckpt")

Imports are lazy (PEP 562) so that light modules (tokenization, the SQuAD evaluation,
SentencePiece training) start without loading TensorFlow.
"""
from xlnet_tf._lazy import lazy_exports

_LAZY = {
    **{name: "xlnet_tf.modeling"
       for name in ("XLNetConfig", "XLNetModel", "XLNetLMModel", "load_original_checkpoint",
                    "load_hf_checkpoint", "save_original_checkpoint", "original_names")},
    "Tokenizer": "xlnet_tf.tokenization",
    "XLNetClassifier": "xlnet_tf.classification",
    "XLNetSquadModel": "xlnet_tf.squad",
    "XLNetPreprocessor": "xlnet_tf.preprocessing",
    "XLNetTextClassifier": "xlnet_tf.tasks",
    "generate": "xlnet_tf.generation",
    "fill": "xlnet_tf.generation",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
