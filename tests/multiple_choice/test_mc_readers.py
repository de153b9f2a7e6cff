"""The multiple-choice readers on the real shared files (question counts of the papers),
the RACE folder layout equal to its JSON-lines export, the generic CSV / JSON-lines reader
with any number of options, and the refusals of bad files naming the file and question."""
import collections
import json

import pytest

from xlnet_tf.multiple_choice.readers import get_reader, parse_label


def counts(examples):
    return len(examples), dict(collections.Counter(ex.level for ex in examples))


@pytest.mark.parametrize("split,total,middle,high", [
    ("train", 87866, 25421, 62445), ("dev", 4887, 1436, 3451), ("test", 4934, 1436, 3498)])
def test_race_counts(shared_data, split, total, middle, high):
    examples = get_reader("race").get_examples(str(shared_data / "race"), split)
    assert counts(examples) == (total, {"middle": middle, "high": high})
    assert {len(ex.options) for ex in examples} == {4}
    assert all(ex.label in (0, 1, 2, 3) for ex in examples)


def test_race_high_only_middle_only(shared_data):
    d = str(shared_data / "race")
    assert counts(get_reader("race", high_only=True).get_examples(d, "dev")) == \
        (3451, {"high": 3451})
    assert counts(get_reader("race", middle_only=True).get_examples(d, "dev")) == \
        (1436, {"middle": 1436})


def test_race_first_question_fields(shared_data):
    ex = get_reader("race").get_examples(str(shared_data / "race"), "dev")[0]
    line = json.loads(open(shared_data / "race" / "dev_middle.jsonl").readline())
    assert ex.qid == f"{line['id']}-0" and ex.level == "middle"
    assert ex.context == line["article"] and ex.question == line["questions"][0]
    assert list(ex.options) == line["options"][0]
    assert ex.label == ord(line["answers"][0]) - ord("A")


def test_race_folder_layout_equals_the_export(shared_data, tmp_path):
    """The original release tree {split}/{middle,high}/N.txt, rebuilt from 30 lines of the
    export, reads to the same questions in the same order (numeric file order)."""
    export = tmp_path / "export"
    export.mkdir()
    for level in ("middle", "high"):
        lines = open(shared_data / "race" / f"dev_{level}.jsonl").readlines()[:15]
        (export / f"dev_{level}.jsonl").write_text("".join(lines))
        folder = tmp_path / "RACE" / "dev" / level
        folder.mkdir(parents=True)
        for line in lines:
            name = json.loads(line)["id"][len(level):]
            (folder / name).write_text(line.rstrip("\n"))
    reader = get_reader("race")
    a = reader.get_examples(str(export), "dev")
    b = reader.get_examples(str(tmp_path / "RACE"), "dev")
    assert len(a) > 40 and a == b


@pytest.mark.parametrize("split,total", [("train", 6116), ("dev", 2040), ("test", 2041)])
def test_dream_counts(shared_data, split, total):
    examples = get_reader("dream").get_examples(str(shared_data / "dream"), split)
    assert len(examples) == total
    assert {len(ex.options) for ex in examples} == {3}
    assert all(ex.label in (0, 1, 2) for ex in examples)


def test_dream_first_question(shared_data):
    ex = get_reader("dream").get_examples(str(shared_data / "dream"), "dev")[0]
    assert ex.context.startswith("M: How long have you been teaching")
    assert "\nW: For ten years." in ex.context
    assert ex.options[ex.label] == "To change her job."


@pytest.mark.parametrize("task,split,want", [
    ("mctest", "train", (1480, {"mc160": 280, "mc500": 1200})),
    ("mctest", "dev", (320, {"mc160": 120, "mc500": 200})),
    ("mctest", "test", (840, {"mc160": 240, "mc500": 600})),
    ("mc160", "dev", (120, {"mc160": 120})), ("mc500", "test", (600, {"mc500": 600}))])
def test_mctest_counts(shared_data, task, split, want):
    examples = get_reader(task).get_examples(str(shared_data / "mctest"), split)
    assert counts(examples) == want
    assert {len(ex.options) for ex in examples} == {4}


