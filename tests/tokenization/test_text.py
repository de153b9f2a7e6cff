"""The text rules and task clean-ups of xlnet_tf/tokenization/text.py: hand-computed
results, and the in-graph path giving the same text as the Python path on tricky inputs."""
import subprocess
import sys

import pytest

from xlnet_tf.tokenization import text

TRICKY = [
    "",
    "plain, 1,000 words",
    "a<br />b<br /><br />c<br/>d<br />",           # adjacent, and a near miss
    "<br /<br />>",                                 # a match inside a near miss
    'say \\"hi\\" and ""so"" \\n next\\n\\n',       # the Yelp escapes
    '"""odd""" \\\\n \\\\"',                        # odd quote runs, escaped backslashes
    "regex .*+?()[]{}|^$ \\1 \\0 $1 chars",          # RE2 specials and rewrite escapes
    "``quoted'' and ''' and ````",                  # LaTeX quotes, odd runs
    "caf\u00e9 na\u0131\u0308ve \ufb01 \u00bd \u2003 \u3000 x\u00a0y",  # accents, NFKD, spaces
    "  \t lead and trail \n ",
]


def test_clean_text_hand_computed():
    assert text.clean_text("a<br />b<br /><br />c", "imdb") == "a b  c"
    assert text.clean_text("a<br />b", "IMDB") == "a b"            # task names: any case
    assert text.clean_text('say \\"hi\\" ""so"" a\\nb', "yelp5") == 'say "hi" "so" a b'
    assert text.clean_text('"""', "yelp2") == '""'                 # left to right, once
    assert text.clean_text("a<br />b \\n", "sst-2") == "a<br />b \\n"  # no clean-up


def test_preprocess_text_hand_computed():
    assert text.preprocess_text("  ``Caf\u00e9''  \t x ") == '"Cafe" x'
    assert text.preprocess_text("\ufb01 \u00bd", lower=True) == "fi 1\u20442"
    assert text.preprocess_text("Caf\u00e9", keep_accents=True) == "Caf\u00e9"
    assert text.preprocess_text(" a  b ", remove_space=False) == " a  b "


@pytest.mark.parametrize("task", ["imdb", "yelp2", "yelp5", "Yelp5", "sst-2"])
def test_clean_text_in_graph_equals_python(task):
    import tensorflow as tf
    got = [t.decode("utf-8") for t in text.clean_text_tf(tf.constant(TRICKY), task).numpy()]
    assert got == [text.clean_text(t, task) for t in TRICKY]


def test_quote_replacements_in_graph_equal_python():
    import tensorflow as tf
    pairs = text.QUOTE_REPLACEMENTS
    got = text.replace_literals_tf(tf.constant(TRICKY), pairs).numpy()
    assert [t.decode("utf-8") for t in got] == [text.replace_literals(t, pairs) for t in TRICKY]


@pytest.mark.parametrize("lower", [False, True])
def test_full_rules_in_graph_equal_python_after_cleanup(lower):
    import tensorflow as tf
    from xlnet_tf.tokenization import in_graph
    for task in ("imdb", "yelp2"):
        cleaned = text.clean_text_tf(tf.constant(TRICKY), task)
        got = in_graph.preprocess_text(cleaned, lower=lower).numpy()
        want = [text.preprocess_text(text.clean_text(t, task), lower=lower) for t in TRICKY]
        assert [t.decode("utf-8") for t in got] == want, task


def test_tokenization_package_does_not_load_tensorflow(repo_root):
    code = ("import sys, xlnet_tf.tokenization as t; t.Tokenizer; t.clean_text('a', 'imdb'); "
            "t.preprocess_text('a'); t.train_sentencepiece; import xlnet_tf; xlnet_tf.Tokenizer; "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=repo_root, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
