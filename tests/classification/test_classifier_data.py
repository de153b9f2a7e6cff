"""Tests for the classification data side: readers, feature layout (features), cached
records (records), tf.data input (dataset)."""
import collections
import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from xlnet_tf import classification as cd
from xlnet_tf.classification import InputExample, PaddingInputExample, get_task
from xlnet_tf.classification.records import MANIFEST_SUFFIX
from xlnet_tf.tokenization.tokenizer import Tokenizer

FIXTURE_SPM = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "spiece_test.model"


def _write(path, text, encoding="utf-8"):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def _labels(examples):
    return collections.Counter(e.label for e in examples)


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(str(FIXTURE_SPM))


# ---------------------------------------------------------------------------------------------
# Readers on the real data sets of the shared_data fixture (row counts from its SOURCES.md)
# ---------------------------------------------------------------------------------------------


def test_sst2_real(shared_data):
    d = shared_data / "glue" / "SST-2"
    p = get_task("SST-2")
    dev = p.get_dev_examples(d)
    assert len(dev) == 872
    assert _labels(dev) == {"0": 428, "1": 444}
    assert dev[0] == InputExample("dev-0", "it 's a charming and often affecting journey . ", None, "1")
    assert len(p.get_train_examples(d)) == 60614  # train.tsv only by default
    both = get_task("sst2", train_file="train*.tsv").get_train_examples(d)
    assert len(both) == 60614 + 6735 == 67349  # + train_part2.tsv = all GLUE train rows
    assert [os.path.basename(f) for f in get_task("sst-2", train_file="train*.tsv").source_files(d, "train")] == [
        "train.tsv", "train_part2.tsv"]


def test_mrpc_real(shared_data):
    d = shared_data / "glue" / "MRPC"
    p = get_task("mrpc")
    train, dev, test = p.get_train_examples(d), p.get_dev_examples(d), p.get_test_examples(d)
    assert (len(train), len(dev), len(test)) == (3668, 408, 1725)
    assert _labels(train) == {"1": 2474, "0": 1194}
    assert train[0].text_a.startswith("Amrozi accused his brother")
    assert train[0].label == "1"
    # The unbalanced quote survives (TSV is read without quote processing).
    assert dev[0].text_b == '"The foodservice pie business does not fit our long-term growth strategy.'
    # Test rows have no label column: dummy = first label; guid from the index column.
    assert set(e.label for e in test) == {"0"}
    assert test[1].guid == "test-1"


def test_rte_real_hf_layout(shared_data):
    d = shared_data / "glue" / "RTE"
    p = get_task("rte")
    train, dev, test = p.get_train_examples(d), p.get_dev_examples(d), p.get_test_examples(d)
    assert (len(train), len(dev), len(test)) == (2490, 277, 3000)
    # HF labels 0 = entailment, 1 = not_entailment (146 / 131 on dev per SOURCES.md).
    assert _labels(dev) == {"entailment": 146, "not_entailment": 131}
    assert train[0].text_a == "No Weapons of Mass Destruction Found in Iraq Yet."
    assert train[0].label == "not_entailment"  # raw label 1
    assert dev[1].label == "entailment"  # raw label 0
    assert set(e.label for e in test) == {"entailment"}  # -1 -> dummy first label
    assert dev[5].guid == "dev-5"  # from the idx column


def test_stsb_real(shared_data):
    d = shared_data / "glue" / "STS-B"
    p = get_task("sts-b")
    dev = p.get_dev_examples(d)
    assert len(dev) == 1500
    assert dev[0] == InputExample("dev-0", "A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.", 5.0)
    assert dev[1].label == 4.75
    part1 = get_task("stsb", train_file="train_part1_noheader.tsv").get_train_examples(d)
    part2 = get_task("stsb", train_file="train_part2_noheader.tsv").get_train_examples(d)
    assert (len(part1), len(part2)) == (4249, 1500)
    # No train.tsv: the train*.tsv discovery reads both header-less parts.
    train = p.get_train_examples(d)
    assert len(train) == 5749
    assert train[0] == InputExample("train-0", "A plane is taking off.", "An air plane is taking off.", 5.0)
    assert train[4249].label == 4.25 and train[4249].guid == "train-4"
    # GLUE index column 0..5748 once each.
    assert sorted(int(e.guid.split("-")[1]) for e in train) == list(range(5749))
    assert all(0.0 <= e.label <= 5.0 for e in train)


def test_cola_real_lowercased(shared_data):
    d = shared_data / "glue" / "CoLA"
    p = get_task("cola")
    train = p.get_train_examples(d)
    assert len(train) == 8551
    assert _labels(train) == {"1": 6023, "0": 2528}
    assert train[0].text_a == "our friends wo n't buy this analysis , let alone the next one we propose"
    dev = p.get_dev_examples(d)  # discovered: dev_out_of_domain.lowercased.tsv
    assert len(dev) == 516
    assert dev[0] == InputExample("dev-0", "somebody just left guess who", None, "1")


