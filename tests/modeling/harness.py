"""The one test harness every layer, model and head of xlnet_tf runs through.

A `Case` says how to build the object under a dtype policy, which inputs to call it on, how
to call it, and (for the numeric check) what an independent float64 computation gives.
`CHECKS` are run on every case by ``tests/modeling/test_harness.py``:

* ``config``: every constructor argument is in ``get_config()``; ``from_config`` of the
  JSON-encoded config rebuilds an object with the same config and, with the same weights,
  bit-identical outputs;
* ``keras_file``: ``.keras`` save + ``keras.saving.load_model`` -> bit-identical outputs;
* ``saved_model``: ``tf.saved_model.save`` of a module serving ``case.call`` + load ->
  the same outputs as the eager call (traced graph vs eager: float32 rounding only);
* ``float32`` / ``mixed_bfloat16``: output dtypes under the policy, and the bfloat16
  outputs within ``case.bf16_tol`` x (largest float32 output) of the float32 outputs, with
  the same float32 master weights;
* ``numeric``: the float32 outputs within ``case.ref_atol`` x max(1, largest output) of
  ``case.reference`` (float64: ``tests/numpy_reference.py`` or hand-written).

Every object gets random weights (``randomize``: LayerNorm gains, biases, everything), so
no term of a check can hide behind a zero or one initialisation.

Adding a layer or head is one entry in ``test_harness.CASES``: a `Case` (see
``test_harness.py`` for the backbone's cases).
"""
import dataclasses
import inspect
import json
from typing import Callable, Dict

import keras
import numpy as np
import tensorflow as tf

CHECKS = ("config", "keras_file", "saved_model", "float32", "mixed_bfloat16", "numeric")


def default_call(obj, inputs):
    """``obj(inputs)`` in inference mode (models taking a dict of inputs)."""
    return obj(inputs, training=False)


@dataclasses.dataclass
class Case:
    """One object under test.

    build(dtype) -> a built layer/model with that dtype policy ("float32", "mixed_bfloat16");
    inputs() -> a structure (dict/list) of tensors; call(obj, inputs) -> a tensor or a
    structure of tensors (inference); reference(obj, inputs) -> {output path: float64 array}
    for some or all outputs (paths as in `flat_outputs`, "output" for a single tensor).
    bf16_dtypes: {output path: dtype name} of outputs that are not bfloat16 under
    mixed_bfloat16 (e.g. float32 logits and memories)."""
    name: str
    build: Callable
    inputs: Callable
    reference: Callable
    call: Callable = default_call
    # float32 vs float64 with random O(0.3) weights: the backbone's cases differ by <= 3e-7
    ref_atol: float = 2e-6
    # bfloat16 keeps 8 significant bits (2^-8 = 0.4% per rounding); one layer's outputs
    # differ from float32 by <= 0.7% of their largest value, the models' by 1-2%
    bf16_tol: float = 0.02
    bf16_dtypes: Dict[str, str] = dataclasses.field(default_factory=dict)
    exempt_args: tuple = ()      # constructor arguments deliberately not in get_config

    def __str__(self):
        return self.name


def randomize(obj, seed=0, scale=0.3):
    """Random normal values for every weight of ``obj`` (deterministic)."""
    rng = np.random.default_rng(seed)
    for v in obj.weights:
        v.assign((rng.standard_normal(v.shape) * scale).astype(v.dtype))
    return obj


def copy_weights(src, dst):
    assert len(src.weights) == len(dst.weights)
    for a, b in zip(src.weights, dst.weights):
        assert a.shape == b.shape, (a.path, b.path)
        b.assign(a)


def flat_outputs(out, prefix=""):
    """{path: tensor} of a call's output ("output" for a single tensor, else "key", "key/0",
    ... for dicts and lists)."""
    if isinstance(out, dict):
        return {k: v for key in sorted(out) for k, v in flat_outputs(out[key], f"{prefix}{key}/").items()}
    if isinstance(out, (list, tuple)):
        return {k: v for i, x in enumerate(out) for k, v in flat_outputs(x, f"{prefix}{i}/").items()}
    return {prefix[:-1] or "output": out}


def _numpy(out):
    return {k: np.asarray(v) for k, v in flat_outputs(out).items()}


def _scale(x):
    return max(float(np.max(np.abs(x))), 1e-6) if x.size else 1.0


