"""SQuAD v1.1 / v2.0 question answering with XLNet, as the original ``run_squad.py``.

The stages, one module each:

* :mod:`~xlnet_tf.squad.examples` -- SQuAD JSON -> :class:`SquadExample` (answers, v2.0
  unanswerable questions);
* :mod:`~xlnet_tf.squad.alignment` -- the original's character alignment between a raw
  paragraph and its SentencePiece pieces;
* :mod:`~xlnet_tf.squad.features` -- windows (``doc_stride``), ``p_mask``, ``cls_index``,
  the original's layout ``P <sep> Q <sep> <cls>`` with right padding;
* :mod:`~xlnet_tf.squad.records` -- the TFRecord feature cache with its manifest, tf.data;
* :mod:`~xlnet_tf.squad.model` -- the heads and :class:`XLNetSquadModel`;
* :mod:`~xlnet_tf.squad.task` -- the loss, :class:`SquadTask`, the prediction loop;
* :mod:`~xlnet_tf.squad.postprocess` -- beam outputs -> answers and the official files;
* :mod:`~xlnet_tf.squad.evaluate` -- the official evaluation (``python -m
  xlnet_tf.squad.evaluate data.json predictions.json``; it never loads TensorFlow);
* :mod:`~xlnet_tf.squad.export` (+ :mod:`~xlnet_tf.squad.serving_align`) -- the SavedModel
  that answers raw (question, context) pairs;
* :mod:`~xlnet_tf.squad.run` -- one run of run_squad.py from plain values.

Imports are lazy: ``from xlnet_tf.squad import read_squad_examples`` does not load
TensorFlow.
"""
from xlnet_tf._lazy import lazy_exports

_LAZY = {
    "SquadExample": "examples", "ExampleList": "examples", "read_squad_examples": "examples",
    "align_chars": "alignment", "convert_index": "alignment",
    "prepare_paragraph": "alignment",
    "InputFeatures": "features", "FeatureList": "features",
    "convert_examples_to_features": "features", "FIRST_UNIQUE_ID": "features",
    "feature_spec": "records", "write_squad_features": "records",
    "load_or_build_features": "records", "SquadFeatureCache": "records",
    "squad_dataset": "records",
    "SquadHeads": "model", "XLNetSquadModel": "model", "mask_logits": "model",
    "squad_loss": "task", "squad_identity": "task", "SquadTask": "task",
    "predict_raw_results": "task",
    "RawResult": "postprocess", "span_text": "postprocess", "compute_softmax": "postprocess",
    "write_predictions": "postprocess",
    "ContextAligner": "serving_align",
    "build_squad_archive": "export", "export_squad": "export",
    "SquadRun": "run", "fine_tune_squad": "run", "export_squad_run": "run",
}
# the evaluation module itself (its functions keep the official script's names, one of
# which, ``evaluate``, is the module's name)
_MODULES = ("evaluate",)

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    **{name: f"{__name__}.{module}" for name, module in _LAZY.items()},
    **{name: None for name in _MODULES}})