def test_imdb_real_tsv_samples(shared_data):
    d = shared_data / "imdb"
    p = get_task("imdb")
    train, dev = p.get_train_examples(d), p.get_dev_examples(d)
    assert (len(train), len(dev)) == (2000, 1000)
    assert _labels(train) == {"neg": 1000, "pos": 1000}
    assert _labels(dev) == {"neg": 500, "pos": 500}
    assert train[0].guid == "train-train/neg/0_3.txt"
    assert train[0].text_a.startswith("Story of a man who has unnatural feelings for a pig.")
    assert not any("<br />" in e.text_a for e in train + dev)
    raw = (d / "train_sample.tsv").read_text(encoding="utf-8")
    assert raw.count("<br />") > 1000  # the raw file has them; the reader removed them


# ---------------------------------------------------------------------------------------------
# Readers on synthetic files
# ---------------------------------------------------------------------------------------------


def test_cola_glue_layouts(tmp_path):
    _write(tmp_path / "train.tsv", "gj04\t1\t\tThe sailors rode the breeze.\ngj04\t0\t*\tThe more we study.\n")
    _write(tmp_path / "test.tsv", "index\tsentence\n0\tBill whistled.\n1\tA b.\n")
    p = get_task("cola")
    assert p.get_train_examples(tmp_path) == [
        InputExample("train-0", "The sailors rode the breeze.", None, "1"),
        InputExample("train-1", "The more we study.", None, "0"),
    ]
    assert p.get_test_examples(tmp_path) == [
        InputExample("test-0", "Bill whistled.", None, "0"), InputExample("test-1", "A b.", None, "0")]


def test_rte_glue_and_hf_layouts_agree(tmp_path):
    glue = tmp_path / "glue"
    hf = tmp_path / "hf"
    _write(glue / "train.tsv", "index\tsentence1\tsentence2\tlabel\n0\tP one.\tH one.\tentailment\n"
                               "1\tP two.\tH two.\tnot_entailment\n")
    _write(hf / "train.tsv", "sentence1\tsentence2\tlabel\tidx\nP one.\tH one.\t0\t0\nP two.\tH two.\t1\t1\n")
    p = get_task("rte")
    a, b = p.get_train_examples(glue), p.get_train_examples(hf)
    assert a == b == [InputExample("train-0", "P one.", "H one.", "entailment"),
                      InputExample("train-1", "P two.", "H two.", "not_entailment")]


def test_mnli_layouts(tmp_path):
    cols12 = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]
    row = ["0", "31193", "31193n", "government", "(x)", "(y)", "(X)", "(Y)", "Conceptually cream.",
           "Product and geography.", "neutral", "neutral"]
    _write(tmp_path / "train.tsv", "\t".join(cols12) + "\n" + "\t".join(row) + "\n")
    cols16 = cols12[:11] + ["label2", "label3", "label4", "label5", "gold_label"]
    row16 = row[:11] + ["neutral", "contradiction", "neutral", "neutral", "contradiction"]
    _write(tmp_path / "dev_matched.tsv", "\t".join(cols16) + "\n" + "\t".join(row16) + "\n")
    _write(tmp_path / "dev_mismatched.tsv", "premise\thypothesis\tlabel\tidx\nP.\tH.\t0\t7\nQ.\tR.\t2\t8\n")
    m = get_task("mnli_matched")
    assert m.get_train_examples(tmp_path) == [
        InputExample("train-0", "Conceptually cream.", "Product and geography.", "neutral")]
    assert m.get_dev_examples(tmp_path)[0].label == "contradiction"  # gold_label, not label1
    mm = get_task("mnli-mm")
    # HF ids 0 = entailment, 2 = contradiction.
    assert mm.get_dev_examples(tmp_path) == [InputExample("dev-7", "P.", "H.", "entailment"),
                                             InputExample("dev-8", "Q.", "R.", "contradiction")]
    assert m.label_list == ["contradiction", "entailment", "neutral"]


def test_qnli_wnli_qqp(tmp_path):
    _write(tmp_path / "qnli" / "dev.tsv", "index\tquestion\tsentence\tlabel\n0\tWho?\tHim.\tnot_entailment\n")
    assert get_task("qnli").get_dev_examples(tmp_path / "qnli") == [
        InputExample("dev-0", "Who?", "Him.", "not_entailment")]
    _write(tmp_path / "wnli" / "train.tsv", "index\tsentence1\tsentence2\tlabel\n3\tA.\tB.\t1\n")
    assert get_task("wnli").get_train_examples(tmp_path / "wnli") == [InputExample("train-3", "A.", "B.", "1")]
    qqp = ("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
           "5\t1\t2\tHow?\tWhy?\t0\n"
           "6\t3\t4\tbroken row\n"
           "7\t5\t6\tWhat?\tWhat!\t1\n")
    _write(tmp_path / "qqp" / "train.tsv", qqp)
    # QQP skips malformed rows by default (the GLUE file has some) ...
    assert get_task("qqp").get_train_examples(tmp_path / "qqp") == [
        InputExample("train-5", "How?", "Why?", "0"), InputExample("train-7", "What?", "What!", "1")]
    # ... and raises when asked to be strict.
    with pytest.raises(ValueError, match=r"train.tsv line 3: expected 6 tab-separated fields .* found 4"):
        get_task("qqp", skip_malformed_rows=False).get_train_examples(tmp_path / "qqp")


