"""Checkpoint conversion: the original TF1 checkpoints, Hugging Face weights, and writing
ours back under the original names.

Every model of this package exposes ``original_name_map()`` -> {original TF1 variable name:
variable}; this module only moves arrays between those names and files.

Loading rules (stricter than the original's ``init_from_checkpoint``, which silently skipped
anything it did not find):
  * a checkpoint variable whose shape or dtype differs from ours is an error naming both;
  * a backbone variable (``model/transformer/...``) missing from the checkpoint is an error:
    a partially loaded backbone is never returned;
  * head variables the checkpoint lacks (a fresh classification head on a pretrained
    checkpoint) keep their initialisation and are reported in ``LoadResult.missing``;
  * so does ``mask_emb`` (the one backbone variable allowed to be absent, with a warning):
    the original's fine-tuning graphs never create it, since it only starts the query
    stream, so their checkpoints load into a bare ``XLNetModel`` too.
"""
import dataclasses
import glob
import json
import logging
import os
import re
import shutil
import struct
import tempfile

import numpy as np
import tensorflow as tf

from xlnet_tf.io import describe_write_error, is_write_failure

BACKBONE_PREFIX = "model/transformer/"
# absent from the original's fine-tuning checkpoints: it only feeds the query stream
MASK_EMB = BACKBONE_PREFIX + "mask_emb/mask_emb"

log = logging.getLogger("xlnet_tf")


@dataclasses.dataclass
class LoadResult:
    loaded: list      # our names that received a value
    missing: list     # our names the checkpoint lacked (kept their initial value)
    unused: list      # checkpoint names we have no variable for (e.g. global_step, Adam slots)

    def __str__(self):
        return (f"loaded {len(self.loaded)} variables; kept initial values for "
                f"{len(self.missing)} {self.missing[:5]}; ignored {len(self.unused)} "
                f"checkpoint entries")


def original_names(model):
    """{original TF1 name: variable} of a model of this package."""
    if not hasattr(model, "original_name_map"):
        raise TypeError(f"{type(model).__name__} has no original_name_map(); pass an "
                        f"xlnet_tf model")
    return model.original_name_map()


