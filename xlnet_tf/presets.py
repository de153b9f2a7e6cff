"""``from_preset``: a local folder holding an XLNet checkpoint, its configuration and its
``spiece.model``, in any of the three layouts users have.

================  ==================================================================
layout            files
================  ==================================================================
``original``      ``xlnet_config.json``, ``xlnet_model.ckpt.{index,data-*}``,
                  ``spiece.model`` (the original release, or the final checkpoint one of
                  our scripts writes under the original names)
``xlnet_tf run``  ``xlnet_config.json``, ``spiece.model``, a ``checkpoint`` state file and
                  its ``ckpt-N`` (an output folder of run_pretrain.py, run_classifier.py,
                  ...; the newest training checkpoint is used)
``huggingface``   ``config.json`` (``model_type`` xlnet), ``model.safetensors`` (read
                  without torch) or ``pytorch_model.bin`` (needs torch), ``spiece.model``
================  ==================================================================

The layout is detected from the files, named in the log, and a folder that fits none gets
an error listing what it lacks.  Weights are loaded by the library's loaders
(:func:`xlnet_tf.training.init_from_checkpoint`), with their guarantees: a backbone is
never partly loaded; task heads the checkpoint lacks keep their initial values.
"""
import dataclasses
import json
import logging
import os

from xlnet_tf.finetuning import FINAL_CHECKPOINT, SPIECE_MODEL, XLNET_CONFIG

log = logging.getLogger("xlnet_tf")

HF_CONFIG = "config.json"
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
# Hugging Face activation name -> ours.  HF "gelu" is the exact erf GELU, which the original
# XLNet never used; the original's tanh approximation is HF "gelu_new".
HF_ACTIVATIONS = {"gelu_new": "gelu", "relu": "relu"}


@dataclasses.dataclass
class Preset:
    folder: str
    layout: str          # "original", "xlnet_tf run" or "huggingface"
    config: object       # XLNetConfig
    spiece_model: str    # path
    weights: str         # what init_from_checkpoint is given


