"""Training-step time of run_race.py (multiple choice: every question is C option sequences)
through the real script and training loop, and what a full RACE epoch costs at that speed.

    python3 bench/bench_race_step.py --data_dir DATA/race --spiece_model spiece.model \\
        [--max_seq_length 128] [--train_batch_size 8] [--steps 30]

The model is the small shape of configs/pretrain_small.flags (4 layers, d_model 256, 4
heads of 64, d_inner 1024; the vocabulary is --spiece_model's) with random weights; the
first --iterations loop (tracing) is left out of the measurement.  Prints one JSON line:
seconds per step, questions/s, and the hours of one epoch over RACE's 87,866 training
questions at this speed.
"""
import argparse
import contextlib
import io
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RACE_TRAIN_QUESTIONS = 87866
SMALL = ["--n_layer=4", "--d_model=256", "--n_head=4", "--d_head=64", "--d_inner=1024"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", required=True, help="RACE folder or JSON-lines export")
    p.add_argument("--spiece_model", required=True)
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--max_qa_length", type=int, default=64)
    p.add_argument("--train_batch_size", type=int, default=8)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--recompute", action="store_true")
    args = p.parse_args()

    from xlnet_tf import cli
    import run_race

    with tempfile.TemporaryDirectory() as tmp:
        out = io.StringIO()
        argv = [f"--data_dir={args.data_dir}", f"--output_dir={tmp}/out", "--do_train",
                f"--train_steps={args.steps}", f"--iterations={args.iterations}",
                f"--max_seq_length={args.max_seq_length}",
                f"--max_qa_length={args.max_qa_length}",
                f"--train_batch_size={args.train_batch_size}", "--learning_rate=2e-5",
                f"--spiece_model={args.spiece_model}", "--middle_only", *SMALL,
                *(["--recompute"] if args.recompute else [])]
        with contextlib.redirect_stdout(out):
            code = cli.run(run_race.define_flags, run_race.main, argv, prog="run_race.py")
        if code:
            raise SystemExit(f"run_race.py exited {code}")
    rates = [float(m.group(1).replace(",", "")) for m in
             re.finditer(r"\| ([\d.,]+) steps/s", out.getvalue())]
    steady = rates[1:] or rates
    steps_per_s = sum(steady) / len(steady)
    questions_per_s = steps_per_s * args.train_batch_size
    print(json.dumps({
        "shape": "4x256 (configs/pretrain_small.flags)", "max_seq_length": args.max_seq_length,
        "max_qa_length": args.max_qa_length, "train_batch_size": args.train_batch_size,
        "options": 4, "recompute": args.recompute, "seconds_per_step": 1 / steps_per_s,
        "questions_per_s": questions_per_s,
        "race_epoch_hours": RACE_TRAIN_QUESTIONS / questions_per_s / 3600,
        "loops_steps_per_s": rates}))


if __name__ == "__main__":
    main()