def test_stsb_test_layouts(tmp_path):
    _write(tmp_path / "test.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\n"
                                  "0\tmain-captions\tMSRvid\t2012test\t0024\tnone\tnone\tA girl.\tA kid.\n")
    assert get_task("sts-b").get_test_examples(tmp_path) == [InputExample("test-0", "A girl.", "A kid.", 0.0)]
    with pytest.raises(ValueError, match="can only be the test split"):
        get_task("sts-b", train_file="test.tsv").get_train_examples(tmp_path)


def test_aclimdb_folders(tmp_path):
    root = tmp_path / "aclImdb"
    _write(root / "train" / "neg" / "10_2.txt", "Bad.<br /><br />Very bad.")
    _write(root / "train" / "neg" / "2_1.txt", "Awful.")
    _write(root / "train" / "pos" / "0_9.txt", "Great<br />fun.")
    _write(root / "train" / "unsup" / "0_0.txt", "ignored")
    _write(root / "test" / "neg" / "0_3.txt", "Meh.")
    _write(root / "test" / "pos" / "1_8.txt", "Nice.")
    _write(root / "train" / "neg" / "notes.md", "not a review")
    p = get_task("imdb")
    assert p.get_train_examples(root) == [
        InputExample("train-train/neg/2_1.txt", "Awful.", None, "neg"),  # numeric id order: 2 < 10
        InputExample("train-train/neg/10_2.txt", "Bad.  Very bad.", None, "neg"),
        InputExample("train-train/pos/0_9.txt", "Great fun.", None, "pos"),
    ]
    dev = p.get_dev_examples(root)  # dev = test/ like the original
    assert [(e.text_a, e.label) for e in dev] == [("Meh.", "neg"), ("Nice.", "pos")]
    (root / "test" / "pos" / "1_8.txt").unlink()
    (root / "test" / "pos").rmdir()
    with pytest.raises(FileNotFoundError, match=r"sub-folders 'neg' and 'pos'.*pos' is missing"):
        p.get_dev_examples(root)


def test_yelp_csv(tmp_path):
    # CSV quoting: embedded comma, doubled quotes; the release also has backslash-quote (written
    # as \"" inside a quoted CSV field, i.e. \" after parsing) and a literal backslash-n.
    text = ('"5","Great place, love it.\\nWill return ""soon"" and \\""often\\""."\n'
            '"1","Bad."\n')
    _write(tmp_path / "train.csv", text)
    _write(tmp_path / "test.csv", '"3","Okay."\n')
    p = get_task("yelp-5")
    assert p.get_train_examples(tmp_path) == [
        InputExample("train-0", 'Great place, love it. Will return "soon" and "often".', None, "5"),
        InputExample("train-1", "Bad.", None, "1"),
    ]
    assert p.get_dev_examples(tmp_path) == [InputExample("dev-0", "Okay.", None, "3")]  # dev = test.csv
    with pytest.raises(ValueError, match=r"train.csv line 1: label '5' is not in the label list \['1', '2'\]"):
        get_task("yelp2").get_train_examples(tmp_path)


def test_generic_tsv_by_name_and_csv_by_index(tmp_path):
    _write(tmp_path / "train.tsv", "id\tq\tctx\ty\na1\tQ one\tC one\tyes\na2\tQ two\tC two\tno\n")
    _write(tmp_path / "test.tsv", "id\tq\tctx\na3\tQ three\tC three\n")  # no label column
    p = get_task("generic", text_a_column="q", text_b_column="ctx", label_column="y", label_list="no,yes",
                 id_column="id")
    assert p.get_train_examples(tmp_path) == [InputExample("train-a1", "Q one", "C one", "yes"),
                                              InputExample("train-a2", "Q two", "C two", "no")]
    assert p.get_test_examples(tmp_path) == [InputExample("test-a3", "Q three", "C three", "no")]
    assert p.metric_names == ("accuracy", "f1", "mcc")

    csv_dir = tmp_path / "csv"
    _write(csv_dir / "train.csv", '0.5,"first, text"\n4.25,second\n')
    r = get_task("csv", text_a_column="1", label_column=0, is_regression="true")
    assert r.get_train_examples(csv_dir) == [InputExample("train-0", "first, text", None, 0.5),
                                             InputExample("train-1", "second", None, 4.25)]
    assert r.is_regression and r.metric_names == ("pearson", "spearman")
    # Explicit header=True with an index column still skips the header row.
    _write(csv_dir / "dev.csv", "score,text\n1.0,a\n")
    r2 = get_task("generic", text_a_column=1, label_column=0, is_regression=True, header=True)
    assert r2.get_dev_examples(csv_dir) == [InputExample("dev-0", "a", None, 1.0)]


