"""Compares xlnet_tf's Python tokenizer with Hugging Face's slow ``XLNetTokenizer`` on real text.

Run it in a side environment that has ``transformers<5`` (whose ``XLNetTokenizer`` is the
sentencepiece-based "slow" one; transformers 5 replaced it by a `tokenizers` backend) and
``sentencepiece`` — never a project dependency::

    python3 -m venv /work/venvs/tok
    /work/venvs/tok/bin/pip install "transformers<5" sentencepiece protobuf
    /work/venvs/tok/bin/python tools/compare_hf_tokenizer.py            # from the repo root

Both sides get the same SentencePiece model (default: the test fixture) with
``do_lower_case=False, keep_accents=False`` (our ``lower=False, keep_accents=False``). We
compare ``Tokenizer.encode_ids(text)`` with ``hf.encode(text, add_special_tokens=False)``
(HF's ``encode`` would otherwise append ``<sep> <cls>``) in two HF modes:

* ``split_special_tokens=True``: HF runs its text rules + SentencePiece + digit–comma rule
  on the whole string — the original pipeline.
* default: HF first cuts the text at its special-token strings (``<unk>``, ``<s>``,
  ``<cls>``, ``<mask>``, ``<eop>``, ...) and maps each to its id, so literal ``<unk>`` in
  WikiText becomes id 0 instead of being tokenised as text — a documented HF behaviour, not
  part of the original XLNet pipeline.

``--digit_comma`` adds pieces such as ``▁2000,`` to the model (tests/spm_test_utils.py), so the
digit–comma rule is exercised on both sides.

``xlnet_tf/tokenization.py`` is loaded by file path so that this tool does not import the
``xlnet_tf`` package (and TensorFlow) in the side environment.
"""
import argparse
import importlib.util
import json
import pathlib
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent


def _load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nonblank(path, n):
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    return lines[:n] if n else lines


def load_samples(data_dir, max_lines):
    data_dir = pathlib.Path(data_dir)
    if not data_dir.is_dir():
        raise SystemExit(f"--data_dir {data_dir} does not exist; point it at the shared data folder.")
    squad = json.loads((data_dir / "squad/dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    imdb = [line.split("\t", 2)[-1] for line in _nonblank(data_dir / "imdb/test_sample.tsv", 0)[1:]]
    return {
        f"wikitext2_valid[:{max_lines}]": _nonblank(
            data_dir / "pretrain_text/wikitext2_valid.tokens.txt", max_lines),
        f"moby_dick[:{max_lines}]": _nonblank(
            data_dir / "pretrain_text/gutenberg/melville-moby_dick.txt", max_lines),
        "squad_dev_contexts[5 articles]": [p["context"] for a in squad[:5] for p in a["paragraphs"]],
        "squad_dev_contexts[all]": [p["context"] for a in squad for p in a["paragraphs"]],
        "squad_dev_questions[all]": [q["question"] for a in squad for p in a["paragraphs"]
                                     for q in p["qas"]],
        f"imdb_test_sample[:{max_lines}]": imdb[:max_lines],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spiece_model", default=str(REPO / "tests/fixtures/spiece_test.model"))
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared/data"))
    parser.add_argument("--max_lines", type=int, default=2000)
    parser.add_argument("--digit_comma", action="store_true",
                        help="add digit+comma pieces to the model (exercises the digit-comma rule)")
    parser.add_argument("--show", type=int, default=3, help="disagreements to print per sample")
    args = parser.parse_args(argv)

    try:
        import transformers
        from transformers import XLNetTokenizer
    except ImportError:
        raise SystemExit("transformers is not installed here; run this with the side venv "
                         "(/work/venvs/tok/bin/python), see the module docstring.")
    if not issubclass(XLNetTokenizer, transformers.PreTrainedTokenizer):
        raise SystemExit(f"transformers {transformers.__version__}: XLNetTokenizer is not the "
                         f"sentencepiece-based slow tokenizer; install transformers<5.")

    ours = _load_module("xlnet_tokenization", REPO / "xlnet_tf/tokenization.py")
    model_path = pathlib.Path(args.spiece_model)
    if not model_path.is_file():
        raise SystemExit(f"--spiece_model {model_path} does not exist.")
    tmp = None
    if args.digit_comma:
        utils = _load_module("spm_test_utils", REPO / "tests/spm_test_utils.py")
        tmp = tempfile.TemporaryDirectory()
        model_path = pathlib.Path(tmp.name) / "spiece_dc.model"
        model_path.write_bytes(utils.model_with_extra_pieces(base=args.spiece_model))

    tok = ours.Tokenizer(model_path, lower=False, keep_accents=False)
    hf = XLNetTokenizer(str(model_path), do_lower_case=False, keep_accents=False)
    print(f"transformers {transformers.__version__}, model {args.spiece_model}"
          f"{' + digit-comma pieces' if args.digit_comma else ''} ({tok.vocab_size} pieces)")

    total = {"split_special_tokens=True": [0, 0], "default": [0, 0]}
    for name, lines in load_samples(args.data_dir, args.max_lines).items():
        for mode, split in (("split_special_tokens=True", True), ("default", False)):
            hf.split_special_tokens = split
            agree, shown = 0, 0
            for line in lines:
                a = tok.encode_ids(line)
                b = hf.encode(line, add_special_tokens=False)
                if a == b:
                    agree += 1
                    continue
                if shown < args.show:
                    shown += 1
                    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
                    print(f"    [{name} / {mode}] {line[:90]!r}\n"
                          f"      ours @{i}: {tok.ids_to_pieces(a[max(0, i - 2):i + 4])}\n"
                          f"      hf   @{i}: {tok.ids_to_pieces(b[max(0, i - 2):i + 4])}")
            total[mode][0] += agree
            total[mode][1] += len(lines)
            print(f"{name:34s} {mode:26s} {agree:6d}/{len(lines):<6d} = {100.0 * agree / len(lines):7.3f}%")
    for mode, (agree, n) in total.items():
        print(f"TOTAL {mode:26s} {agree}/{n} = {100.0 * agree / n:.3f}%")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
