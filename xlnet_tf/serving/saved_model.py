"""SavedModel export for TensorFlow Serving, and a small emulation of TF Serving's REST API.

Layout on disk (TF Serving's "model base path" with numbered version folders)::

    export_dir/
      1/                          <- one version; TF Serving serves the highest number
        saved_model.pb
        variables/...
        assets/spiece.model       <- the SentencePiece model (a tf.saved_model.Asset)
        assets.extra/export_info.json   <- labels, max_seq_length, task, ... (for people)

A version is written under a temporary hidden name in ``export_dir`` and renamed into place
when complete, so TF Serving (which polls the folder) never sees a half-written version and
an existing version is never overwritten.

Classifier signatures (method name ``tensorflow/serving/predict``):

* ``serving_default``: raw text.  Inputs ``text_a`` (string ``[B]``) and, for tasks with
  a second text (MRPC, STS-B, MNLI, ...), ``text_b`` (string ``[B]``); any batch size.  The
  text is cleaned as the task's reader cleaned it (e.g. IMDB's ``<br />``), tokenized
  in-graph with tensorflow-text exactly as training tokenized it
  (``xlnet_tf.tokenization.in_graph``), packed into ``A <sep> [B <sep>] <cls>`` with left padding
  to ``max_seq_length`` (truncation as in training), and run through the model.  Outputs:
  classification ``probabilities`` float32 ``[B, C]``, ``logits`` float32 ``[B, C]`` and
  ``label`` string ``[B]`` (the label name of the arg-max); regression ``score`` float32
  ``[B]`` and ``logits`` float32 ``[B, 1]``.
* ``predict_ids``: already-packed features ``input_ids`` int32 ``[B, T]``, ``seg_ids`` int32
  ``[B, T]``, ``input_mask`` float32 ``[B, T]`` (1 = padding); same outputs.

Serving needs the tensorflow-text ops registered in the server (see README.md, "Export for TensorFlow Serving").
``python -m xlnet_tf.serving.saved_model <saved_model_cli arguments>`` runs TensorFlow's
``saved_model_cli`` with those ops registered, e.g.::

    python -m xlnet_tf.serving.saved_model show --dir export/1 --all
    python -m xlnet_tf.serving.saved_model run --dir export/1 --tag_set serve \\
        --signature_def serving_default --input_exprs 'text_a=["a fine film"]'

:func:`write_archive` (versioned, atomic write of any ExportArchive with assets) and
:func:`rest_predict` are not classifier-specific (a SQuAD export can use both).
:func:`rest_predict` answers a TF Serving REST ``:predict`` request body (``instances`` row
format or ``inputs`` columnar format) with the response body TF Serving would send.
"""
import base64
import contextlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile

import numpy as np
import tensorflow as tf

from xlnet_tf.tokenization import clean_text_tf

log = logging.getLogger("xlnet_tf")

SPIECE_ASSET_NAME = "spiece.model"
EXPORT_INFO_NAME = "export_info.json"

# ---------------------------------------------------------------------------- versions
def next_version(export_dir):
    """1 + the highest numeric version folder in ``export_dir`` (1 when there is none)."""
    if not os.path.isdir(export_dir):
        return 1
    numbers = [int(n) for n in os.listdir(export_dir) if n.isdigit()]
    return max(numbers, default=0) + 1


def check_export_dir(export_dir, version=None):
    """Clear errors before any work: ``export_dir`` must be a folder (or absent) and the
    version folder must not exist yet.  Returns the version number to write."""
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise ValueError(f"--export_dir {export_dir!r} exists and is not a folder; TF Serving "
                         f"needs a folder of numbered versions")
    if version is None:
        return next_version(export_dir)
    version = int(version)
    if version <= 0:
        raise ValueError(f"export version must be a positive integer, got {version}")
    target = os.path.join(export_dir, str(version))
    if os.path.exists(target):
        raise FileExistsError(f"{target!r} already exists; versions are never overwritten - "
                              f"choose another version or leave it unset (next free number)")
    return version