# ---------------------------------------------------------------------------------------------
# Reader errors: each names the file and the line / column
# ---------------------------------------------------------------------------------------------


def test_error_missing_column(tmp_path):
    f = _write(tmp_path / "train.tsv", "text\tlabel\nhi\t1\n")
    p = get_task("generic", text_a_column="sentence", label_column="label", label_list="0,1")
    with pytest.raises(ValueError, match=r"train.tsv line 1: column 'sentence' \(text_a_column\) is not in the header"):
        p.get_train_examples(tmp_path)
    p = get_task("generic", text_a_column=0, label_column=5, label_list="0,1")
    with pytest.raises(ValueError, match=r"train.tsv line 1: label_column=5 is out of range: the row has 2 fields"):
        p.get_train_examples(tmp_path)
    # A known task whose file lacks its columns.
    _write(tmp_path / "rte" / "train.tsv", "premise\thyp\tlabel\nA\tB\t0\n")
    with pytest.raises(ValueError, match=r"train.tsv line 1: unrecognised layout for task 'rte'.*sentence1"):
        get_task("rte").get_train_examples(tmp_path / "rte")
    assert f.exists()


def test_error_label_not_in_list(tmp_path):
    _write(tmp_path / "dev.tsv", "sentence\tlabel\ngood\t1\nbad\t2\n")
    with pytest.raises(ValueError, match=r"dev.tsv line 3: label '2' is not in the label list \['0', '1'\]"):
        get_task("sst-2").get_dev_examples(tmp_path)
    _write(tmp_path / "stsb" / "dev.tsv", "\t".join(["0", "g", "f", "y", "o", "s", "s", "A", "B", "high"]) + "\n")
    with pytest.raises(ValueError, match=r"dev.tsv line 1: label 'high' is not a number"):
        get_task("sts-b").get_dev_examples(tmp_path / "stsb")


def test_error_empty_and_header_only_files(tmp_path):
    _write(tmp_path / "dev.tsv", "")
    with pytest.raises(ValueError, match=r"dev.tsv is empty"):
        get_task("sst-2").get_dev_examples(tmp_path)
    _write(tmp_path / "dev.tsv", "\n\n")
    with pytest.raises(ValueError, match=r"dev.tsv is empty"):
        get_task("sst-2").get_dev_examples(tmp_path)
    _write(tmp_path / "dev.tsv", "sentence\tlabel\n")
    with pytest.raises(ValueError, match=r"dev.tsv has a header but no data rows"):
        get_task("sst-2").get_dev_examples(tmp_path)


def test_error_wrong_number_of_fields(tmp_path):
    _write(tmp_path / "train.tsv", "sentence\tlabel\ngood\t1\nbad\t0\textra\n")
    with pytest.raises(ValueError, match=r"train.tsv line 3: expected 2 tab-separated fields \(as the header\) but found 3"):
        get_task("sst-2").get_train_examples(tmp_path)
    assert len(get_task("sst-2", skip_malformed_rows=True).get_train_examples(tmp_path)) == 1
    # Header-less CoLA: the first row fixes the layout (4 fields), a later 2-field row is an error.
    _write(tmp_path / "cola" / "train.tsv", "src\t1\t\tOk.\nsrc\t0\n")
    with pytest.raises(ValueError, match=r"train.tsv line 2: expected 4 .* layout 'glue'.* found 2"):
        get_task("cola").get_train_examples(tmp_path / "cola")


def test_error_unlabelled_rows_outside_test(tmp_path):
    _write(tmp_path / "train.tsv", "sentence1\tsentence2\tlabel\tidx\nA\tB\t-1\t0\n")
    with pytest.raises(ValueError, match=r"train.tsv line 2: the row has no label, but split 'train' needs labels"):
        get_task("rte").get_train_examples(tmp_path)


def test_error_files_and_options(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"split 'dev': none of 'dev.tsv', 'dev\*.tsv' found .*Pass dev_file"):
        get_task("sst-2").get_dev_examples(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"dev_file entry 'nope.tsv' matches no file"):
        get_task("sst-2", dev_file="nope.tsv").get_dev_examples(tmp_path)
    _write(tmp_path / "dev_a.tsv", "sentence\tlabel\na\t1\n")
    _write(tmp_path / "dev_b.tsv", "sentence\tlabel\nb\t0\n")
    with pytest.raises(ValueError, match=r"'dev\*.tsv' matches several files .*dev_a.tsv, dev_b.tsv"):
        get_task("sst-2").get_dev_examples(tmp_path)
    both = get_task("sst-2", dev_file="dev_b.tsv,dev_a.tsv").get_dev_examples(tmp_path)
    assert [e.text_a for e in both] == ["b", "a"]  # list order kept, counter continues
    assert [e.guid for e in both] == ["dev-0", "dev-1"]
    with pytest.raises(FileNotFoundError, match="does not exist or is not a folder"):
        get_task("sst-2").get_dev_examples(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"unknown task 'glue-x'; known tasks: cola, generic"):
        get_task("glue-x")
    with pytest.raises(ValueError, match=r"task 'sst-2' does not take option\(s\) \['label_column'\]"):
        get_task("sst-2", label_column="x")
    with pytest.raises(ValueError, match="label_list='a,b,...'"):
        get_task("generic", text_a_column="x")
    with pytest.raises(ValueError, match="needs text_a_column"):
        get_task("generic", label_list="a,b")
    _write(tmp_path / "g" / "train.txt", "a\t1\n")
    with pytest.raises(ValueError, match=r"train.txt: cannot tell the delimiter from the extension '.txt'"):
        get_task("generic", text_a_column=0, label_column=1, label_list="0,1",
                 train_file="train.txt").get_train_examples(tmp_path / "g")
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "dev.tsv").write_bytes(b"sentence\tlabel\n\xff\xfe bad\t1\n")
    with pytest.raises(ValueError, match=r"dev.tsv: not valid UTF-8"):
        get_task("sst-2").get_dev_examples(tmp_path / "h")


