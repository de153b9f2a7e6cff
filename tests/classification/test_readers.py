"""xlnet_tf.classification.readers: the task readers on the real data sets and on synthetic
files in every layout, and their errors (each names the file and the line / column)."""
import collections
import os
import pathlib

import pytest

from xlnet_tf.classification import InputExample, get_task, task_has_text_b


def _write(path, text, encoding="utf-8"):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def _labels(examples):
    return collections.Counter(e.label for e in examples)


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


def test_task_has_text_b():
    assert not task_has_text_b(get_task("sst-2"))
    assert not task_has_text_b(get_task("imdb"))
    assert task_has_text_b(get_task("mrpc")) and task_has_text_b(get_task("sts-b"))
    assert task_has_text_b(get_task("rte"))
    assert not task_has_text_b(get_task("generic", text_a_column="t", label_list="a,b"))
    assert task_has_text_b(get_task("generic", text_a_column="t", text_b_column="u",
                                    label_list="a,b"))