@contextlib.contextmanager
def _versioned_output(export_dir, version):
    """Yields a temporary folder inside ``export_dir``; renames it to ``export_dir/version``
    when the body succeeds, deletes it otherwise."""
    os.makedirs(export_dir, exist_ok=True)
    target = os.path.join(export_dir, str(version))
    tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir)
    try:
        yield tmp
        if os.path.exists(target):
            raise FileExistsError(f"{target!r} appeared while exporting; not overwriting it")
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _attach_asset(archive, name, path):
    """Make ``path`` a SavedModel asset (copied into ``assets/``) reachable as
    ``loaded.<name>.asset_path`` after ``tf.saved_model.load``.

    ExportArchive has no public call for plain file assets: its ``track`` only collects
    variables and lookup tables.  The asset is therefore set on the archive's root trackable
    (the object ``write_out`` saves)."""
    root = getattr(archive, "_tf_trackable", None)
    if root is None:  # pragma: no cover - a Keras release without the attribute
        raise RuntimeError("this Keras release's ExportArchive has no _tf_trackable; cannot "
                           "attach the SentencePiece asset")
    setattr(root, name, tf.saved_model.Asset(path))


def write_archive(archive, export_dir, version=None, assets=None, extra_files=None):
    """Write a ``keras.export.ExportArchive`` as ``export_dir/<version>/`` (temporary name,
    then rename; an existing version is never overwritten) - the common path of every export.

    Args:
      archive: the ExportArchive with its endpoints added.
      version: folder number; default the next free one.
      assets: {attribute name: (file name, bytes)} saved as SavedModel assets
        (``assets/<file name>``, reachable as ``loaded.<attribute>.asset_path``).
      extra_files: {file name: JSON-able object} written to ``assets.extra/`` (not loaded by
        TensorFlow; for people and tools).
    Returns:
      the version folder's path.
    """
    version = check_export_dir(export_dir, version)
    with _versioned_output(export_dir, version) as tmp, \
            tempfile.TemporaryDirectory() as staging:
        for attr, (file_name, data) in (assets or {}).items():
            # an asset keeps its file name in assets/: stage the bytes under that name
            staged = os.path.join(staging, file_name)
            with open(staged, "wb") as f:
                f.write(data)
            _attach_asset(archive, attr, staged)
        archive.write_out(tmp, verbose=False)
        if extra_files:
            extra = os.path.join(tmp, "assets.extra")
            os.makedirs(extra, exist_ok=True)
            for name, obj in extra_files.items():
                with open(os.path.join(extra, name), "w", encoding="utf-8") as f:
                    json.dump(obj, f, indent=2, sort_keys=True)
    path = os.path.join(export_dir, str(version))
    log.info("exported SavedModel version %s to %s", version, path)
    return path


# ---------------------------------------------------------------------------- classifier
def _classifier_outputs(logits, label_names, is_regression):
    logits = tf.cast(logits, tf.float32)                                     # [B, C]
    if is_regression:
        return {"score": logits[:, 0], "logits": logits}                     # [B], [B, 1]
    probs = tf.nn.softmax(logits, axis=-1)                                   # [B, C]
    label = tf.gather(label_names, tf.argmax(logits, axis=-1, output_type=tf.int32))  # [B]
    return {"probabilities": probs, "logits": logits, "label": label}


