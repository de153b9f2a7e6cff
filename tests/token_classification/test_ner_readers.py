"""CoNLL files: columns, documents, Windows line endings, tag schemes and their detection,
and the errors that name the file and line."""
import pytest

from xlnet_tf.token_classification.readers import (
    check_tags, detect_scheme, read_conll, split_file)

CONLL = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER


-DOCSTART- -X- O O

BRUSSELS NNP I-NP I-LOC
"""


def write(tmp_path, text, name="train.txt", newline="\n"):
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return str(path)


def test_sentences_documents_and_columns(tmp_path):
    s = read_conll(write(tmp_path, CONLL))
    assert [x.words for x in s] == [["EU", "rejects", "German"], ["Peter", "Blackburn"],
                                    ["BRUSSELS"]]
    assert [x.tags for x in s] == [["I-ORG", "O", "I-MISC"], ["I-PER", "I-PER"], ["I-LOC"]]
    assert [x.doc for x in s] == [1, 1, 2]
    assert [x.line for x in s] == [3, 7, 13]
    # another column holds the chunk tags
    assert read_conll(write(tmp_path, CONLL), label_column=2)[0].tags == ["I-NP", "I-VP", "I-NP"]


def test_windows_line_endings_read_like_unix(tmp_path):
    lf = read_conll(write(tmp_path, CONLL, "lf.txt"))
    crlf = read_conll(write(tmp_path, CONLL, "crlf.txt", newline="\r\n"))
    assert crlf == lf


def test_byte_order_mark_is_not_part_of_the_first_word(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + CONLL.encode())
    assert read_conll(str(path)) == read_conll(write(tmp_path, CONLL))


def test_wrong_number_of_columns_names_file_and_line(tmp_path):
    path = write(tmp_path, CONLL.replace("rejects VBZ I-VP O", "rejects VBZ O"))
    with pytest.raises(ValueError, match=rf"{path}:4: 3 column\(s\) where line 1 has 4"):
        read_conll(path)


def test_label_column_out_of_range(tmp_path):
    path = write(tmp_path, "EU I-ORG\n")
    with pytest.raises(ValueError, match=r"--label_column=3"):
        read_conll(path, label_column=3)


def test_file_without_sentences(tmp_path):
    path = write(tmp_path, "-DOCSTART- -X- O O\n\n\n")
    with pytest.raises(ValueError, match="no sentences"):
        read_conll(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"caf\xe9 O\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_conll(str(path))


@pytest.mark.parametrize("tags,scheme", [
    ("I-PER I-PER O I-LOC", "iob1"),
    ("I-PER B-PER O", "iob1"),
    ("B-PER I-PER O B-LOC", "iob2"),
    ("B-PER E-PER O S-LOC", "bioes"),
    ("O O", "iob2"),
    # one slip among many entities does not change the reading
    ("I-PER O " * 10 + "B-MISC", "iob1"),
])
def test_detect_scheme(tmp_path, tags, scheme):
    text = "".join(f"w{i} {t}\n" for i, t in enumerate(tags.split()))
    path = write(tmp_path, text)
    assert detect_scheme(read_conll(path), path) == scheme


def test_mixed_schemes_refused(tmp_path):
    path = write(tmp_path, "a I-PER\nb O\n\nc B-LOC\nd O\n")
    with pytest.raises(ValueError, match=r"mix iob1 \(1 entities .*line 1\) and iob2 \(1 .*line 4\); pass --tag_scheme"):
        detect_scheme(read_conll(path), path)


@pytest.mark.parametrize("tag,scheme", [("S-PER", "iob2"), ("E-LOC", "iob1"), ("PER", "iob2"),
                                        ("B-", "bioes"), ("X-PER", "bioes")])
def test_unknown_tag_under_scheme_names_line(tmp_path, tag, scheme):
    path = write(tmp_path, f"a O\nb {tag}\n")
    with pytest.raises(ValueError, match=rf"{path}:2: tag '{tag}' is not a {scheme} tag"):
        check_tags(read_conll(path), scheme, path)


def test_split_files(tmp_path):
    write(tmp_path, CONLL, "eng.train")
    write(tmp_path, CONLL, "eng.testa")
    assert split_file(str(tmp_path), "train").endswith("eng.train")
    assert split_file(str(tmp_path), "dev").endswith("eng.testa")
    with pytest.raises(FileNotFoundError, match=r"no test file .*eng.testb.*--test_file"):
        split_file(str(tmp_path), "test")
    with pytest.raises(FileNotFoundError, match=r"--dev_file: .*nope.txt"):
        split_file(str(tmp_path), "dev", "nope.txt")


def test_conll2003_as_released(shared_data):
    folder = shared_data / "ner" / "conll2003"
    counts = {}
    for name, n_sentences, n_words in (("eng.train", 14041, 203621), ("eng.testa", 3250, 51362),
                                       ("eng.testb", 3453, 46435)):
        path = str(folder / name)
        s = read_conll(path)
        assert len(s) == n_sentences and sum(len(x.words) for x in s) == n_words
        assert detect_scheme(s, path) == "iob1"
        check_tags(s, "iob1", path)
        counts[name] = s
    from xlnet_tf.token_classification.metrics import chunks
    kinds = {}
    for x in counts["eng.train"]:
        for kind, *_ in chunks(x.tags):
            kinds[kind] = kinds.get(kind, 0) + 1
    # the entity counts of Tjong Kim Sang & De Meulder (2003), Table 2
    assert kinds == {"LOC": 7140, "MISC": 3438, "ORG": 6321, "PER": 6600}