def test_bom_in_header_is_ignored(tmp_path):
    _write(tmp_path / "dev.tsv", "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tA.\tB.\n")
    assert get_task("mrpc").get_dev_examples(tmp_path) == [InputExample("dev-0", "A.", "B.", "1")]


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------


def test_truncate_seq_pair_rule():
    # (5, 4) to 5: a>b pop a (4,4); tie pop b (4,3); pop a (3,3); tie pop b (3,2).
    a, b = [1, 2, 3, 4, 5], [6, 7, 8, 9]
    cd.truncate_seq_pair(a, b, 5)
    assert (a, b) == ([1, 2, 3], [6, 7])
    a, b = [1, 2, 3, 4, 5, 6], [7]
    cd.truncate_seq_pair(a, b, 5)
    assert (a, b) == ([1, 2, 3, 4], [7])
    a, b = [1, 2], [3, 4, 5, 6, 7, 8, 9]
    cd.truncate_seq_pair(a, b, 5)
    assert (a, b) == ([1, 2], [3, 4, 5])
    a, b = [1, 2, 3], [4, 5, 6]  # tie at the start: B first -> (3,2), then A -> (2,2)
    cd.truncate_seq_pair(a, b, 4)
    assert (a, b) == ([1, 2], [4, 5])


def test_pack_ids_layout_hand():
    ids, mask, seg = cd.pack_ids([10, 11, 12], [20, 21], 10)
    assert ids == [0, 0, 10, 11, 12, 4, 20, 21, 4, 3]
    assert mask == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert seg == [4, 4, 0, 0, 0, 0, 1, 1, 1, 2]
    ids, mask, seg = cd.pack_ids([10, 11, 12], None, 6)
    assert ids == [0, 10, 11, 12, 4, 3]
    assert mask == [1, 0, 0, 0, 0, 0]
    assert seg == [4, 0, 0, 0, 0, 2]
    # Single text: first T-2 tokens kept.
    assert cd.pack_ids(list(range(10, 20)), None, 5) == ([10, 11, 12, 4, 3], [0] * 5, [0, 0, 0, 0, 2])
    # Pair: (5, 4) with T=8 -> budget 5 -> (3, 2) as in test_truncate_seq_pair_rule.
    assert cd.pack_ids([1, 2, 3, 4, 5], [6, 7, 8, 9], 8)[0] == [1, 2, 3, 4, 6, 7, 4, 3]
    # Empty texts still get SEP (and CLS).
    assert cd.pack_ids([], [], 4) == ([0, 4, 4, 3], [1, 0, 0, 0], [4, 0, 1, 2])
    with pytest.raises(ValueError, match="max_seq_length=2 is too small: a pair needs at least 3"):
        cd.pack_ids([1], [2], 2)


def test_convert_single_example_with_fixture_spm(tokenizer):
    # Fixture ids: "the cat sat" -> ▁the ▁c at ▁sat = 20 125 134 924;
    #              "good movie"  -> ▁good ▁mo v ie  = 213 433 82 353.
    assert tokenizer.encode_ids("the cat sat") == [20, 125, 134, 924]
    assert tokenizer.encode_ids("good movie") == [213, 433, 82, 353]
    ex = InputExample("x", "the cat sat", "good movie", "b")
    f = cd.convert_single_example(ex, ["a", "b"], 12, tokenizer)
    assert f.input_ids == [0, 20, 125, 134, 924, 4, 213, 433, 82, 353, 4, 3]
    assert f.input_mask == [1] + [0] * 11
    assert f.seg_ids == [4, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2]
    assert f.label_id == 1 and f.is_real_example
    # T=8: budget 5, (4, 4) -> tie pops B (4,3), A (3,3), B (3,2).
    f = cd.convert_single_example(ex, ["a", "b"], 8, tokenizer)
    assert f.input_ids == [20, 125, 134, 4, 213, 433, 4, 3]
    assert f.seg_ids == [0, 0, 0, 0, 1, 1, 1, 2]
    assert f.input_mask == [0] * 8
    # Regression label stays a float; single text.
    f = cd.convert_single_example(InputExample("y", "the cat sat", None, 3.8), None, 7, tokenizer)
    assert f.input_ids == [0, 20, 125, 134, 924, 4, 3] and f.label_id == 3.8
    assert f.seg_ids == [4, 0, 0, 0, 0, 0, 2]
    # Padding example.
    f = cd.convert_single_example(PaddingInputExample(), ["a", "b"], 4, tokenizer)
    assert f == cd.InputFeatures([0] * 4, [1.0] * 4, [0] * 4, 0, False)
    # A text much longer than max_seq_length is truncated, never an error.
    long = InputExample("z", "the cat sat " * 200, None, "a")
    f = cd.convert_single_example(long, ["a", "b"], 16, tokenizer)
    assert f.input_ids == [20, 125, 134, 924] * 3 + [20, 125, 4, 3]
    with pytest.raises(ValueError, match=r"label 'c' is not in the label list"):
        cd.convert_single_example(InputExample("w", "x", None, "c"), ["a", "b"], 8, tokenizer)


