"""Trains a SentencePiece model with XLNet's special symbols at their fixed ids.

The original README trained its ``spiece.model`` (``sp10m.cased.v3``) with
``vocab_size=32000 character_coverage=0.99995 model_type=unigram
control_symbols=<cls>,<sep>,<pad>,<mask>,<eod> user_defined_symbols=<eop>,.,(,),",-,–,£,€
shuffle_input_sentence input_sentence_size=10000000``. With SentencePiece's default
``<unk>``0 ``<s>``1 ``</s>``2 and no pad piece, that ordering yields exactly the ids the
rest of XLNet hard-codes::

    <unk>0 <s>1 </s>2 <cls>3 <sep>4 <pad>5 <mask>6 <eod>7 <eop>8   . ( ) " - – £ €  9..16

Input: plain-text files, one sentence (or paragraph) per line.

Text rules: like the original, training reads the **raw** text by default. The XLNet text
rules (:func:`xlnet_tf.tokenization.text.preprocess_text`: whitespace collapse, ``\\`\\``/``''``
quotes, NFKD + accent stripping, optional lower-casing) are applied at *encode* time, so a
raw-text model spends a few pieces on accented forms that encoding never produces. Pass
``preprocess=True`` (``--preprocess_text``) to train on text that went through the same
rules as encoding (recommended for an uncased model: also pass ``lower=True``).

Command line::

    python -m xlnet_tf.tokenization.train_spm --input "corpus/*.txt,more/*.txt" \\
        --model_prefix out/spiece --vocab_size 32000 --character_coverage 0.99995

writes ``out/spiece.model`` and ``out/spiece.vocab``. Training goes to a temporary prefix
in the same folder and the two files are renamed into place only after the model has been
checked, so a failed run leaves nothing that looks complete.
"""
import glob
import logging
import os
import shutil
import tempfile

import sentencepiece as spm

from xlnet_tf import io as io_lib
from xlnet_tf.cli import note_stage
from xlnet_tf.io import check_text_file
from xlnet_tf.tokenization import tokenizer as tokenization
from xlnet_tf.tokenization.text import preprocess_text

log = logging.getLogger("xlnet_tf")

CONTROL_SYMBOLS = ("<cls>", "<sep>", "<pad>", "<mask>", "<eod>")
# <eop> first so it gets id 8; then the README's punctuation / currency pieces.
USER_DEFINED_SYMBOLS = ("<eop>", ".", "(", ")", '"', "-", "\u2013", "\u00a3", "\u20ac")


def expand_inputs(input_patterns):
    """Expands comma-separated glob patterns (str or list) into a sorted, de-duplicated file list.

    Raises FileNotFoundError naming every pattern that matched no file.
    """
    if isinstance(input_patterns, str):
        input_patterns = [input_patterns]
    patterns = [p.strip() for item in input_patterns for p in str(item).split(",") if p.strip()]
    if not patterns:
        raise ValueError("No input given: pass one or more files or glob patterns (comma-separated).")
    files, empty_patterns = [], []
    for pattern in patterns:
        matched = sorted(f for f in glob.glob(os.path.expanduser(pattern)) if os.path.isfile(f))
        if not matched:
            empty_patterns.append(pattern)
        files.extend(matched)
    if empty_patterns:
        raise FileNotFoundError(
            f"Input pattern(s) {empty_patterns} matched no file (cwd: {os.getcwd()}). Check the "
            f"paths; separate several patterns with commas.")
    for path in sorted(set(files)):
        check_text_file(path, "input file")
    return sorted(set(files))


def _count_nonblank_lines(files, limit=None):
    n = 0
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    n += 1
                    if limit and n >= limit:
                        return n
    return n


