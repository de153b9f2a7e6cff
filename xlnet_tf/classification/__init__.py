"""Sequence classification / regression: GLUE, IMDB, Yelp and any CSV/TSV.

``readers`` (task processors, ``get_task``), ``features`` (the original's packing: A <sep>
B <sep> <cls>, left padding), ``records`` (the cached TFRecord features and their manifest),
``dataset`` (tf.data input), ``model`` (``XLNetClassifier``), ``task`` (losses, the
fine-tuning task, evaluation, prediction files), ``metrics``, ``export`` (the SavedModel),
``run`` (one run of run_classifier.py from plain values).

Imports are lazy: ``from xlnet_tf.classification import get_task`` does not load TensorFlow.
"""

_LAZY = {
    "readers": ("DataProcessor", "InputExample", "PaddingInputExample", "get_task",
                "task_names", "task_has_text_b"),
    "features": ("InputFeatures", "pack_ids", "pack_ids_tf", "convert_single_example",
                 "truncate_seq_pair"),
    "records": ("RecordInfo", "prepare_classifier_records", "read_manifest"),
    "dataset": ("classifier_dataset",),
    "model": ("SequenceSummary", "XLNetClassifier", "head_scope"),
    "task": ("ClassifierTask", "Evaluator", "classification_loss", "classifier_identity",
             "regression_loss", "write_predictions"),
    "metrics": ("compute_metrics",),
    "export": ("build_classifier_archive", "export_classifier"),
    "run": ("ClassifierRun", "export_classifier_run", "fine_tune_classifier"),
}
from xlnet_tf._lazy import lazy_exports  # noqa: E402

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    name: f"{__name__}.{module}" for module, names in _LAZY.items() for name in names})