def test_pack_ids_tf_matches_python_grid():
    rng = np.random.RandomState(0)
    a_list, b_list = [], []
    for la in range(9):
        for lb in range(9):
            a_list.append([int(v) for v in rng.randint(10, 1000, la)])
            b_list.append([int(v) for v in rng.randint(10, 1000, lb)])
    ra = tf.ragged.constant(a_list, dtype=tf.int64, ragged_rank=1)
    rb = tf.ragged.constant(b_list, dtype=tf.int64, ragged_rank=1)
    for T in (3, 4, 5, 8, 11, 20):
        for pair in (True, False):
            if not pair and T < 2:
                continue
            ids, mask, seg = cd.pack_ids_tf(ra, rb if pair else None, T)
            assert ids.dtype == tf.int32 and seg.dtype == tf.int32 and mask.dtype == tf.float32
            expected = [cd.pack_ids(a, b if pair else None, T) for a, b in zip(a_list, b_list)]
            np.testing.assert_array_equal(ids.numpy(), [e[0] for e in expected])
            np.testing.assert_array_equal(mask.numpy(), [e[1] for e in expected])
            np.testing.assert_array_equal(seg.numpy(), [e[2] for e in expected])


def test_pack_ids_tf_dense_input_and_errors():
    ids, mask, seg = cd.pack_ids_tf(tf.constant([[5, 6], [7, 8]], tf.int64), None, 5)
    np.testing.assert_array_equal(ids.numpy(), [[0, 5, 6, 4, 3], [0, 7, 8, 4, 3]])
    np.testing.assert_array_equal(mask.numpy(), [[1, 0, 0, 0, 0]] * 2)
    with pytest.raises(ValueError, match="must hold integer token ids"):
        cd.pack_ids_tf(tf.ragged.constant([[1.0]]), None, 4)
    with pytest.raises(ValueError, match="max_seq_length=2 is too small"):
        cd.pack_ids_tf(tf.ragged.constant([[1]]), tf.ragged.constant([[1]]), 2)


def test_pack_ids_tf_in_tf_function():
    fn = tf.function(lambda a, b: cd.pack_ids_tf(a, b, 8), input_signature=[
        tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1),
        tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1)])
    ids, mask, seg = fn(tf.ragged.constant([[5, 6, 7], [9, 9, 9, 9, 9, 9]]), tf.ragged.constant([[8], [7, 7, 7]]))
    np.testing.assert_array_equal(ids.numpy(), [[0, 5, 6, 7, 4, 8, 4, 3], [9, 9, 9, 4, 7, 7, 4, 3]])
    np.testing.assert_array_equal(mask.numpy(), [[1, 0, 0, 0, 0, 0, 0, 0], [0] * 8])
    np.testing.assert_array_equal(seg.numpy(), [[4, 0, 0, 0, 0, 1, 1, 2], [0, 0, 0, 0, 1, 1, 1, 2]])


# ---------------------------------------------------------------------------------------------
# Records, manifest, tf.data
# ---------------------------------------------------------------------------------------------


def _small_task(tmp_path, n_dev=5):
    data = tmp_path / "data"
    rows = ["sentence\tlabel"] + [f"the cat sat {'good movie ' * i}\t{i % 2}" for i in range(n_dev)]
    _write(data / "dev.tsv", "\n".join(rows) + "\n")
    rows = ["sentence\tlabel"] + [f"good movie {i}\t{i % 2}" for i in range(23)]
    _write(data / "train.tsv", "\n".join(rows) + "\n")
    return data