def resolve_checkpoint_prefix(path):
    """Accept a prefix (``.../xlnet_model.ckpt``), a file of it (``.index``, ``.data-*``,
    ``.meta``), a directory (its latest checkpoint, or its only one), or ``.../latest``."""
    if path is None or str(path) == "":
        raise ValueError("no checkpoint path given")
    path = str(path)
    for suffix in (".index", ".meta"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    if ".data-" in os.path.basename(path):
        path = path[: path.rindex(".data-")]
    if os.path.basename(path) == "latest":
        path = os.path.dirname(path)
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest:
            return latest
        indexes = sorted(glob.glob(os.path.join(path, "*.index")))
        if len(indexes) == 1:
            return indexes[0][: -len(".index")]
        raise FileNotFoundError(
            f"checkpoint directory {path!r} holds {len(indexes)} checkpoints "
            f"({[os.path.basename(i) for i in indexes][:5]}) and no 'checkpoint' state file; "
            f"pass the prefix of one, e.g. {os.path.join(path, 'xlnet_model.ckpt')!r}")
    if not os.path.exists(path + ".index"):
        raise FileNotFoundError(
            f"checkpoint {path!r} does not exist (no {path}.index); pass the prefix of a "
            f"TensorFlow checkpoint such as .../xlnet_model.ckpt")
    return path


def _assign(var, value, name, source):
    value = np.asarray(value)
    if tuple(value.shape) != tuple(var.shape):
        raise ValueError(
            f"{source}: variable {name!r} has shape {list(value.shape)} in the checkpoint but "
            f"{list(var.shape)} in the model; the checkpoint was made for another model size "
            f"or untie_r setting - build the model from the xlnet_config.json that came with it")
    if not np.issubdtype(value.dtype, np.floating):
        raise ValueError(f"{source}: variable {name!r} has dtype {value.dtype} in the "
                         f"checkpoint; expected a floating-point array")
    var.assign(value.astype(np.dtype(str(var.dtype))))


def _load_named_arrays(model, get, available, source, allow_missing_backbone=False):
    names = original_names(model)
    missing_backbone = sorted(n for n in names if n.startswith(BACKBONE_PREFIX)
                              and n not in available and n != MASK_EMB)
    if missing_backbone and not allow_missing_backbone:
        raise ValueError(
            f"{source} lacks {len(missing_backbone)} backbone variables of this model, e.g. "
            f"{missing_backbone[:3]}; refusing to load a partial backbone (is it an XLNet "
            f"checkpoint with the same n_layer / untie_r?)")
    layer_re = re.compile(r"^model/transformer/layer_(\d+)/")
    ours = {int(m.group(1)) for m in map(layer_re.match, names) if m}
    theirs = {int(m.group(1)) for m in map(layer_re.match, available) if m}
    if theirs - ours and not allow_missing_backbone:
        raise ValueError(
            f"{source} has {len(theirs)} layers (layer_{max(theirs)} exists) but the model has "
            f"{len(ours)}; it was made for a larger model - build the model from the "
            f"configuration that came with the checkpoint")
    loaded, missing = [], []
    for name, var in names.items():
        if name in available:
            _assign(var, get(name), name, source)
            loaded.append(name)
        else:
            missing.append(name)
    if MASK_EMB in missing:
        log.warning("%s has no %s (a fine-tuning checkpoint: the original creates it only for "
                    "the pretraining query stream); it keeps its initial value, so target_mapping"
                    " / inp_q inputs start from an untrained vector", source, MASK_EMB)
    unused = sorted(set(available) - set(names))
    return LoadResult(sorted(loaded), sorted(missing), unused)


def load_original_checkpoint(model, ckpt_prefix, allow_missing_backbone=False):
    """Load an original-format (TF1 name-based) checkpoint into an xlnet_tf model.

    Returns a LoadResult with the names loaded, the model's names the checkpoint lacked and
    the checkpoint's names that were not used.  Raises FileNotFoundError / ValueError with
    the variable named on a missing file, a shape or dtype mismatch, or a partial backbone.
    """
    prefix = resolve_checkpoint_prefix(ckpt_prefix)
    reader = checkpoint_reader(prefix)
    shapes = reader.get_variable_to_shape_map()
    # object-based (TF2) checkpoints name variables '<path>/.ATTRIBUTES/VARIABLE_VALUE'
    if not set(original_names(model)) & set(shapes) and any(
            ".ATTRIBUTES/" in n for n in shapes):
        raise ValueError(
            f"{prefix!r} is an object-based (tf.train.Checkpoint) checkpoint, not an "
            f"original-format one; restore it with "
            f"tf.train.Checkpoint(model=model).restore(path)")
    return _load_named_arrays(model, lambda name: read_tensor(reader, prefix, name), set(shapes),
                              f"checkpoint {prefix!r}", allow_missing_backbone)


# the errors TensorFlow raises for a damaged checkpoint file (a short read of the .data file
# surfaces as IndexError "Read less bytes than requested")
CORRUPT_CHECKPOINT_ERRORS = (tf.errors.OpError, IndexError)


def data_files(prefix):
    """The ``.data-*`` shard files of a checkpoint prefix (for error messages)."""
    return sorted(glob.glob(glob.escape(prefix) + ".data-*")) or [
        prefix + ".data-00000-of-00001"]


def unreadable_index(prefix, e):
    """ValueError for a checkpoint whose ``.index`` cannot be read (or a data shard it needs
    is missing)."""
    first = (str(e).splitlines() or [type(e).__name__])[0][:200]
    return ValueError(f"checkpoint index {prefix + '.index'!r} is truncated or not a "
                      f"TensorFlow checkpoint ({first}); copy the checkpoint again (its .index "
                      f"and .data-* files) or pass another one")


def unreadable_data(prefix, e):
    """ValueError for a checkpoint whose ``.data-*`` shard(s) cannot be read."""
    first = (str(e).splitlines() or [type(e).__name__])[0][:200]
    names = ", ".join(repr(p) for p in data_files(prefix))
    return ValueError(f"checkpoint data file {names} is truncated or not the data of "
                      f"{prefix + '.index'!r} ({first}); copy the checkpoint again (its .index "
                      f"and .data-* files) or pass another one")


def checkpoint_reader(prefix):
    """``tf.train.load_checkpoint(prefix)``; a damaged ``.index`` raises ValueError naming it."""
    try:
        return tf.train.load_checkpoint(prefix)
    except (*CORRUPT_CHECKPOINT_ERRORS, ValueError) as e:
        raise unreadable_index(prefix, e) from None


def read_tensor(reader, prefix, name):
    """One tensor of a checkpoint; a damaged ``.data`` file raises ValueError naming it."""
    try:
        return reader.get_tensor(name)
    except CORRUPT_CHECKPOINT_ERRORS as e:
        raise unreadable_data(prefix, e) from None


def verify_checkpoint(prefix):
    """Read every tensor of the checkpoint ``prefix`` once: ValueError naming the ``.index`` or
    ``.data`` file when one is truncated or foreign (used where a damaged file would otherwise
    surface deep inside TensorFlow, e.g. the variables of a SavedModel)."""
    reader = checkpoint_reader(prefix)
    for name in reader.get_variable_to_shape_map():
        read_tensor(reader, prefix, name)


def save_original_checkpoint(model, ckpt_prefix, global_step=0):
    """Write the model's weights under the ORIGINAL TF1 names (a V2 checkpoint:
    ``prefix.index`` + ``prefix.data-00000-of-00001``) that the original code, and anything
    that reads the published checkpoints, can load.

    Two files, so not one `xlnet_tf.io.atomic_output`: they are written into a temporary
    folder beside the prefix and renamed into place, the ``.index`` last, so a failure never
    leaves a checkpoint that looks complete under that name.  A failed write raises
    ``xlnet_tf.io.WriteError`` naming the prefix."""
    names = original_names(model)
    base = os.path.abspath(ckpt_prefix)
    tmp_dir = None
    try:
        os.makedirs(os.path.dirname(base), exist_ok=True)
        tmp_dir = tempfile.mkdtemp(prefix=".ckpt_tmp_", dir=os.path.dirname(base))
        tmp_prefix = os.path.join(tmp_dir, "ckpt")
        keys = sorted(names)
        tensors = [tf.convert_to_tensor(names[k]) for k in keys]
        keys.append("global_step")
        tensors.append(tf.constant(int(global_step), tf.int64))
        tf.raw_ops.SaveV2(prefix=tmp_prefix, tensor_names=keys,
                          shape_and_slices=[""] * len(keys), tensors=tensors)
        for src in sorted(glob.glob(tmp_prefix + ".*"), key=lambda p: p.endswith(".index")):
            os.replace(src, base + src[len(tmp_prefix):])
    except Exception as e:  # noqa: BLE001 - SaveV2 reports a full disk as an OpError
        if not is_write_failure(e):
            raise
        raise describe_write_error(base, e) from None
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return ckpt_prefix


# ---------------------------------------------------------------------- Hugging Face
_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
              "I32": np.int32}