def build_classifier_archive(model, spiece_model, *, max_seq_length, label_list=None,
                             is_regression=False, pair=False, uncased=False, task_name=""):
    """A ``keras.export.ExportArchive`` with the ``serving_default`` (raw text) and
    ``predict_ids`` endpoints of a classifier (see module docstring).

    Args:
      model: an ``XLNetClassifier`` (built; its weights are what gets exported).
      spiece_model: path of the SentencePiece model used for training.
      max_seq_length: T of the training features.
      label_list: label names in id order (classification).
      is_regression: one score per example.
      pair: the task has a second text (``text_b`` becomes a required input).
      uncased: lower-case text, as the ``--uncased`` training flag.
      task_name: selects the task reader's text cleanup (``tokenization.text.TASK_CLEANUPS``).
    """
    import keras

    from xlnet_tf.classification.data import pack_ids_tf
    from xlnet_tf.tokenization.in_graph import XLNetTokenizerLayer

    T = int(max_seq_length)
    if not is_regression and (not label_list or len(label_list) != model.n_class):
        raise ValueError(f"label_list {label_list} does not match the model's "
                         f"{model.n_class} classes")
    tokenizer = XLNetTokenizerLayer(spiece_model, lower=uncased, name="tokenizer")
    label_names = tf.constant([str(x) for x in (label_list or [""])], tf.string)  # [C]

    def run(input_ids, seg_ids, input_mask):
        out = model({"input_ids": input_ids, "seg_ids": seg_ids, "input_mask": input_mask},
                    training=False)
        return _classifier_outputs(out["logits"], label_names, is_regression)

    def ids_of(texts):
        return tokenizer(clean_text_tf(texts, task_name))                     # [B, (n)]

    if pair:
        def serve_text(text_a, text_b):
            n_a, n_b = tf.shape(text_a)[0], tf.shape(text_b)[0]
            check = tf.debugging.assert_equal(
                n_a, n_b, message="text_a and text_b must hold the same number of texts")
            with tf.control_dependencies([check]):
                input_ids, input_mask, seg_ids = pack_ids_tf(
                    ids_of(text_a), ids_of(text_b), T)                        # [B, T] x 3
            return run(input_ids, seg_ids, input_mask)
        text_spec = [tf.TensorSpec([None], tf.string, name="text_a"),
                     tf.TensorSpec([None], tf.string, name="text_b")]
    else:
        def serve_text(text_a):
            input_ids, input_mask, seg_ids = pack_ids_tf(ids_of(text_a), None, T)  # [B, T] x 3
            return run(input_ids, seg_ids, input_mask)
        text_spec = [tf.TensorSpec([None], tf.string, name="text_a")]

    def predict_ids(input_ids, seg_ids, input_mask):
        return run(tf.cast(input_ids, tf.int32), tf.cast(seg_ids, tf.int32),
                   tf.cast(input_mask, tf.float32))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(tokenizer)
    archive.add_endpoint("serving_default", serve_text, input_signature=text_spec)
    archive.add_endpoint("predict_ids", predict_ids, input_signature=[
        tf.TensorSpec([None, T], tf.int32, name="input_ids"),
        tf.TensorSpec([None, T], tf.int32, name="seg_ids"),
        tf.TensorSpec([None, T], tf.float32, name="input_mask")])
    return archive


def export_classifier(model, export_dir, spiece_model, *, max_seq_length, label_list=None,
                      is_regression=False, pair=False, uncased=False, task_name="",
                      version=None, info=None):
    """Write ``export_dir/<version>/`` (a SavedModel TF Serving can load); returns its path.

    ``version`` defaults to the next free number.  ``info`` (a JSON-able dict) is stored
    with the export settings in ``assets.extra/export_info.json``.
    """
    with open(spiece_model, "rb") as f:
        spm_bytes = f.read()
    version = check_export_dir(export_dir, version)
    archive = build_classifier_archive(
        model, spm_bytes, max_seq_length=max_seq_length, label_list=label_list,
        is_regression=is_regression, pair=pair, uncased=uncased, task_name=task_name)
    export_info = {
        "task": task_name, "max_seq_length": int(max_seq_length),
        "label_list": None if is_regression else [str(x) for x in label_list],
        "is_regression": bool(is_regression), "pair": bool(pair), "uncased": bool(uncased),
        "inputs": ["text_a", "text_b"] if pair else ["text_a"],
        "outputs": ["score", "logits"] if is_regression else ["probabilities", "logits",
                                                               "label"],
        "xlnet_config": model.xlnet_config.checkpoint_dict(),
        **(info or {})}
    return write_archive(archive, export_dir, version,
                         assets={"spiece_model": (SPIECE_ASSET_NAME, spm_bytes)},
                         extra_files={EXPORT_INFO_NAME: export_info})


# ---------------------------------------------------------------------------- REST emulation
class RestError(ValueError):
    """A request TF Serving would answer with HTTP 400 and ``{"error": ...}``."""


_LOADED = {}


def load_saved_model(saved_model_dir):
    """``tf.saved_model.load`` with ``tensorflow_text`` imported first (its ops must be
    registered before a graph that uses them is loaded); cached per folder."""
    import tensorflow_text  # noqa: F401 - registers the SentencePiece / normalize ops

    key = os.path.abspath(saved_model_dir)
    if key not in _LOADED:
        if not os.path.exists(os.path.join(key, "saved_model.pb")):
            raise FileNotFoundError(f"{saved_model_dir!r} holds no saved_model.pb; pass a "
                                    f"version folder such as export_dir/1")
        _LOADED[key] = tf.saved_model.load(key)
    return _LOADED[key]


