"""XLNet tokenization: the text rules, SentencePiece ids with XLNet's fixed special ids,
the in-graph (tensorflow-text) tokenizer layer and SentencePiece training.

    from xlnet_tf.tokenization import Tokenizer
    ids = Tokenizer("spiece.model").encode_ids("Hello, world")

* ``text``: XLNet's text rules and the task readers' clean-ups (`preprocess_text`,
  `clean_text`, `clean_text_tf`), declared once for the Python and the in-graph path;
* ``tokenizer``: `Tokenizer`, `encode_ids` / `encode_pieces`, the special and segment ids;
* ``in_graph``: `XLNetTokenizerLayer` (strings -> ragged ids in TF ops, exportable);
* ``train_spm``: `train_sentencepiece` (``python -m xlnet_tf.tokenization.train_spm``).

Imports are lazy: only the in-graph names load TensorFlow.
"""
from xlnet_tf._lazy import lazy_exports

_TOKENIZER_NAMES = (
    "Tokenizer", "encode_ids", "encode_pieces", "check_special_symbols", "SPIECE_UNDERLINE",
    "UNK_ID", "BOS_ID", "EOS_ID", "CLS_ID", "SEP_ID", "PAD_ID", "MASK_ID", "EOD_ID", "EOP_ID",
    "SPECIAL_SYMBOLS", "SEG_ID_A", "SEG_ID_B", "SEG_ID_CLS", "SEG_ID_SEP", "SEG_ID_PAD",
    "SQUAD_SEG_ID_P", "SQUAD_SEG_ID_Q", "SQUAD_SEG_ID_CLS", "SQUAD_SEG_ID_PAD")
_LAZY = {
    **{name: "xlnet_tf.tokenization.tokenizer" for name in _TOKENIZER_NAMES},
    **{name: "xlnet_tf.tokenization.text"
       for name in ("preprocess_text", "clean_text", "clean_text_tf", "TASK_CLEANUPS")},
    "XLNetTokenizerLayer": "xlnet_tf.tokenization.in_graph",
    "InGraphSentencePiece": "xlnet_tf.tokenization.in_graph",
    "train_sentencepiece": "xlnet_tf.tokenization.train_spm",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
