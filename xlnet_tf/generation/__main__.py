"""Generate text, or fill blanks, with an XLNet LM checkpoint.

    python -m xlnet_tf.generation --init_checkpoint=runs/pretrain_demo \\
        --prompt="The history of" --max_new_tokens=40 --strategy=sample --top_p=0.9 --seed=1
    python -m xlnet_tf.generation --init_checkpoint=... --mode=fill \\
        --prompt="The <mask> sat on the <mask> ."

``--init_checkpoint``: the folder ``run_pretrain.py`` writes, an original TF1 checkpoint or
Hugging Face weights; ``--spiece_model`` and ``--model_config`` default to ``spiece.model``
and ``xlnet_config.json`` beside it.  ``--prompt`` (one text, streamed token by token) or
``--input_file`` (one text per line, generated as batches); ``--output_file`` writes one
JSON object per text (``index``, ``prompt``, ``text``, ``stop_reason`` / ``filled``).
The library calls are :func:`xlnet_tf.generation.generate` and
:func:`xlnet_tf.generation.fill`.
"""
import json
import sys

from absl import flags

from xlnet_tf import cli
from xlnet_tf import io as io_lib


def define_flags(fv):
    def define(kind, name, default, help_text, *enum_values):
        getattr(flags, f"DEFINE_{kind}")(name, default, *enum_values, help_text, flag_values=fv)

    define("string", "init_checkpoint", None, "Checkpoint: ours (run_pretrain.py's folder), "
           "the original's or Hugging Face weights.")
    define("string", "spiece_model", None, "SentencePiece model (default: beside the "
           "checkpoint).")
    define("string", "model_config", None, "xlnet_config.json (default: beside the "
           "checkpoint).")
    define("bool", "uncased", False, "Lower-case text (uncased vocabulary).")
    define("enum", "mode", "generate", "generate: continue the text; fill: fill its <mask> "
           "blanks.", ["generate", "fill"])
    define("string", "prompt", None, "One text (streamed output).")
    define("string", "input_file", None, "Texts, one per line (UTF-8).")
    define("string", "output_file", None, "Results as JSON lines (optional).")
    define("integer", "max_new_tokens", 32, "New tokens per text at most.")
    define("enum", "strategy", "greedy", "greedy or sample.", ["greedy", "sample"])
    define("float", "temperature", 1.0, "Sampling temperature (> 0).")
    define("integer", "top_k", 0, "Sample among the k most likely tokens (0 = all).")
    define("float", "top_p", 1.0, "Sample among the most likely tokens covering p (1 = all).")
    define("integer", "seed", 0, "Sampling seed (text i of a file uses seed + i).")
    define("multi_string", "stop_string", [], "Stop a text when it contains this string "
           "(repeatable).")
    define("integer", "batch_size", 8, "Texts per batch (--input_file).")
    define("enum", "order", "left_to_right", "--mode=fill: which blank first.",
           ["left_to_right", "confidence"])
    define("integer", "span_length", 1, "--mode=fill: pieces per <mask>.")


def _check(F):
    if not F.init_checkpoint:
        cli.fail("--init_checkpoint is required")
    if bool(F.prompt) == bool(F.input_file):
        cli.fail("give exactly one of --prompt and --input_file")
    if F.max_new_tokens < 1:
        cli.fail(f"--max_new_tokens={F.max_new_tokens}: must be >= 1")
    if F.batch_size < 1:
        cli.fail(f"--batch_size={F.batch_size}: must be >= 1")
    if F.span_length < 1:
        cli.fail(f"--span_length={F.span_length}: must be >= 1")
    from xlnet_tf.generation import sampling
    try:
        sampling.check_options(F.strategy, F.temperature, F.top_k, F.top_p)
    except ValueError as e:
        cli.fail(f"--{e}")
    if F.input_file:
        io_lib.check_text_file(F.input_file, "--input_file")
    if F.output_file:
        from xlnet_tf.finetuning import check_writable_file
        check_writable_file(F.output_file, "output_file")


def main(F):
    cli.setup_logging()
    _check(F)
    if F.input_file:
        with open(F.input_file, encoding="utf-8") as f:
            texts = [line.rstrip("\n") for line in f if line.strip()]
        if not texts:
            cli.fail(f"--input_file {F.input_file!r} holds no text")
    else:
        texts = [F.prompt]
    if F.mode == "fill":
        bad = [i for i, t in enumerate(texts) if "<mask>" not in t]
        if bad:
            cli.fail(f"--mode=fill: text {bad[0]} has no <mask>: mark each blank with <mask>")
    from xlnet_tf.generation import fill, generate, load_lm
    model, tokenizer = load_lm(F.init_checkpoint, F.spiece_model, F.model_config, F.uncased)
    rows = []
    if F.mode == "fill":
        for i, text in enumerate(texts):
            r = fill(model, tokenizer, text, F.order, F.span_length, F.strategy,
                     F.temperature, F.top_k, F.top_p, F.seed + i)
            print(r.text, flush=True)
            rows.append({"index": i, "prompt": text, "text": r.text,
                         "filled": [tokenizer.id_to_piece(t) for _, t in r.filled]})
    else:
        stream = None
        if F.prompt:
            sys.stdout.write(F.prompt)
            stream = lambda row, piece: (sys.stdout.write(piece), sys.stdout.flush())  # noqa
        for start in range(0, len(texts), F.batch_size):
            chunk = texts[start:start + F.batch_size]
            out = generate(model, tokenizer, chunk, F.max_new_tokens, F.strategy, F.top_k,
                           F.top_p, F.temperature,
                           [F.seed + start + k for k in range(len(chunk))], F.stop_string,
                           callback=stream)
            for k, (text, r) in enumerate(zip(chunk, out)):
                if stream:
                    print(flush=True)
                else:
                    print(f"{text}{r.text}", flush=True)
                rows.append({"index": start + k, "prompt": text, "text": r.text,
                             "stop_reason": r.stop_reason})
    if F.output_file:
        io_lib.write_text_atomic(F.output_file, "".join(
            json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        print(f"wrote {F.output_file}: {len(rows)} text(s)", file=sys.stderr, flush=True)


def entry():
    """The console command (pyproject.toml's [project.scripts])."""
    cli.main_entry(define_flags, main, doc=__doc__)


if __name__ == "__main__":
    entry()
