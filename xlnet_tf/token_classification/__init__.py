"""Token classification (NER and any CoNLL-format tagging): one tag per word.

``readers`` (CoNLL column files, tag schemes iob1 / iob2 / bioes and their detection),
``alignment`` (words to SentencePiece pieces and the piece each word is labelled on),
``features`` (windows in XLNet's layout: ``<sep> <cls>`` at the end, left padding),
``data`` (a split's windows, cached), ``model`` (``XLNetTokenClassifier``), ``task`` (the
masked per-token loss, the fine-tuning task, word-level prediction), ``metrics``
(conlleval's entity precision / recall / F1), ``export`` (the SavedModel), ``run`` (one run
of run_ner.py from plain values).

Imports are lazy: ``from xlnet_tf.token_classification import read_conll`` does not load
TensorFlow.
"""

_LAZY = {
    "readers": ("Sentence", "read_conll", "detect_scheme", "check_tags", "to_iob2",
                "split_tag"),
    "alignment": ("AlignedSentence", "align_words"),
    "features": ("WindowFeatures", "sentence_windows"),
    "metrics": ("conll_scores", "chunks"),
    "model": ("XLNetTokenClassifier",),
    "task": ("TaggerTask", "Predictor", "token_loss"),
    "export": ("build_tagger_archive", "export_tagger"),
    "run": ("TaggerRun", "export_tagger_run", "fine_tune_tagger"),
}
from xlnet_tf._lazy import lazy_exports  # noqa: E402

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    name: f"{__name__}.{module}" for module, names in _LAZY.items() for name in names})
