"""Check an exported SavedModel without TensorFlow Serving.

    python -m xlnet_tf.serving COMMAND --dir VERSION_DIR [flags]

    show     saved_model_cli show: tag sets, signatures (--all: everything)
    run      saved_model_cli run: feed --input_exprs / --inputs / --input_examples through a
             signature with the TF1 session loader TF Serving uses
    scan     saved_model_cli scan: ops on saved_model_cli's deny list
    predict  answer a TF Serving REST :predict request body (--request) as TF Serving would

The stock saved_model_cli fails on these graphs with "Op type not registered
'NormalizeUTF8'"; every command here registers the tensorflow-text ops first.  Mistakes are
one line, exit 2: --dir naming the export root instead of a version folder ("add /1"), a
``run`` input that is a scalar where the signature takes a batch, numbers for a string
input (or strings for a number), an input the signature does not have or lacks; an error
saved_model_cli raises is reported the same way.  E.g.:

    python -m xlnet_tf.serving show --dir export/stsb/1 --all
    python -m xlnet_tf.serving run --dir export/stsb/1 --tag_set serve \\
        --signature_def serving_default --input_exprs 'text_a=["a fine film"]'
    python -m xlnet_tf.serving predict --dir export/stsb/1 \\
        --request '{"instances": [{"text_a": "a fine film"}]}'
"""
import json
import sys

import numpy as np
from absl import flags

from xlnet_tf import cli

COMMANDS = ("show", "run", "scan", "predict")
# saved_model_cli's flags that are passed through (same names, same meaning)
_STRING_FLAGS = ("tag_set", "signature_def", "inputs", "input_exprs", "input_examples",
                 "outdir", "op_denylist")
_BOOL_FLAGS = ("all", "list_ops", "overwrite")


def define_flags(fv):
    flags.DEFINE_enum("command", None, COMMANDS, "What to do (also the first word of the "
                      "command line).", flag_values=fv)
    flags.DEFINE_string("dir", None, "The SavedModel: a version folder such as export_dir/1.",
                        flag_values=fv)
    flags.DEFINE_string("tag_set", None, "show/run/scan: comma-separated tags of the graph "
                        "(ours: serve).", flag_values=fv)
    flags.DEFINE_string("signature_def", None, "show/run/predict: the signature "
                        "(serving_default, predict_ids, ...).", flag_values=fv)
    flags.DEFINE_bool("all", False, "show: everything in the SavedModel.", flag_values=fv)
    flags.DEFINE_bool("list_ops", False, "show: the ops of the --tag_set graph.",
                      flag_values=fv)
    flags.DEFINE_string("inputs", None, "run: <input>=<file.npy>[;...] (numpy.load).",
                        flag_values=fv)
    flags.DEFINE_string("input_exprs", None, "run: <input>=<Python literal>, separated by "
                        "';'.", flag_values=fv)
    flags.DEFINE_string("input_examples", None, "run: <input>=[{feature: values}, ...] as "
                        "tf.train.Example.", flag_values=fv)
    flags.DEFINE_string("outdir", None, "run: write each output as <name>.npy here.",
                        flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "run: overwrite files in --outdir.", flag_values=fv)
    flags.DEFINE_string("op_denylist", None, "scan: comma-separated ops to look for.",
                        flag_values=fv)
    flags.DEFINE_string("request", None, "predict: the JSON request body, or @FILE to read it "
                        "from a file.", flag_values=fv)


def command_argv(argv):
    """``show --dir d`` -> ``--command=show --dir d``: the first word names the command."""
    argv = list(argv)
    if argv and not argv[0].startswith("-"):
        return [f"--command={argv[0]}", *argv[1:]]
    return argv


def saved_model_cli_argv(F):
    """The saved_model_cli command line of the flags given."""
    argv = [F.command, f"--dir={F.dir}"]
    argv += [f"--{name}={F[name].value}" for name in _STRING_FLAGS if F[name].present]
    argv += [f"--{'' if F[name].value else 'no'}{name}" for name in _BOOL_FLAGS
             if F[name].present]
    return argv


def read_request(request):
    if request.startswith("@"):
        with open(request[1:], encoding="utf-8") as f:
            return f.read()
    return request


def _shape_text(dims):
    return "[" + ", ".join("None" if d < 0 else str(d) for d in dims) + "]"


