"""Multiple-choice reading comprehension: RACE, DREAM, MCTest and any CSV/JSON-lines set.

``readers`` (``get_reader``: one ``MCExample`` per question), ``features`` (the original
``run_race.py``'s packing: passage <sep> qa <sep> <cls> per option, left padding),
``records`` (the cached TFRecord features and their tf.data input), ``model``
(``XLNetMultipleChoice``, head ``logits/dense``), ``task`` (loss, the fine-tuning task,
evaluation per level, the prediction file), ``export`` (the SavedModel), ``run`` (one run
of run_race.py from plain values).

Imports are lazy: ``from xlnet_tf.multiple_choice import get_reader`` does not load
TensorFlow.
"""

_LAZY = {
    "readers": ("MCExample", "get_reader", "letter", "parse_label"),
    "features": ("ChoiceFeatures", "convert_example", "pack_choice", "pack_choices_tf",
                 "qa_text", "qa_text_tf"),
    "records": ("plan_mc_records", "write_mc_records", "mc_dataset"),
    "model": ("XLNetMultipleChoice",),
    "task": ("Evaluator", "MultipleChoiceTask", "choice_loss", "mc_identity", "mc_results",
             "write_predictions"),
    "export": ("build_mc_archive", "export_multiple_choice"),
    "run": ("MultipleChoiceRun", "export_multiple_choice_run", "fine_tune_multiple_choice"),
}
from xlnet_tf._lazy import lazy_exports  # noqa: E402

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    name: f"{__name__}.{module}" for module, names in _LAZY.items() for name in names})
