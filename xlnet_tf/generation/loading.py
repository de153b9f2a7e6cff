"""An LM model and its tokenizer from a checkpoint in any of the three formats: the
folder ``run_pretrain.py`` writes (``xlnet_model.ckpt`` under the original's names, or a
training ``ckpt-N``), the original TF1 checkpoints, Hugging Face weights."""
import logging
import os

log = logging.getLogger("xlnet_tf")


def _beside(init_checkpoint, name):
    folder = init_checkpoint if os.path.isdir(init_checkpoint) else \
        os.path.dirname(os.path.abspath(init_checkpoint))
    path = os.path.join(folder, name)
    return path if os.path.isfile(path) else None


def load_lm(init_checkpoint, spiece_model=None, model_config=None, uncased=False):
    """(XLNetLMModel with dropout off, Tokenizer).  ``spiece_model`` and ``model_config``
    default to ``spiece.model`` / ``xlnet_config.json`` beside the checkpoint.  Raises
    ValueError / FileNotFoundError naming the flag to pass."""
    from xlnet_tf import finetuning
    from xlnet_tf.modeling.config import XLNetConfig
    from xlnet_tf.modeling.model import XLNetLMModel
    from xlnet_tf.training import init_from_checkpoint

    if not init_checkpoint:
        raise ValueError("--init_checkpoint is required")
    if not os.path.exists(init_checkpoint) and not any(
            os.path.exists(init_checkpoint + s) for s in (".index", ".meta")):
        raise FileNotFoundError(f"--init_checkpoint {init_checkpoint!r} does not exist")
    model_config = model_config or _beside(init_checkpoint, "xlnet_config.json")
    if not model_config:
        raise FileNotFoundError(f"no --model_config given and no xlnet_config.json beside "
                                f"--init_checkpoint {init_checkpoint!r}; pass --model_config")
    spiece_model = spiece_model or _beside(init_checkpoint, "spiece.model")
    if not spiece_model:
        raise FileNotFoundError(f"no --spiece_model given and no spiece.model beside "
                                f"--init_checkpoint {init_checkpoint!r}; pass --spiece_model")
    tokenizer = finetuning.load_tokenizer(spiece_model, uncased)
    config = XLNetConfig.from_json(model_config).replace(dropout=0.0, dropatt=0.0)
    if config.n_token < tokenizer.vocab_size:
        raise ValueError(f"the model has n_token={config.n_token} but --spiece_model "
                         f"{spiece_model!r} has {tokenizer.vocab_size} pieces; use the "
                         f"SentencePiece model of the checkpoint")
    model = XLNetLMModel(config)
    result = finetuning.check_init_checkpoint(model, init_checkpoint)
    missing = getattr(result, "missing", None) or []
    if "model/lm_loss/bias" in missing:
        log.warning("--init_checkpoint %s has no LM bias (model/lm_loss/bias): it stays 0",
                    init_checkpoint)
    return model, tokenizer