def find_invalid_utf8(files, max_reports=5):
    """Returns ``[(path, line_number, n_bad_lines)]`` for files holding lines that are not UTF-8."""
    reports = []
    for path in files:
        first, n_bad = None, 0
        with open(path, "rb") as f:
            for line_no, raw in enumerate(f, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    n_bad += 1
                    first = first or line_no
        if n_bad:
            reports.append((path, first, n_bad))
            if len(reports) >= max_reports:
                break
    return reports


def _iter_preprocessed(files, lower):
    for path in files:
        # Invalid bytes become U+FFFD, as SentencePiece does when it reads files itself.
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                text = preprocess_text(line, lower=lower)
                if text:
                    yield text


def _explain_trainer_error(err, vocab_size, character_coverage, files):
    """Turns SentencePiece's terse trainer errors into advice."""
    msg = str(err)
    where = f"the corpus ({len(files)} file(s): {files[:3]}{' ...' if len(files) > 3 else ''})"
    if "Vocabulary size too high" in msg:
        limit = msg.rsplit("<=", 1)[-1].strip().rstrip(".") if "<=" in msg else "?"
        return ValueError(
            f"--vocab_size {vocab_size} is too large for {where}: SentencePiece can build at most "
            f"{limit} pieces from it. Lower --vocab_size (to <= {limit}) or add more text.")
    if "smaller than required_chars" in msg:
        return ValueError(
            f"--vocab_size {vocab_size} is smaller than the number of characters that "
            f"--character_coverage {character_coverage} keeps in {where} plus the special symbols "
            f"({msg.rsplit(']', 1)[-1].strip()}). Increase --vocab_size or lower --character_coverage.")
    if "sentences_.empty()" in msg:
        return ValueError(
            f"{where} has no usable line (all blank, or every line longer than max_sentence_length "
            f"bytes). Pass text files with one sentence per line.")
    return ValueError(f"SentencePiece training failed on {where}: {msg}; check the text "
                      f"files and the SentencePiece settings")


def _train_in_child(**kwargs):
    """``SentencePieceTrainer.train(**kwargs)`` in a forked child process.  The trainer keeps
    the interpreter busy for its whole run, so Ctrl-C would only be seen when it finished;
    here the parent waits, and on Ctrl-C stops the child at once.  A trainer error comes
    back as RuntimeError with SentencePiece's message."""
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_trainer_child, args=(send, kwargs), daemon=True)
    child.start()
    send.close()
    try:
        while child.is_alive() and not receive.poll(0.2):
            pass
        try:
            error = receive.recv()
        except EOFError:
            child.join()
            error = f"the trainer process stopped (exit code {child.exitcode})"
    except KeyboardInterrupt:
        child.kill()
        raise
    finally:
        child.join()
        receive.close()
    if error:
        raise RuntimeError(error)


def _trainer_child(send, kwargs):
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the parent decides (see above)
    try:
        spm.SentencePieceTrainer.train(**kwargs)
        send.send(None)
    except Exception as e:      # back to the parent as text: it explains the known ones
        send.send(str(e) or type(e).__name__)


def _rewrite_model_prefix(model_path, model_prefix):
    """Sets ``trainer_spec.model_prefix`` of a trained model (cosmetic: no effect on encoding)."""
    from sentencepiece import sentencepiece_model_pb2
    proto = sentencepiece_model_pb2.ModelProto()
    with open(model_path, "rb") as f:
        proto.ParseFromString(f.read())
    proto.trainer_spec.model_prefix = model_prefix
    with open(model_path, "wb") as f:
        f.write(proto.SerializeToString())


def check_vocab_size(vocab_size):
    """``--vocab_size`` must leave room beside XLNet's fixed pieces (ValueError); returns it
    as an int.  (Whether the corpus supports that many pieces only SentencePiece can tell.)"""
    vocab_size = int(vocab_size)
    n_fixed = len(tokenization.SPECIAL_SYMBOLS) + len(USER_DEFINED_SYMBOLS) - 1
    if vocab_size <= n_fixed:
        raise ValueError(f"--vocab_size={vocab_size}: vocab_size must exceed the {n_fixed} "
                         f"fixed pieces of XLNet; use a larger --vocab_size")
    return vocab_size