def _decode_value(value, dtype, where):
    """JSON value (nested lists; ``{"b64": ...}`` for binary strings) -> numpy array."""
    if dtype == tf.string:
        def conv(v):
            if isinstance(v, list):
                return [conv(x) for x in v]
            if isinstance(v, dict):
                if set(v) != {"b64"}:
                    raise RestError(f"{where}: a string value must be a JSON string or "
                                    f'{{"b64": "<base64>"}}, got {json.dumps(v)[:80]}')
                try:
                    return base64.b64decode(v["b64"], validate=True)
                except (ValueError, TypeError):
                    raise RestError(f"{where}: invalid base64 in {json.dumps(v)[:80]}") from None
            if not isinstance(v, str):
                raise RestError(f"{where}: expected a string, got {json.dumps(v)[:80]}")
            return v.encode("utf-8")
        return np.array(conv(value), dtype=object)
    try:
        arr = np.array(value, dtype=dtype.as_numpy_dtype)
    except (ValueError, TypeError):
        raise RestError(f"{where}: cannot convert {json.dumps(value)[:80]} to "
                        f"{dtype.name}") from None
    if arr.dtype == object:
        raise RestError(f"{where}: ragged nested lists are not a tensor")
    return arr


def _graph_error_text(message):
    """The useful line of a TensorFlow runtime error (an Assert's message, else the first
    line that is not a stack trace header)."""
    found = re.search(r"assertion failed: \[([^\]]*)\]", message)
    if found:
        return found.group(1)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(
        ("Graph execution error", "Detected at node", "File ", "[[", "in ", "line "))]
    return (useful or lines or [message])[-1]


def _encode_value(value, name):
    """numpy output -> JSON value (strings decoded as UTF-8, ``{"b64"}`` when the output name
    ends in ``_bytes`` or the bytes are not UTF-8, as TF Serving does)."""
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind == "S":
            return [_encode_value(v, name) for v in value.tolist()] if value.ndim else \
                _encode_value(value.item(), name)
        return value.tolist()
    if isinstance(value, list):
        return [_encode_value(v, name) for v in value]
    if isinstance(value, bytes):
        if not name.endswith("_bytes"):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