def read_safetensors(path):
    """Read a .safetensors file into {name: np.ndarray} without torch."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path!r} is truncated or not a safetensors file (too short)")
        (header_len,) = struct.unpack("<Q", raw)
        try:
            header = json.loads(f.read(header_len))
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"{path!r} is truncated or not a safetensors file (bad "
                             f"header)") from None
        data = f.read()
    if not isinstance(header, dict):
        raise ValueError(f"{path!r} is not a safetensors file (bad header)")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        if end > len(data):
            raise ValueError(f"{path!r} is truncated: tensor {name!r} ends at byte {end} of "
                             f"the data but the file holds {len(data)}; download it again")
        dtype = info["dtype"]
        if dtype == "BF16":
            import ml_dtypes  # shipped with TensorFlow
            arr = np.frombuffer(data[begin:end], dtype=ml_dtypes.bfloat16).astype(np.float32)
        elif dtype in _ST_DTYPES:
            arr = np.frombuffer(data[begin:end], dtype=_ST_DTYPES[dtype])
        else:
            raise ValueError(f"{path!r}: tensor {name!r} has unsupported dtype {dtype}")
        out[name] = arr.reshape(info["shape"])
    return out


def _read_hf_state(path):
    path = str(path)
    if os.path.isdir(path):
        for fname in ("model.safetensors", "pytorch_model.bin"):
            if os.path.exists(os.path.join(path, fname)):
                path = os.path.join(path, fname)
                break
        else:
            raise FileNotFoundError(f"{path!r} holds neither model.safetensors nor "
                                    f"pytorch_model.bin")
    if not os.path.exists(path):
        raise FileNotFoundError(f"Hugging Face weights {path!r} do not exist")
    if path.endswith(".safetensors"):
        return read_safetensors(path), path
    try:
        import torch
    except ImportError:
        raise ImportError(f"{path!r} is a PyTorch pickle; reading it needs torch installed "
                          f"(or convert it to model.safetensors)") from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() for k, v in state.items()}, path


def hf_to_original(state, n_layer, untie_r=True):
    """Map a Hugging Face XLNet state dict to {original TF1 name: array} (the names of
    ``transformers``' XLNet conversion script, read backwards): drops the 'transformer.' prefix, transposes dense kernels
    (torch stores [out, in]), stacks the per-layer r_*_bias (untie_r) or checks they are
    shared (untie_r=False), stacks seg_embed."""
    s = {(k[len("transformer."):] if k.startswith("transformer.") else k): v
         for k, v in state.items()}
    layers = {int(k.split(".")[1]) for k in s if k.startswith("layer.")}
    if layers and len(layers) != n_layer:
        raise ValueError(f"the Hugging Face weights have {len(layers)} layers but the model has "
                         f"n_layer={n_layer}; build the model from the weights' config.json")
    out = {}
    t = "model/transformer"
    if "word_embedding.weight" in s:
        out[f"{t}/word_embedding/lookup_table"] = s["word_embedding.weight"]
    if "mask_emb" in s:
        out[f"{t}/mask_emb/mask_emb"] = s["mask_emb"]
    if "lm_loss.bias" in s:
        out["model/lm_loss/bias"] = s["lm_loss.bias"]
    stacks = {"r_w_bias": [], "r_r_bias": [], "r_s_bias": [], "seg_embed": []}
    for i in range(n_layer):
        p, q = f"layer.{i}.", f"{t}/layer_{i}/"
        for k in ("q", "k", "v", "r", "o"):
            if p + f"rel_attn.{k}" in s:
                out[q + f"rel_attn/{k}/kernel"] = s[p + f"rel_attn.{k}"]
        pairs = [("rel_attn.layer_norm.weight", "rel_attn/LayerNorm/gamma"),
                 ("rel_attn.layer_norm.bias", "rel_attn/LayerNorm/beta"),
                 ("ff.layer_norm.weight", "ff/LayerNorm/gamma"),
                 ("ff.layer_norm.bias", "ff/LayerNorm/beta"),
                 ("ff.layer_1.bias", "ff/layer_1/bias"), ("ff.layer_2.bias", "ff/layer_2/bias")]
        for hf, orig in pairs:
            if p + hf in s:
                out[q + orig] = s[p + hf]
        for k in ("layer_1", "layer_2"):
            if p + f"ff.{k}.weight" in s:
                out[q + f"ff/{k}/kernel"] = np.ascontiguousarray(s[p + f"ff.{k}.weight"].T)
        for k in stacks:
            if p + f"rel_attn.{k}" in s:
                stacks[k].append(s[p + f"rel_attn.{k}"])
    for k, arrs in stacks.items():
        if not arrs:
            continue
        if len(arrs) != n_layer:
            raise ValueError(f"Hugging Face weights have {len(arrs)} layers of {k}, the model "
                             f"has n_layer={n_layer}")
        if k == "seg_embed" or untie_r:
            out[f"{t}/{k}"] = np.stack(arrs)
        else:
            if not all(np.array_equal(a, arrs[0]) for a in arrs):
                raise ValueError(f"the model has untie_r=False (one {k} shared by all layers) "
                                 f"but the Hugging Face weights have different {k} per layer; "
                                 f"build the model with untie_r=True")
            out[f"{t}/{k}"] = arrs[0]
    # the sequence-summary and SQuAD heads: dense weights are [out, in] in torch
    head_pairs = {
        "sequence_summary.summary.weight": ("model/sequnece_summary/summary/kernel", True),
        "sequence_summary.summary.bias": ("model/sequnece_summary/summary/bias", False),
        "start_logits.dense.weight": ("start_logits/dense/kernel", True),
        "start_logits.dense.bias": ("start_logits/dense/bias", False),
        "end_logits.dense_0.weight": ("end_logits/dense_0/kernel", True),
        "end_logits.dense_0.bias": ("end_logits/dense_0/bias", False),
        "end_logits.LayerNorm.weight": ("end_logits/LayerNorm/gamma", False),
        "end_logits.LayerNorm.bias": ("end_logits/LayerNorm/beta", False),
        "end_logits.dense_1.weight": ("end_logits/dense_1/kernel", True),
        "end_logits.dense_1.bias": ("end_logits/dense_1/bias", False),
        "answer_class.dense_0.weight": ("answer_class/dense_0/kernel", True),
        "answer_class.dense_0.bias": ("answer_class/dense_0/bias", False),
        "answer_class.dense_1.weight": ("answer_class/dense_1/kernel", True),
    }
    for hf, (orig, transpose) in head_pairs.items():
        if hf in state:
            out[orig] = np.ascontiguousarray(state[hf].T) if transpose else state[hf]
    return out


def load_hf_checkpoint(model, path, logits_proj_name=None):
    """Load Hugging Face XLNet weights (``model.safetensors`` read without torch, or
    ``pytorch_model.bin`` when torch is installed; a file or a directory) with the same
    guarantees as load_original_checkpoint.  ``logits_proj_name``: the original name prefix
    to map HF's ``logits_proj`` onto (e.g. ``model/classification_sst-2/logit``); a model
    with ``hf_head_names()`` ({HF dense layer: original name prefix}, e.g. the tagger's
    ``{"classifier": "model/token_classification_ner/logit"}``) gets those heads too."""
    state, path = _read_hf_state(path)
    config = model.xlnet_config
    arrays = hf_to_original(state, config.n_layer, config.untie_r)
    heads = dict(model.hf_head_names()) if hasattr(model, "hf_head_names") else {}
    if logits_proj_name:
        heads["logits_proj"] = logits_proj_name
    for hf, orig in heads.items():
        if f"{hf}.weight" in state:        # torch's [out, in]
            arrays[f"{orig}/kernel"] = np.ascontiguousarray(state[f"{hf}.weight"].T)
            arrays[f"{orig}/bias"] = state[f"{hf}.bias"]
    return _load_named_arrays(model, arrays.__getitem__, set(arrays),
                              f"Hugging Face weights {path!r}")