def train_sentencepiece(input_files, model_prefix, vocab_size=32000, character_coverage=0.99995,
                        model_type="unigram", input_sentence_size=10_000_000, num_threads=None,
                        preprocess=False, lower=False, max_sentence_length=4192, seed=None,
                        allow_invalid_utf8=False, overwrite=False):
    """Trains an XLNet-compatible SentencePiece model and writes ``{model_prefix}.model/.vocab``.

    Args:
      input_files: file paths or glob patterns (list, or a comma-separated string).
      model_prefix: output path without extension.
      vocab_size: total number of pieces including the 17 fixed ones (9 specials + 8
        punctuation pieces).
      character_coverage: fraction of characters covered by the alphabet (rest → ``<unk>``).
      model_type: ``unigram`` (XLNet) or ``bpe``/``char``/``word``.
      input_sentence_size: sentences sampled (shuffled) from the corpus for training.
      num_threads: trainer threads (default: all CPUs).
      preprocess: apply XLNet's text rules to every line before training (see module doc).
      lower: with ``preprocess``, also lower-case (for an uncased model).
      max_sentence_length: longer lines (bytes) are skipped by SentencePiece.
      seed: if given, SentencePiece's random seed (makes sampling reproducible).
      allow_invalid_utf8: by default a file with non-UTF-8 lines (e.g. Latin-1 text) is an
        error; with True SentencePiece reads it anyway and turns each invalid byte into
        U+FFFD (a warning names the files).
      overwrite: replace existing ``.model``/``.vocab`` files at ``model_prefix``.
    Returns:
      path of the written ``.model`` file.
    """
    files = expand_inputs(input_files)
    if lower and not preprocess:
        raise ValueError("lower=True only takes effect with preprocess=True (text rules before training).")
    vocab_size = check_vocab_size(vocab_size)
    if not 0.0 < float(character_coverage) <= 1.0:
        raise ValueError(f"character_coverage must be in (0, 1], got {character_coverage}.")
    if _count_nonblank_lines(files, limit=1) == 0:
        raise ValueError(f"The corpus is empty: input file(s) {files} contain no non-blank line.")

    given_prefix = os.fspath(model_prefix)
    model_prefix = os.path.abspath(given_prefix)
    bad_utf8 = find_invalid_utf8(files)
    if bad_utf8:
        described = "; ".join(f"{p} (first at line {first}, {n} line(s))" for p, first, n in bad_utf8)
        if not allow_invalid_utf8:
            raise ValueError(
                f"Input file(s) are not valid UTF-8: {described}. Convert them (e.g. "
                f"`iconv -f latin1 -t utf-8 in.txt > out.txt`), leave them out, or pass "
                f"--allow_invalid_utf8 to let SentencePiece replace the bad bytes with U+FFFD.")
        log.warning("train_spm: non-UTF-8 lines, bad bytes become U+FFFD: %s", described)
    out_dir = os.path.dirname(model_prefix)
    final_model, final_vocab = model_prefix + ".model", model_prefix + ".vocab"
    if not overwrite:
        existing = [p for p in (final_model, final_vocab) if os.path.exists(p)]
        if existing:
            raise FileExistsError(f"{existing} already exist; choose another --model_prefix or pass "
                                  f"--overwrite to replace them.")
    os.makedirs(out_dir, exist_ok=True)

    kwargs = dict(
        model_type=model_type,
        vocab_size=vocab_size,
        character_coverage=float(character_coverage),
        input_sentence_size=int(input_sentence_size),
        shuffle_input_sentence=True,
        control_symbols=list(CONTROL_SYMBOLS),
        user_defined_symbols=list(USER_DEFINED_SYMBOLS),
        unk_id=tokenization.UNK_ID, bos_id=tokenization.BOS_ID, eos_id=tokenization.EOS_ID,
        pad_id=-1,  # <pad> is a control symbol at id 5, not SentencePiece's own pad.
        num_threads=int(num_threads or os.cpu_count() or 1),
        max_sentence_length=int(max_sentence_length),
        minloglevel=1,
    )
    if seed is not None:
        # SentencePiece has no per-call seed; the global one drives sampling and shuffling.
        spm.set_random_generator_seed(int(seed))

    tmp_dir = tempfile.mkdtemp(prefix=".train_spm_", dir=out_dir)
    tmp_prefix = os.path.join(tmp_dir, "spiece")
    try:
        log.info("train_spm: %d file(s), vocab_size=%d, model_type=%s, character_coverage=%s, "
                 "preprocess=%s, lower=%s", len(files), vocab_size, model_type,
                 character_coverage, preprocess, lower)
        note_stage(f"training the SentencePiece model {final_model} (nothing written yet)")
        try:
            if preprocess:
                _train_in_child(
                    sentence_iterator=_iter_preprocessed(files, lower), model_prefix=tmp_prefix, **kwargs)
            else:
                _train_in_child(input=files, model_prefix=tmp_prefix, **kwargs)
        except RuntimeError as e:
            if io_lib.is_write_failure(e):
                raise io_lib.describe_write_error(final_model, e) from None
            raise _explain_trainer_error(e, vocab_size, character_coverage, files) from None

        sp = _read_back(tmp_prefix, given_prefix, final_model, final_vocab)
        tokenization.check_special_symbols(sp, "the freshly trained model")
        for offset, sym in enumerate(USER_DEFINED_SYMBOLS[1:]):
            idx = tokenization.EOP_ID + 1 + offset
            if sp.IdToPiece(idx) != sym:
                raise RuntimeError(f"trained model has {sp.IdToPiece(idx)!r} at id {idx}, expected {sym!r}")
        os.replace(tmp_prefix + ".vocab", final_vocab)
        os.replace(tmp_prefix + ".model", final_model)
        note_stage(None)
        log.info("train_spm: wrote %s (%d pieces) and %s", final_model, sp.GetPieceSize(),
                 final_vocab)
        return final_model
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _read_back(tmp_prefix, given_prefix, final_model, final_vocab):
    """The freshly trained model, read back from its temporary files before they become
    visible.  SentencePiece does not report a failed write (a full disk, a file size limit):
    it leaves a short file.  A model or vocabulary that does not read back whole is a
    ``WriteError`` naming the final file, and nothing is renamed into place - a disk-full run
    never leaves a "corrupt model" for a later run to trip over."""
    from google.protobuf.message import DecodeError

    def short(path):
        return io_lib.WriteError(path, OSError(None, "the file SentencePiece wrote is short "
                                               "(is the disk full or a file size limit set?)"))

    try:
        # the proto records the temporary prefix; record the real one instead
        _rewrite_model_prefix(tmp_prefix + ".model", given_prefix)
        sp = spm.SentencePieceProcessor(model_file=tmp_prefix + ".model")
    except OSError as e:
        raise io_lib.describe_write_error(final_model, e) from None
    except (DecodeError, RuntimeError):
        raise short(final_model) from None
    try:
        with open(tmp_prefix + ".vocab", encoding="utf-8") as f:
            lines = sum(1 for line in f if line.endswith("\n"))
    except (OSError, UnicodeDecodeError):
        lines = -1
    if lines != sp.GetPieceSize():
        raise short(final_vocab)
    return sp