def test_mctest_first_question(shared_data):
    ex = get_reader("mc160").get_examples(str(shared_data / "mctest"), "dev")[0]
    assert ex.question == "Who was having a birthday?"             # "one: " dropped
    assert ex.options == ("Jessie Bear", "no one", "Lion", "Tiger") and ex.label == 0
    assert "\\newline" not in ex.context and "to\ncome to the party" in ex.context


def test_generic_jsonl_and_csv_with_five_options(tmp_path):
    rows = [{"passage": f"text {i}", "q": f"question {i}?", "opts": [f"o{i}{k}" for k in range(5)],
             "ans": "ABCDE"[i % 5], "id": f"x{i}"} for i in range(6)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    reader = get_reader("generic", context_column="passage", question_column="q",
                        options_column="opts", label_column="ans", id_column="id")
    ex = reader.get_examples(str(tmp_path), "train")
    assert [e.label for e in ex] == [0, 1, 2, 3, 4, 0]
    assert ex[2].options == tuple(f"o2{k}" for k in range(5)) and ex[2].qid == "x2"
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    (csv_dir / "dev.csv").write_text("q,a,b,c,label\nwhich?,x,y,z,2\nwho?,u,v,w,\n")
    reader = get_reader("generic", question_column="q", options_column="a,b,c",
                        label_column="label")
    ex = reader.get_examples(str(csv_dir), "dev")
    assert [(e.question, e.options, e.label, e.context) for e in ex] == [
        ("which?", ("x", "y", "z"), 2, ""), ("who?", ("u", "v", "w"), None, "")]


def _race_file(tmp_path, passage):
    (tmp_path / "dev_middle.jsonl").write_text(json.dumps(passage) + "\n")
    (tmp_path / "dev_high.jsonl").write_text("")
    return str(tmp_path)


GOOD = {"article": "A text.", "questions": ["Q1?", "Q2?"], "options": [["a", "b", "c", "d"]] * 2,
        "answers": ["A", "B"], "id": "middle7.txt"}


@pytest.mark.parametrize("change,needles", [
    ({"options": [["a", "b", "c", "d"], []]}, ["dev_middle.jsonl", "question 2", "no options"]),
    ({"options": [["a", "b", "c", "d"]]}, ["2 questions but 1 option lists"]),
    ({"answers": ["A", "E"]}, ["question 2", "answer 'E' names option 5", "4 options (A-D)"]),
    ({"options": [["a", "b", "c", "d"], ["a", "b", "c"]]},
     ["'middle7.txt-1' has 3 options", "'middle7.txt-0' has 4"]),
    ({"article": "  "}, ["question 1", "the passage is empty"]),
    ({"questions": "Q1?"}, ["needs 'questions' (list)"]),
])
def test_bad_race_passages_are_named(tmp_path, change, needles):
    d = _race_file(tmp_path, {**GOOD, **change})
    with pytest.raises(ValueError) as e:
        get_reader("race").get_examples(d, "dev")
    for needle in needles:
        assert needle in str(e.value), str(e.value)
    assert "middle7.txt" in str(e.value)


def test_mixed_counts_across_files_and_missing_files(tmp_path):
    d = _race_file(tmp_path, GOOD)
    (tmp_path / "dev_high.jsonl").write_text(json.dumps(
        {**GOOD, "options": [["a", "b", "c"]] * 2, "id": "high1.txt"}) + "\n")
    with pytest.raises(ValueError, match="'high1.txt-0' has 3 options but question "
                                         "'middle7.txt-0' has 4"):
        get_reader("race").get_examples(d, "dev")
    with pytest.raises(FileNotFoundError, match="no RACE train/middle/ folder nor "
                                                "train_middle.jsonl"):
        get_reader("race").get_examples(d, "train")


def test_reader_options_are_checked():
    with pytest.raises(ValueError, match="--task='squad' is not known"):
        get_reader("squad")
    with pytest.raises(ValueError, match="--question_column only apply to --task=generic"):
        get_reader("race", question_column="q")
    with pytest.raises(ValueError, match="needs --question_column and --options_column"):
        get_reader("generic")
    with pytest.raises(ValueError, match="not both"):
        get_reader("race", high_only=True, middle_only=True)
    assert parse_label("c", 4, "x") == 2 and parse_label(3, 4, "x") == 3
    with pytest.raises(ValueError, match="x: answer '4' names option 5"):
        parse_label("4", 4, "x")