def config_from_hf(path, **run_options):
    """XLNetConfig from a Hugging Face XLNet ``config.json`` (``vocab_size`` -> n_token; HF
    keeps one set of relative-attention biases per layer: untie_r=True)."""
    from xlnet_tf import XLNetConfig
    try:
        with open(path, encoding="utf-8") as f:
            hf = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read the Hugging Face config {path!r}: {e}") from None
    if not isinstance(hf, dict) or hf.get("model_type") != "xlnet":
        raise ValueError(f"{path!r} is not an XLNet config (model_type "
                         f"{hf.get('model_type') if isinstance(hf, dict) else None!r})")
    act = hf.get("ff_activation", "gelu")
    if act not in HF_ACTIVATIONS:
        raise ValueError(f"{path!r}: ff_activation {act!r} is not supported (the original "
                         f"XLNet uses {sorted(HF_ACTIVATIONS)})")
    try:
        kwargs = dict(n_token=hf["vocab_size"], d_model=hf["d_model"], n_layer=hf["n_layer"],
                      n_head=hf["n_head"], d_head=hf.get("d_head", hf["d_model"] // hf["n_head"]),
                      d_inner=hf["d_inner"], ff_activation=HF_ACTIVATIONS[act], untie_r=True)
    except KeyError as e:
        raise ValueError(f"{path!r} lacks the key {e.args[0]!r} of an XLNet config") from None
    # the run options HF keeps in its config (the original kept them in its RunConfig)
    for key in ("attn_type", "bi_data", "clamp_len", "same_length"):
        if key in hf and key not in run_options:
            run_options[key] = hf[key]
    return XLNetConfig(**kwargs, **run_options)


def _index_prefix(folder):
    final = os.path.join(folder, FINAL_CHECKPOINT)
    if os.path.exists(final + ".index"):
        return final
    indexes = sorted(f for f in os.listdir(folder) if f.endswith(".index"))
    return os.path.join(folder, indexes[0][:-len(".index")]) if len(indexes) == 1 else None


def spiece_of_preset(folder):
    """The path of ``folder``'s ``spiece.model`` (every layout has it there); raises
    FileNotFoundError naming the folder when it is not a folder or lacks the file."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"preset {folder!r} is not a folder; pass a folder holding a "
                                f"checkpoint, its config and {SPIECE_MODEL}")
    path = os.path.join(folder, SPIECE_MODEL)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"preset {folder!r} lacks {SPIECE_MODEL} (the SentencePiece "
                                f"model the checkpoint was trained with); it has "
                                f"{sorted(os.listdir(folder))[:10]}")
    return path


def detect_preset(folder, **run_options):
    """The :class:`Preset` of ``folder`` (see the module docstring); ``run_options``
    (dropout, dropatt, ...) go into the config.  Raises FileNotFoundError / ValueError
    naming the folder and what it lacks."""
    import tensorflow as tf

    from xlnet_tf import XLNetConfig
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"preset {folder!r} is not a folder; pass a folder holding a "
                                f"checkpoint, its config and {SPIECE_MODEL}")
    has = lambda name: os.path.isfile(os.path.join(folder, name))  # noqa: E731
    spiece = os.path.join(folder, SPIECE_MODEL)
    hf_weights = [w for w in HF_WEIGHTS if has(w)]
    if has(HF_CONFIG) and not has(XLNET_CONFIG):
        lacks = ([] if hf_weights else [" or ".join(HF_WEIGHTS)]) + \
                ([] if has(SPIECE_MODEL) else [SPIECE_MODEL])
        if lacks:
            raise FileNotFoundError(f"preset {folder!r} looks like a Hugging Face folder "
                                    f"({HF_CONFIG}) but lacks {', '.join(lacks)}")
        preset = Preset(folder, "huggingface",
                        config_from_hf(os.path.join(folder, HF_CONFIG), **run_options),
                        spiece, os.path.join(folder, hf_weights[0]))
    elif has(XLNET_CONFIG):
        latest = tf.train.latest_checkpoint(folder)
        prefix = latest or _index_prefix(folder)
        lacks = ([] if prefix else [f"a checkpoint ({FINAL_CHECKPOINT}.index and .data-*, or "
                                    f"a 'checkpoint' file with its ckpt-N)"]) + \
                ([] if has(SPIECE_MODEL) else [SPIECE_MODEL])
        if lacks:
            raise FileNotFoundError(f"preset {folder!r} has {XLNET_CONFIG} but lacks "
                                    f"{' and '.join(lacks)}")
        preset = Preset(folder, "xlnet_tf run" if latest else "original",
                        XLNetConfig.from_json(os.path.join(folder, XLNET_CONFIG),
                                              **run_options), spiece, prefix)
    else:
        raise FileNotFoundError(
            f"preset {folder!r} holds neither {XLNET_CONFIG} (an original release or one of "
            f"our output folders: with {FINAL_CHECKPOINT}.* or ckpt-N, and {SPIECE_MODEL}) "
            f"nor {HF_CONFIG} (a Hugging Face folder: with {' or '.join(HF_WEIGHTS)} and "
            f"{SPIECE_MODEL}); it has {sorted(os.listdir(folder))[:10]}")
    from xlnet_tf.tokenization.tokenizer import Tokenizer
    vocab = Tokenizer(preset.spiece_model).vocab_size
    if preset.config.n_token < vocab:
        raise ValueError(f"preset {folder!r}: the model has n_token={preset.config.n_token} "
                         f"but {SPIECE_MODEL} has {vocab} pieces; they do not belong together")
    log.info("preset %s: %s layout (weights %s)", folder, preset.layout, preset.weights)
    return preset


def load_weights(model, preset):
    """Load ``preset``'s weights into ``model`` (a freshly built model of this package);
    returns the loader's report."""
    import tensorflow as tf

    from xlnet_tf.modeling.model import XLNetModel
    from xlnet_tf.training import init_from_checkpoint
    backbone_only = isinstance(model, XLNetModel)
    if preset.layout == "xlnet_tf run" and not backbone_only and hasattr(model, "logit"):
        # a run fine-tuned with another number of classes: its head does not fit, so only
        # the backbone is read (the new head keeps its initial values)
        shapes = tf.train.load_checkpoint(preset.weights).get_variable_to_shape_map()
        theirs = shapes.get("model/logit/bias/.ATTRIBUTES/VARIABLE_VALUE")
        if theirs is not None and list(theirs) != list(model.logit.bias.shape):
            log.info("preset %s: the checkpoint's head has %d outputs, the model %d; "
                     "reading the backbone only", preset.folder, theirs[0],
                     model.logit.bias.shape[0])
            model, backbone_only = model.transformer, True
    if backbone_only and preset.layout == "xlnet_tf run":
        # a training checkpoint holds a whole task model; a bare backbone reads its
        # ``transformer`` part
        status = tf.train.Checkpoint(model=tf.train.Checkpoint(transformer=model)).restore(
            preset.weights).expect_partial()
        try:
            status.assert_existing_objects_matched()
        except AssertionError as e:
            raise ValueError(f"preset {preset.folder!r}: checkpoint {preset.weights!r} does "
                             f"not fit the backbone of {XLNET_CONFIG}: "
                             f"{str(e).splitlines()[0][:300]}") from None
        result = f"restored the backbone of {preset.weights}"
    else:
        result = init_from_checkpoint(model, preset.weights)
    log.info("preset %s: %s", preset.folder, result)
    return result


def backbone_from_preset(folder, **run_options):
    """An ``XLNetModel`` with the weights of ``folder`` (any layout); returns
    ``(model, preset)``.  The backbone runs as fine-tuning does (no memory, bidirectional)."""
    from xlnet_tf.finetuning import finetune_config
    from xlnet_tf.modeling.model import XLNetModel
    preset = detect_preset(folder, **run_options)
    model = XLNetModel(finetune_config(preset.config))
    load_weights(model, preset)
    return model, preset