def assert_same_outputs(got, want, exact=True, what=""):
    got, want = _numpy(got), _numpy(want)
    assert sorted(got) == sorted(want), (what, sorted(got), sorted(want))
    for k in want:
        if exact:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{what}: {k}")
        else:
            np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-6 * _scale(want[k]),
                                       err_msg=f"{what}: {k}")


def build_random(case, dtype="float32"):
    obj = case.build(dtype)
    return randomize(obj)


# ---------------------------------------------------------------------------- the checks
def check_config(case, tmp_path):
    obj = build_random(case)
    cfg = obj.get_config()
    params = [n for n, p in inspect.signature(type(obj).__init__).parameters.items()
              if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    missing = [n for n in params if n not in cfg and n not in case.exempt_args]
    assert not missing, f"{type(obj).__name__}.get_config() lacks constructor arguments {missing}"
    cfg_json = json.loads(json.dumps(cfg))
    clone = type(obj).from_config(cfg_json)
    if not clone.built:          # a layer: Keras builds it from its build config on loading
        clone.build_from_config(obj.get_build_config())
    again = json.loads(json.dumps(clone.get_config()))
    assert again == cfg_json, {k: (again.get(k), cfg_json.get(k)) for k in set(again) | set(cfg_json)
                               if again.get(k) != cfg_json.get(k)}
    copy_weights(obj, clone)
    inputs = case.inputs()
    assert_same_outputs(case.call(clone, inputs), case.call(obj, inputs), what="from_config")


def check_keras_file(case, tmp_path):
    obj = build_random(case)
    inputs = case.inputs()
    want = case.call(obj, inputs)
    path = str(tmp_path / f"{case.name}.keras")
    keras.saving.save_model(obj, path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(obj)
    assert_same_outputs(case.call(loaded, inputs), want, what=".keras")


def check_saved_model(case, tmp_path):
    obj = build_random(case)
    inputs = case.inputs()
    want = case.call(obj, inputs)
    module = tf.Module()
    module.obj = obj
    spec = tf.nest.map_structure(tf.TensorSpec.from_tensor, inputs)
    module.serve = tf.function(lambda x: case.call(module.obj, x), input_signature=[spec])
    path = str(tmp_path / "saved_model")
    tf.saved_model.save(module, path)
    loaded = tf.saved_model.load(path)
    # a traced graph may fuse ops differently from eager execution: float32 rounding only
    assert_same_outputs(loaded.serve(inputs), want, exact=False, what="SavedModel")


def check_float32(case, tmp_path):
    obj = build_random(case)
    for k, v in flat_outputs(case.call(obj, case.inputs())).items():
        if v.dtype.is_floating:
            assert v.dtype == tf.float32, (k, v.dtype)


def check_mixed_bfloat16(case, tmp_path):
    ref = build_random(case)
    low = case.build("mixed_bfloat16")
    copy_weights(ref, low)
    assert all(v.dtype == "float32" for v in low.weights)     # float32 master weights
    inputs = case.inputs()
    want = _numpy(case.call(ref, inputs))
    got = flat_outputs(case.call(low, inputs))
    assert sorted(got) == sorted(want)
    for k, v in got.items():
        if not v.dtype.is_floating:
            continue
        assert v.dtype.name == case.bf16_dtypes.get(k, "bfloat16"), (k, v.dtype)
        g = np.asarray(tf.cast(v, tf.float32))
        assert np.all(np.isfinite(g)), k
        np.testing.assert_allclose(g, want[k], rtol=0, atol=case.bf16_tol * _scale(want[k]),
                                   err_msg=k)


def check_numeric(case, tmp_path):
    obj = build_random(case)
    inputs = case.inputs()
    got = _numpy(case.call(obj, inputs))
    ref = case.reference(obj, tf.nest.map_structure(np.asarray, inputs))
    assert ref, "the reference computed nothing"
    for k, want in ref.items():
        assert got[k].shape == want.shape, (k, got[k].shape, want.shape)
        np.testing.assert_allclose(got[k], want, rtol=0,
                                   atol=case.ref_atol * max(1.0, _scale(want)), err_msg=k)


def run_check(case, check, tmp_path):
    globals()[f"check_{check}"](case, tmp_path)


def weights_np(obj):
    """{original TF1 name: float64 array} of a model with ``original_name_map()``."""
    return {k: np.asarray(v, np.float64) for k, v in obj.original_name_map().items()}

