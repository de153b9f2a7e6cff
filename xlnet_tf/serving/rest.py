"""An emulation of TensorFlow Serving's REST predict API over a SavedModel folder, so a
request body can be checked (tests, docs) without a server.

:func:`rest_predict` answers a ``POST /v1/models/<name>:predict`` body - the ``instances``
(row) or ``inputs`` (columnar) format, ``signature_name``, ``{"b64": ...}`` binary strings -
with the response body TF Serving would send (``predictions`` / ``outputs``, or ``error``).
It works for any SavedModel's signatures (the classifier's and SQuAD's exports alike).
"""
import base64
import json
import re

import numpy as np
import tensorflow as tf

from xlnet_tf.serving.saved_model import load_saved_model


class RestError(ValueError):
    """A request TF Serving would answer with HTTP 400 and ``{"error": ...}``."""


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
                scalar = arr.ndim == 0 and spec.shape.rank == 1
                raise RestError(f"input {name!r} has shape {list(arr.shape)}, the signature "
                                f"expects {spec.shape.as_list()} (None = any)"
                                + ("; a scalar: wrap it in a list, one element per example"
                                   if scalar else ""))
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