def _read_records(path):
    """Decodes every tf.train.Example of a record file with protobuf (independent of tf.data parsing)."""
    out = []
    for raw in tf.data.TFRecordDataset(str(path)):
        ex = tf.train.Example.FromString(raw.numpy())
        f = ex.features.feature
        out.append({
            "input_ids": list(f["input_ids"].int64_list.value),
            "input_mask": list(f["input_mask"].float_list.value),
            "segment_ids": list(f["segment_ids"].int64_list.value),
            "label_ids": list(f["label_ids"].int64_list.value) or list(f["label_ids"].float_list.value),
            "is_real_example": list(f["is_real_example"].int64_list.value),
        })
    return out


def test_eval_records_padding_and_dataset(tmp_path, tokenizer):
    data = _small_task(tmp_path)
    cache = tmp_path / "cache"
    p = get_task("sst-2")
    info = cd.prepare_classifier_records(p, data, "dev", tokenizer, 12, eval_batch_size=4, cache_dir=cache)
    assert not info.reused
    assert os.path.basename(info.path) == "sst-2.spiece_test.model.len-12.dev.eval.tf_record"
    # Row i has 4 + 4*i tokens (+ SEP + CLS): rows 2, 3, 4 (14, 18, 22 > 12) are truncated.
    assert info.manifest["counts"] == {"num_records": 8, "num_real": 5, "num_padding": 3, "num_truncated": 3}
    recs = _read_records(info.path)
    assert [r["is_real_example"] for r in recs] == [[1]] * 5 + [[0]] * 3
    examples = p.get_dev_examples(data)
    for rec, ex in zip(recs, examples):
        f = cd.convert_single_example(ex, ["0", "1"], 12, tokenizer)
        assert rec["input_ids"] == f.input_ids and rec["segment_ids"] == f.seg_ids
        assert rec["input_mask"] == f.input_mask and rec["label_ids"] == [f.label_id]
    assert recs[5] == {"input_ids": [0] * 12, "input_mask": [1.0] * 12, "segment_ids": [0] * 12,
                       "label_ids": [0], "is_real_example": [0]}
    assert recs[0]["input_ids"] == [0] * 6 + [20, 125, 134, 924, 4, 3]
    # Manifest on disk, with sources, tokenizer hash and settings.
    m = json.loads((cache / (os.path.basename(info.path) + ".manifest.json")).read_text())
    s = m["settings"]
    assert s["max_seq_length"] == 12 and s["split"] == "dev" and s["pad_to_multiple"] == 4
    assert s["uncased"] is False and len(s["spm_sha256"]) == 64
    assert s["source_files"][0]["path"].endswith("dev.tsv") and s["source_files"][0]["size"] > 0
    assert [n for n in os.listdir(cache) if ".tmp" in n] == []
    # Dataset: batches of 4, file order, exact weights.
    batches = list(cd.classifier_dataset(info.path, 4, is_training=False, max_seq_length=12))
    assert len(batches) == 2
    b0 = batches[0]
    assert b0["input_ids"].dtype == tf.int32 and b0["seg_ids"].dtype == tf.int32
    assert b0["input_mask"].dtype == tf.float32 and b0["label"].dtype == tf.int32
    assert b0["input_ids"].shape == (4, 12)
    np.testing.assert_array_equal(b0["input_ids"][0], recs[0]["input_ids"])
    np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches]), [0, 1, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(np.concatenate([b["is_real_example"] for b in batches]), [1, 1, 1, 1, 1, 0, 0, 0])
    with pytest.raises(ValueError, match="was written with max_seq_length=12, but max_seq_length=16"):
        cd.classifier_dataset(info.path, 4, is_training=False, max_seq_length=16)


def test_manifest_reuse_and_rebuild(tmp_path, tokenizer):
    data = _small_task(tmp_path)
    cache = tmp_path / "cache"
    p = get_task("sst-2")
    kw = dict(eval_batch_size=4, cache_dir=cache)
    first = cd.prepare_classifier_records(p, data, "dev", tokenizer, 12, **kw)
    mtime = os.stat(first.path).st_mtime_ns
    again = cd.prepare_classifier_records(p, data, "dev", tokenizer, 12, **kw)
    assert again.reused and os.stat(first.path).st_mtime_ns == mtime
    # Eval batch size changes the padding -> rebuild.
    r = cd.prepare_classifier_records(p, data, "dev", tokenizer, 12, eval_batch_size=3, cache_dir=cache)
    assert not r.reused and r.manifest["counts"]["num_records"] == 6
    # uncased tokenizer -> rebuild (lower-casing changes the ids).
    lower = Tokenizer(str(FIXTURE_SPM), lower=True)
    r = cd.prepare_classifier_records(p, data, "dev", lower, 12, eval_batch_size=3, cache_dir=cache)
    assert not r.reused and r.manifest["settings"]["uncased"] is True
    r = cd.prepare_classifier_records(p, data, "dev", lower, 12, eval_batch_size=3, cache_dir=cache)
    assert r.reused
    # Source file changed (size) -> rebuild with the new count.
    with open(data / "dev.tsv", "a", encoding="utf-8") as f:
        f.write("one more\t1\n")
    r = cd.prepare_classifier_records(p, data, "dev", lower, 12, eval_batch_size=3, cache_dir=cache)
    assert not r.reused and r.manifest["counts"]["num_real"] == 6
    # Task options (which files) are part of the settings.
    _write(data / "dev_extra.tsv", "sentence\tlabel\nx\t0\n")
    p2 = get_task("sst-2", dev_file="dev.tsv,dev_extra.tsv")
    r = cd.prepare_classifier_records(p2, data, "dev", lower, 12, eval_batch_size=3, cache_dir=cache)
    assert not r.reused and r.manifest["counts"]["num_real"] == 7
    # overwrite_data forces a rebuild; a record file without manifest is rebuilt too.
    r = cd.prepare_classifier_records(p2, data, "dev", lower, 12, eval_batch_size=3, cache_dir=cache,
                                      overwrite_data=True)
    assert not r.reused
    os.remove(r.path + MANIFEST_SUFFIX)
    r = cd.prepare_classifier_records(p2, data, "dev", lower, 12, eval_batch_size=3, cache_dir=cache)
    assert not r.reused


def test_read_only_cache_dir_is_refused(tmp_path, tokenizer):
    data = _small_task(tmp_path)
    os.chmod(data, 0o555)
    try:
        with pytest.raises(PermissionError, match=r"read-only folder.*pass cache_dir"):
            cd.prepare_classifier_records(get_task("sst-2"), data, "dev", tokenizer, 12)  # cache_dir = data_dir
        assert sorted(os.listdir(data)) == ["dev.tsv", "train.tsv"]
    finally:
        os.chmod(data, 0o755)


def test_failed_conversion_leaves_no_files(tmp_path, tokenizer):
    data = _small_task(tmp_path)
    cache = tmp_path / "cache"

    class Exploding:
        lower = False
        keep_accents = False
        spiece_model_path = str(FIXTURE_SPM)

        def __init__(self):
            self.n = 0

        def serialized_model_proto(self):
            return FIXTURE_SPM.read_bytes()

        def encode_ids(self, text):
            self.n += 1
            if self.n == 3:
                raise RuntimeError("boom")
            return tokenizer.encode_ids(text)

    with pytest.raises(RuntimeError, match="boom"):
        cd.prepare_classifier_records(get_task("sst-2"), data, "dev", Exploding(), 12, cache_dir=cache)
    assert os.listdir(cache) == []


def test_train_records_and_dataset(tmp_path, tokenizer):
    data = _small_task(tmp_path)
    cache = tmp_path / "cache"
    p = get_task("sst-2")
    info = cd.prepare_classifier_records(p, data, "train", tokenizer, 10, cache_dir=cache, shuffle_seed=3)
    assert os.path.basename(info.path) == "sst-2.spiece_test.model.len-10.train.tf_record"
    assert info.manifest["counts"]["num_records"] == 23
    recs = _read_records(info.path)
    examples = p.get_train_examples(data)
    order = np.random.RandomState(3).permutation(23)  # shuffled once before writing, seeded
    for rec, i in zip(recs, order):
        assert rec["input_ids"] == cd.convert_single_example(examples[i], ["0", "1"], 10, tokenizer).input_ids

    def first_batches(seed):
        d = cd.classifier_dataset(info.path, 8, is_training=True, max_seq_length=10, seed=seed)
        return [b["input_ids"].numpy() for b in d.take(6)]

    a, b = first_batches(1), first_batches(1)
    assert all(x.shape == (8, 10) for x in a)  # static, partial batches dropped, repeats forever
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    d = cd.classifier_dataset(info.path, 8, is_training=True, max_seq_length=10, seed=1)
    assert d.element_spec["input_ids"].shape.as_list() == [8, 10]
    # Sharding with an InputContext: 2 pipelines, global batch 4 -> per-replica 2, disjoint halves.
    seen = []
    for pid in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pid, num_replicas_in_sync=2)
        d = cd.classifier_dataset(info.path, 4, is_training=False, max_seq_length=10, input_context=ctx)
        rows = [tuple(r) for bt in d for r in bt["input_ids"].numpy()]
        assert all(bt["input_ids"].shape[0] <= 2 for bt in d)
        seen.append(rows)
    assert len(seen[0]) == 12 and len(seen[1]) == 11
    assert sorted(seen[0] + seen[1]) == sorted(tuple(r["input_ids"]) for r in recs)


def test_regression_records(tmp_path, tokenizer, shared_data):
    p = get_task("sts-b")
    info = cd.prepare_classifier_records(p, shared_data / "glue" / "STS-B", "dev", tokenizer, 32,
                                         eval_batch_size=64, cache_dir=tmp_path)
    assert info.manifest["counts"]["num_real"] == 1500 and info.manifest["counts"]["num_records"] == 1536
    d = cd.classifier_dataset(info.path, 64, is_training=False, max_seq_length=32, is_regression=True)
    first = next(iter(d))
    assert first["label"].dtype == tf.float32
    np.testing.assert_allclose(first["label"][:2], [5.0, 4.75])
    total = sum(float(b["is_real_example"].numpy().sum()) for b in d)
    assert total == 1500
