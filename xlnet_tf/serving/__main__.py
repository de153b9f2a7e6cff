"""Check an exported SavedModel without TensorFlow Serving.

    python -m xlnet_tf.serving COMMAND --dir VERSION_DIR [flags]

    show     saved_model_cli show: tag sets, signatures (--all: everything)
    run      saved_model_cli run: feed --input_exprs / --inputs / --input_examples through a
             signature with the TF1 session loader TF Serving uses
    scan     saved_model_cli scan: ops on saved_model_cli's deny list
    predict  answer a TF Serving REST :predict request body (--request) as TF Serving would

The stock saved_model_cli fails on these graphs with "Op type not registered
'NormalizeUTF8'"; every command here registers the tensorflow-text ops first.  E.g.:

    python -m xlnet_tf.serving show --dir export/stsb/1 --all
    python -m xlnet_tf.serving run --dir export/stsb/1 --tag_set serve \\
        --signature_def serving_default --input_exprs 'text_a=["a fine film"]'
    python -m xlnet_tf.serving predict --dir export/stsb/1 \\
        --request '{"instances": [{"text_a": "a fine film"}]}'
"""
import json
import sys

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


def main(F):
    if not F.command:
        cli.fail(f"give a command first: {', '.join(COMMANDS)} (see --help)")
    if not F.dir:
        cli.fail("--dir is required (a version folder such as export_dir/1)")
    if F.command == "predict":
        if not F.request:
            cli.fail("predict needs --request (a JSON body or @FILE)")
        from xlnet_tf.serving.rest import rest_predict
        reply = rest_predict(F.dir, read_request(F.request), F.signature_def)
        print(json.dumps(reply), flush=True)
        return 1 if "error" in reply else 0
    import tensorflow_text  # noqa: F401 - registers the ops before any graph is loaded
    from tensorflow.python.tools import saved_model_cli

    from xlnet_tf.finetuning import check_writable_dir
    from xlnet_tf.serving.saved_model import check_saved_model_files
    check_saved_model_files(F.dir, variables=F.command == "run")
    if F.outdir:
        check_writable_dir(F.outdir, "outdir")

    sys.argv = ["saved_model_cli", *saved_model_cli_argv(F)]
    saved_model_cli.main()       # absl app.run: exits with saved_model_cli's status
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(define_flags, main, command_argv(sys.argv[1:]),
                     prog="python -m xlnet_tf.serving", doc=__doc__))