def define_flags(fv):
    """The flags of ``python -m xlnet_tf.tokenization.train_spm`` on a fresh FlagValues."""
    from absl import flags
    flags.DEFINE_string("input", None, "Comma-separated files or glob patterns of plain text, "
                        "one sentence per line.", flag_values=fv)
    flags.DEFINE_string("model_prefix", None, "Output path without extension (writes .model "
                        "and .vocab).", flag_values=fv)
    flags.DEFINE_integer("vocab_size", 32000, "Total number of pieces, specials included.",
                         flag_values=fv)
    flags.DEFINE_float("character_coverage", 0.99995, "Fraction of characters kept in the "
                       "alphabet.", flag_values=fv)
    flags.DEFINE_enum("model_type", "unigram", ["unigram", "bpe", "char", "word"],
                      "SentencePiece model type.", flag_values=fv)
    flags.DEFINE_integer("input_sentence_size", 10_000_000, "Sentences sampled from the corpus "
                         "for training.", flag_values=fv)
    flags.DEFINE_integer("num_threads", None, "Trainer threads (default: all CPUs).",
                         flag_values=fv)
    flags.DEFINE_bool("preprocess_text", False, "Apply XLNet's text rules to the corpus before "
                      "training (the original trained on raw text).", flag_values=fv)
    flags.DEFINE_bool("lower", False, "With --preprocess_text: lower-case too (uncased model).",
                      flag_values=fv)
    flags.DEFINE_integer("max_sentence_length", 4192, "Lines longer than this (bytes) are "
                         "skipped.", flag_values=fv)
    flags.DEFINE_integer("seed", None, "Random seed for SentencePiece's sampling/shuffling.",
                         flag_values=fv)
    flags.DEFINE_bool("allow_invalid_utf8", False, "Accept non-UTF-8 lines (bad bytes become "
                      "U+FFFD) instead of stopping with an error.", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "Replace existing output files.", flag_values=fv)
    flags.mark_flags_as_required(["input", "model_prefix"], flag_values=fv)


def main(F):
    from xlnet_tf import cli
    from xlnet_tf.finetuning import check_writable_file
    cli.setup_logging()
    check_writable_file(F.model_prefix + ".model", "model_prefix")
    try:
        train_sentencepiece(
            F.input, F.model_prefix, vocab_size=F.vocab_size,
            character_coverage=F.character_coverage, model_type=F.model_type,
            input_sentence_size=F.input_sentence_size, num_threads=F.num_threads,
            preprocess=F.preprocess_text, lower=F.lower,
            max_sentence_length=F.max_sentence_length, seed=F.seed,
            allow_invalid_utf8=F.allow_invalid_utf8, overwrite=F.overwrite)
    except FileExistsError as e:
        cli.fail(str(e))


def entry():
    """The console command (pyproject.toml's [project.scripts])."""
    from xlnet_tf import cli
    cli.main_entry(define_flags, main, doc=__doc__, uses_tensorflow=False)


if __name__ == "__main__":
    entry()