class RestPredictor:
    """TF Serving's REST ``POST /v1/models/<name>:predict`` for one SavedModel folder.

    ``predict(body)`` takes the request body (a JSON string, bytes or the parsed dict) and
    returns the response body TF Serving sends: ``{"predictions": [...]}`` for the
    ``instances`` (row) format, ``{"outputs": ...}`` for the ``inputs`` (columnar) format,
    ``{"error": "..."}`` for a bad request.  Rules followed (TF Serving's REST API):

    * ``signature_name`` selects the signature (default ``serving_default``);
    * row format: ``instances`` is a list, one element per example; an element is an object
      ``{input name: value}`` naming every input, or - when the signature has a single input
      - the bare value; the elements are stacked into a batch;
    * columnar format: ``inputs`` is an object ``{input name: batched value}``, or the bare
      batched value for a single-input signature;
    * responses: rows are objects ``{output name: value}`` (the bare value when the signature
      has a single output); columnar ``outputs`` is ``{output name: batched value}`` (the bare
      value for a single output).
    """

    def __init__(self, saved_model_dir):
        self.saved_model_dir = saved_model_dir
        self.loaded = load_saved_model(saved_model_dir)

    def signature(self, name):
        sigs = self.loaded.signatures
        if name not in sigs:
            raise RestError(f"Serving signature name: \"{name}\" not found in signature def; "
                            f"available: {sorted(sigs)}")
        fn = sigs[name]
        return fn, fn.structured_input_signature[1]                          # {name: spec}

    def predict(self, body):
        try:
            return self._predict(body)
        except RestError as e:
            return {"error": str(e)}
        except tf.errors.InvalidArgumentError as e:
            return {"error": _graph_error_text(e.message)}

    def _predict(self, body):
        if isinstance(body, (bytes, bytearray)):
            body = body.decode("utf-8")
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except json.JSONDecodeError as e:
                raise RestError(f"JSON Parse error: {e}") from None
        if not isinstance(body, dict):
            raise RestError("the request body must be a JSON object")
        unknown = sorted(set(body) - {"signature_name", "instances", "inputs"})
        if unknown:
            raise RestError(f"unknown keys {unknown} in the request; expected signature_name "
                            f"and instances or inputs")
        if ("instances" in body) == ("inputs" in body):
            raise RestError("Missing 'inputs' or 'instances' key" if "instances" not in body
                            else "Both 'inputs' and 'instances' keys are present; use one")
        fn, specs = self.signature(body.get("signature_name", "serving_default"))
        names = sorted(specs)
        if "instances" in body:
            feeds = self._rows_to_feeds(body["instances"], specs, names)
        else:
            feeds = self._columns_to_feeds(body["inputs"], specs, names)
        args = {}
        for name in names:
            spec = specs[name]
            arr = feeds[name]
            if not spec.shape.is_compatible_with(arr.shape):
                raise RestError(f"input {name!r} has shape {list(arr.shape)}, the signature "
                                f"expects {spec.shape.as_list()} (None = any)")
            args[name] = tf.constant(arr, dtype=spec.dtype)
        out = {k: v.numpy() for k, v in fn(**args).items()}
        if "instances" in body:
            n = len(body["instances"])
            keys = sorted(out)
            for k in keys:
                if out[k].ndim == 0 or out[k].shape[0] != n:
                    raise RestError(f"output {k!r} has shape {list(out[k].shape)}: the row "
                                    f"format needs a batch dimension of {n}; use 'inputs'")
            if len(keys) == 1:
                return {"predictions": [_encode_value(out[keys[0]][i], keys[0])
                                        for i in range(n)]}
            return {"predictions": [{k: _encode_value(out[k][i], k) for k in keys}
                                    for i in range(n)]}
        if len(out) == 1:
            (k, v), = out.items()
            return {"outputs": _encode_value(v, k)}
        return {"outputs": {k: _encode_value(v, k) for k, v in sorted(out.items())}}

    def _rows_to_feeds(self, instances, specs, names):
        if not isinstance(instances, list) or not instances:
            raise RestError("'instances' must be a non-empty JSON list (one element per example)")
        columns = {n: [] for n in names}
        for i, row in enumerate(instances):
            if isinstance(row, dict) and not (set(row) == {"b64"} and len(names) == 1):
                missing = [n for n in names if n not in row]
                extra = sorted(set(row) - set(names))
                if missing or extra:
                    raise RestError(
                        f"instances[{i}]: " + (f"does not have named input(s) {missing}; "
                                               if missing else "")
                        + (f"unknown input(s) {extra}; " if extra else "")
                        + f"the signature takes {names}")
                for n in names:
                    columns[n].append(row[n])
            elif len(names) == 1:
                columns[names[0]].append(row)
            else:
                raise RestError(f"instances[{i}] must be a JSON object naming the inputs "
                                f"{names} (the signature has several inputs)")
        return {n: _decode_value(columns[n], specs[n].dtype, f"instances[*].{n}")
                for n in names}

    def _columns_to_feeds(self, inputs, specs, names):
        if isinstance(inputs, dict) and not (set(inputs) == {"b64"} and len(names) == 1):
            missing = [n for n in names if n not in inputs]
            extra = sorted(set(inputs) - set(names))
            if missing or extra:
                raise RestError(("missing input(s) %s; " % missing if missing else "")
                                + ("unknown input(s) %s; " % extra if extra else "")
                                + f"the signature takes {names}")
            return {n: _decode_value(inputs[n], specs[n].dtype, f"inputs.{n}") for n in names}
        if len(names) != 1:
            raise RestError(f"'inputs' must be a JSON object naming the inputs {names}")
        return {names[0]: _decode_value(inputs, specs[names[0]].dtype, "inputs")}


def rest_predict(saved_model_dir, json_body, signature_name=None):
    """Answer a TF Serving REST predict request body for the SavedModel in
    ``saved_model_dir`` (a version folder); see :class:`RestPredictor`.

    ``signature_name`` overrides the one in the body.  Returns the response body as a dict.
    """
    predictor = RestPredictor(saved_model_dir)
    if signature_name is not None:
        if isinstance(json_body, (bytes, bytearray, str)):
            try:
                json_body = json.loads(json_body)
            except json.JSONDecodeError as e:
                return {"error": f"JSON Parse error: {e}"}
        json_body = dict(json_body, signature_name=signature_name)
    return predictor.predict(json_body)


# ---------------------------------------------------------------------------- saved_model_cli
def saved_model_cli_main(argv):
    """TensorFlow's ``saved_model_cli`` with the tensorflow-text ops registered (the stock
    command fails on our graphs with "Op type not registered 'NormalizeUTF8'")."""
    import tensorflow_text  # noqa: F401 - registers the ops before any graph is loaded
    from tensorflow.python.tools import saved_model_cli

    sys.argv = ["saved_model_cli"] + list(argv)
    saved_model_cli.main()


if __name__ == "__main__":
    saved_model_cli_main(sys.argv[1:])
