"""What every entry point does alike (xlnet_tf.cli): --help exits 0 with its flags, Ctrl-C
ends in one line that says where the run stopped (exit 130, no traceback)."""
import contextlib
import importlib
import io

import pytest

from xlnet_tf import cli

ENTRY_POINTS = ["run_pretrain", "run_classifier", "run_squad", "run_ner",
                "xlnet_tf.pretraining.records", "xlnet_tf.tokenization.train_spm",
                "xlnet_tf.squad.evaluate", "xlnet_tf.serving.__main__",
                "xlnet_tf.generation.__main__"]


def capture(define_flags, main, argv, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.run(define_flags, main, argv, prog="prog", **kwargs)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", ENTRY_POINTS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_exits_0_with_the_flags(name, flag):
    module = importlib.import_module(name)

    def main(F):
        raise AssertionError("--help must not run the entry point")

    code, out, err = capture(module.define_flags, main, [flag], doc=module.__doc__)
    assert code == 0 and err == ""
    assert "Flags of prog" in out and "--" in out


def test_ctrl_c_prints_one_line_with_the_stage_and_the_hint():
    def main(F):
        cli.note_stage("building the records in /data/records")
        raise KeyboardInterrupt

    code, out, err = capture(lambda fv: None, main, [], interrupt_hint="rerun to resume")
    assert code == 130 and "Traceback" not in err
    assert err.strip() == "prog: interrupted while building the records in /data/records; " \
                          "rerun to resume"
    # the next run starts without the stage of the last one
    code, _, err = capture(lambda fv: None, lambda F: (_ for _ in ()).throw(KeyboardInterrupt),
                           [])
    assert code == 130 and err.strip() == "prog: interrupted"