def check_input_value(name, value, info, flag):
    """One ``run`` input (a Python literal) against the signature's TensorInfo ``info``:
    the rank (a scalar where a batch is expected says how to wrap it) and strings versus
    numbers.  Exits 2 naming ``flag`` and the input."""
    from tensorflow.core.framework import types_pb2
    try:
        arr = np.asarray(value)
    except ValueError:
        cli.fail(f"{flag}: {name}={value!r} is a ragged list; every row needs the same length")
    if arr.dtype == object:
        cli.fail(f"{flag}: {name}={value!r} mixes types or row lengths")
    is_string = info.dtype == types_pb2.DT_STRING
    if not info.tensor_shape.unknown_rank:
        dims = [d.size for d in info.tensor_shape.dim]
        if arr.ndim != len(dims):
            hint = (f"; wrap it in a list, one element per example: {name}=[{value!r}]"
                    if arr.ndim == 0 and len(dims) == 1 else "")
            what = "a scalar" if arr.ndim == 0 else f"of shape {list(arr.shape)}"
            cli.fail(f"{flag}: {name} is {what}, the signature takes shape "
                     f"{_shape_text(dims)} (None = any){hint}")
    if is_string and arr.dtype.kind not in "US":
        cli.fail(f"{flag}: {name} must be strings (the signature takes DT_STRING), got "
                 f"{value!r}; quote the text, e.g. {name}=[\"a fine film\"]")
    if not is_string and arr.dtype.kind in "US":
        cli.fail(f"{flag}: {name} must be numbers ({types_pb2.DataType.Name(info.dtype)}), "
                 f"got {value!r}")


def check_run_flags(F):
    """``run`` before saved_model_cli is called: the tag set, the signature and every
    --input_exprs value checked against the signature (saved_model_cli would answer with a
    traceback)."""
    from tensorflow.python.tools import saved_model_cli, saved_model_utils
    if not (F.inputs or F.input_exprs or F.input_examples):
        cli.fail("run needs --input_exprs, --inputs or --input_examples, e.g. "
                 "--input_exprs 'text_a=[\"a fine film\"]'")
    if not (F.tag_set and F.signature_def):
        cli.fail("run needs --tag_set (ours: serve) and --signature_def (e.g. "
                 "serving_default)")
    try:
        meta = saved_model_utils.get_meta_graph_def(F.dir, F.tag_set)
    except RuntimeError as e:
        cli.fail(f"--tag_set={F.tag_set}: {e}")
    signatures = meta.signature_def
    if F.signature_def not in signatures:
        cli.fail(f"--signature_def={F.signature_def} is not in {F.dir}; it has "
                 f"{sorted(signatures)}")
    inputs = signatures[F.signature_def].inputs
    if not F.input_exprs:
        return
    try:
        values = saved_model_cli.preprocess_input_exprs_arg_string(F.input_exprs)
    except RuntimeError as e:
        cli.fail(f"--input_exprs: {e} Write Python literals, strings in quotes: "
                 f"text_a=[\"a fine film\"]")
    for name, value in values.items():
        if name not in inputs:
            cli.fail(f"--input_exprs: {F.signature_def} has no input {name!r}; its inputs "
                     f"are {sorted(inputs)}")
        check_input_value(name, value, inputs[name], "--input_exprs")
    missing = sorted(set(inputs) - set(values))
    if missing and not (F.inputs or F.input_examples):
        cli.fail(f"--input_exprs: missing input(s) {missing} of {F.signature_def} (it takes "
                 f"{sorted(inputs)}; separate them with ';')")


def run_saved_model_cli(F):
    """saved_model_cli with the tensorflow-text ops registered; an exception it raises is one
    line (exit 2) instead of its traceback."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 - registers the ops before any graph is loaded
    from tensorflow.python.tools import saved_model_cli

    from xlnet_tf.serving.rest import _graph_error_text
    sys.argv = ["saved_model_cli", *saved_model_cli_argv(F)]
    try:
        saved_model_cli.main()   # absl app.run: exits with saved_model_cli's status
    except tf.errors.OpError as e:
        cli.fail(f"saved_model_cli {F.command}: {_graph_error_text(e.message)}")
    except (RuntimeError, ValueError, AttributeError, KeyError, OSError) as e:
        cli.fail(f"saved_model_cli {F.command}: {str(e).strip().splitlines()[-1]}")


def main(F):
    from xlnet_tf.serving.saved_model import check_version_dir
    if not F.command:
        cli.fail(f"give a command first: {', '.join(COMMANDS)} (see --help)")
    if not F.dir:
        cli.fail("--dir is required (a version folder such as export_dir/1)")
    check_version_dir(F.dir)
    if F.command == "predict":
        if not F.request:
            cli.fail("predict needs --request (a JSON body or @FILE)")
        from xlnet_tf.serving.rest import rest_predict
        reply = rest_predict(F.dir, read_request(F.request), F.signature_def)
        print(json.dumps(reply), flush=True)
        return 1 if "error" in reply else 0
    from xlnet_tf.finetuning import check_writable_dir
    from xlnet_tf.serving.saved_model import check_saved_model_files
    check_saved_model_files(F.dir, variables=F.command == "run")
    if F.outdir:
        check_writable_dir(F.outdir, "outdir")
    if F.command == "run":
        check_run_flags(F)
    run_saved_model_cli(F)
    return 0


def entry():
    """The console command (pyproject.toml's [project.scripts])."""
    sys.exit(cli.run(define_flags, main, command_argv(sys.argv[1:]),
                     prog="python -m xlnet_tf.serving", doc=__doc__))


if __name__ == "__main__":
    entry()
