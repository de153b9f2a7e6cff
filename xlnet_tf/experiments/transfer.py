"""Does pretraining transfer?  The experiment behind docs/transfer.md, and the small-scale
version of the XLNet paper's ablation (Table 6).

    python -m xlnet_tf.experiments.transfer --data_dir=$DATA --work_dir=$WORK \\
        --variants=scratch,plm,dae --tasks=sst-2,mrpc,rte --seeds=0,1,2

``$DATA`` holds ``pretrain_text/`` (``imdb_unsup/*.txt``: one review per line,
``enwiki_partial/*.txt``: WikiExtractor articles) and ``glue/{SST-2,MRPC,RTE}``.
``$WORK`` gets everything large (corpus, SentencePiece model, records, checkpoints,
fine-tuning runs, logs); ``--results_dir`` gets only the results: ``results.json`` (every
number with its settings), ``results.md`` (the table) and PNG plots.

Work is done in units, each skipped when its output is complete, so the command can be
stopped at any time (Ctrl-C, a closed session) and run again to pick up where it stopped;
a pretraining unit resumes from its last checkpoint.  Run it in the background:

    nohup python -m xlnet_tf.experiments.transfer ... > transfer.out 2>&1 &

Each unit runs ``run_pretrain.py`` / ``run_classifier.py`` in a subprocess with the
committed flagfiles (``configs/pretrain_small.flags``, ``configs/finetune_small_<task>.flags``)
plus the variant's own flags, so what the experiment measures is exactly what a user runs.

Variants (the rows of the paper's Table 6 that fit here):

* ``scratch``      -- no pretraining: the same architecture, randomly initialised;
* ``plm``          -- the permutation LM (XLNet's objective), the recipe as committed;
* ``dae``          -- BERT's denoising objective on the same backbone ("Transformer-XL + DAE");
* ``plm_nomem``    -- no Transformer-XL memory (``--mem_len=0``);
* ``plm_nospan``   -- token-level instead of span-level prediction (records with
  ``--max_gram=1``);
* ``plm_nobidata`` -- without the bidirectional data pipeline (``--nobi_data``).

``VARIANT@STEP`` (e.g. ``plm@500``) fine-tunes from the intermediate checkpoint
``ckpt-STEP`` of that variant's pretraining run (transfer as a function of pretraining).
"""
import collections
import json
import os
import statistics
import subprocess
import sys
import time

from absl import flags

from xlnet_tf import cli
from xlnet_tf import io as io_lib

VARIANTS = {
    "scratch": None,
    "plm": [],
    "dae": ["--objective=dae"],
    "plm_nomem": ["--mem_len=0"],
    "plm_nospan": ["--max_gram=1"],
    "plm_nobidata": ["--nobi_data"],
}
# task -> (data folder under DATA, flagfile stem, headline metric, metric scale to [0, 1])
TASKS = {
    "sst-2": ("glue/SST-2", "sst2", "accuracy", 1.0),
    "mrpc": ("glue/MRPC", "mrpc", "f1", 1.0),
    "rte": ("glue/RTE", "rte", "accuracy", 1.0),
    # extractive QA: the SQuAD v1.1 dev set split by article (every SQUAD_HELDOUT_EVERY-th
    # article held out), so no paragraph is in both halves
    "squad": ("squad", "squad", "f1", 0.01),
}
SQUAD_HELDOUT_EVERY = 5
# rough cost of a unit relative to one pretraining step, for the first ETA (replaced by
# measured durations as soon as units of that kind have finished)
_GUESS_SECONDS = {"pretrain": 3.0 * 1800, "finetune:sst-2": 600, "finetune:mrpc": 600,
                  "finetune:rte": 400, "finetune:squad": 1200}


def define_flags(fv):
    flags.DEFINE_string("data_dir", None, "Folder with pretrain_text/ and glue/.",
                        flag_values=fv)
    flags.DEFINE_string("work_dir", None, "Folder for the corpus, records, checkpoints and "
                        "fine-tuning runs (large; keep it out of git).", flag_values=fv)
    flags.DEFINE_string("results_dir", "experiments/transfer", "Folder for results.json, "
                        "results.md and the plots (small; commit it).", flag_values=fv)
    flags.DEFINE_list("variants", ["scratch", "plm"], "Variants (see the module doc); "
                      "VARIANT@STEP fine-tunes from checkpoint ckpt-STEP.", flag_values=fv)
    flags.DEFINE_list("tasks", ["sst-2", "mrpc", "rte"], f"Tasks: {', '.join(TASKS)}.",
                      flag_values=fv)
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Fine-tuning seeds.", flag_values=fv)
    flags.DEFINE_string("pretrain_flags", None, "Pretraining flagfile (default: "
                        "configs/pretrain_small.flags of the repository).", flag_values=fv)
    flags.DEFINE_string("finetune_flags", None, "Fine-tuning flagfile pattern with {task} "
                        "(default: configs/finetune_small_{task}.flags).", flag_values=fv)
    flags.DEFINE_integer("pretrain_steps", None, "Override --train_steps of the pretraining "
                         "flagfile.", flag_values=fv)
    flags.DEFINE_bool("dry_run", False, "Print the plan and what is done; run nothing.",
                      flag_values=fv)
    flags.DEFINE_bool("report_only", False, "Only rewrite the results from finished units.",
                      flag_values=fv)


# --------------------------------------------------------------------------- small helpers
def repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_flagfile(path):
    """``--name=value`` / ``--flag`` / ``--noflag`` lines of a flagfile -> dict (comments
    and blank lines skipped); values stay strings, booleans become True/False."""
    args = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not line.startswith("--"):
                raise ValueError(f"{path}:{n}: expected --name=value, got {line!r}")
            args.append(line)
    return read_flag_args(args)


def apply_overrides(settings, args):
    return {**settings, **read_flag_args(args)}


def read_flag_args(args):
    out = {}
    for a in args:
        body = a[2:]
        if "=" in body:
            k, v = body.split("=", 1)
            out[k] = v
        elif body.startswith("no") and body[2:]:
            out[body[2:]] = False
        else:
            out[body] = True
    return out


def fmt_seconds(s):
    s = int(max(0, s))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def split_variant(name):
    """'plm@500' -> ('plm', 500); 'plm' -> ('plm', None)."""
    base, _, step = name.partition("@")
    if base not in VARIANTS:
        raise ValueError(f"--variants: unknown variant {base!r} (use {', '.join(VARIANTS)})")
    if step and (not step.isdigit() or base == "scratch"):
        raise ValueError(f"--variants: {name!r}: the step after @ must be a whole number "
                         f"(and scratch has no checkpoints)")
    return base, (int(step) if step else None)


class Experiment:
    def __init__(self, F):
        self.F = F
        self.repo = repo_root()
        self.data = os.path.abspath(F.data_dir)
        self.work = os.path.abspath(F.work_dir)
        self.results = os.path.abspath(F.results_dir)
        self.pretrain_flagfile = os.path.abspath(
            F.pretrain_flags or os.path.join(self.repo, "configs", "pretrain_small.flags"))
        self.finetune_pattern = F.finetune_flags or os.path.join(
            self.repo, "configs", "finetune_small_{task}.flags")
        self.pre = read_flagfile(self.pretrain_flagfile)
        if F.pretrain_steps:
            self.pre["train_steps"] = str(F.pretrain_steps)
        self.train_steps = int(self.pre["train_steps"])
        self.variants = [split_variant(v) for v in F.variants]
        for t in F.tasks:
            if t not in TASKS:
                raise ValueError(f"--tasks: unknown task {t!r} (use {', '.join(TASKS)})")
        self.seeds = [int(s) for s in F.seeds]
        self.log_path = os.path.join(self.work, "transfer.log")
        self.durations = collections.defaultdict(list)

    # ------------------------------------------------------------------------ logging
    def log(self, msg):
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
        print(line, flush=True)
        os.makedirs(self.work, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    # ------------------------------------------------------------------------ paths
    def corpus_files(self):
        return [os.path.join(self.work, "corpus", "imdb.txt"),
                os.path.join(self.work, "corpus", "wiki.txt")]

    def data_key(self, variant):
        s = apply_overrides(self.pre, VARIANTS[variant] or [])
        parts = []
        if s.get("bi_data", True) is False:
            parts.append("nobidata")
        if s.get("max_gram") not in (None, "5"):
            parts.append(f"maxgram{s['max_gram']}")
        return "_".join(parts)

    def data_dir(self, variant):
        key = self.data_key(variant)
        return os.path.join(self.work, "pretrain_data" + (f"_{key}" if key else ""))

    def squad_files(self):
        return (os.path.join(self.work, "squad", "train.json"),
                os.path.join(self.work, "squad", "heldout.json"))

    def spiece_model(self):
        return os.path.join(self.work, "pretrain_data", "spiece.model")

    def model_dir(self, variant):
        return os.path.join(self.work, "pretrain", variant)

    def finetune_dir(self, variant, step, task, seed):
        name = variant + (f"@{step}" if step else "")
        return os.path.join(self.work, "finetune", name, task, f"seed{seed}")

    # ------------------------------------------------------------------------ units
    def pretrain_done(self, variant):
        d = self.model_dir(variant)
        return (os.path.exists(os.path.join(d, "xlnet_model.ckpt.index"))
                and latest_step(d) >= self.train_steps)

    def finetune_done(self, variant, step, task, seed):
        return os.path.exists(os.path.join(self.finetune_dir(variant, step, task, seed),
                                           "eval_results.json"))

    def plan(self):
        """Units in the order that gives comparable numbers soonest: each variant's
        pretraining (and its own records) right before its first fine-tuning seed, all
        variants at seed 0 first, then the other seeds."""
        units = [("corpus", None), ("data", "plm")]
        if "squad" in self.F.tasks:
            units.append(("squad_split", None))
        seeds = self.seeds
        names = list(dict.fromkeys(v for v, _ in self.variants))
        for v in names:
            if v != "scratch":
                if self.data_key(v):
                    units.append(("data", v))
                units.append(("pretrain", v))
            for step in [st for vv, st in self.variants if vv == v]:
                for task in self.F.tasks:
                    units += [("finetune", (v, step, task, seed)) for seed in seeds[:1]]
        for seed in seeds[1:]:
            for task in self.F.tasks:
                for v, step in self.variants:
                    units.append(("finetune", (v, step, task, seed)))
        return units

    def unit_done(self, kind, arg):
        if kind == "corpus":
            return os.path.exists(os.path.join(self.work, "corpus", "corpus.json"))
        if kind == "data":
            return os.path.exists(os.path.join(self.data_dir(arg), "records", "manifest.json"))
        if kind == "squad_split":
            return all(os.path.exists(p) for p in self.squad_files())
        if kind == "pretrain":
            return self.pretrain_done(arg)
        return self.finetune_done(*arg)

    def unit_name(self, kind, arg):
        if kind == "finetune":
            v, step, task, seed = arg
            return f"finetune {v}{'@' + str(step) if step else ''} {task} seed {seed}"
        return f"{kind} {arg or ''}".strip()

    def guess(self, kind, arg):
        key = kind if kind != "finetune" else f"finetune:{arg[2]}"
        done = self.durations.get(key)
        if done:
            return statistics.median(done)
        return _GUESS_SECONDS.get(key, 60)

    def run(self):
        units = self.plan()
        todo = [u for u in units if not self.unit_done(*u)]
        self.log(f"transfer experiment: {len(units)} units, {len(units) - len(todo)} done, "
                 f"{len(todo)} to do (work dir {self.work})")
        if self.F.dry_run:
            for u in units:
                print(f"  [{'done' if self.unit_done(*u) else 'todo'}] {self.unit_name(*u)}")
            return 0
        failures = 0
        start = time.time()
        for i, (kind, arg) in enumerate(todo, 1):
            name = self.unit_name(kind, arg)
            eta = sum(self.guess(*u) for u in todo[i - 1:])
            self.log(f"[{i}/{len(todo)}] {name} ... (elapsed {fmt_seconds(time.time() - start)}, "
                     f"ETA of the experiment {fmt_seconds(eta)})")
            t0 = time.time()
            try:
                getattr(self, f"do_{kind}")(arg)
            except subprocess.CalledProcessError as e:
                failures += 1
                self.log(f"  FAILED: {name} (exit {e.returncode}); see {e.cmd[-1] if e.cmd else ''}")
                continue
            dt = time.time() - t0
            key = kind if kind != "finetune" else f"finetune:{arg[2]}"
            if kind != "corpus" and kind != "data":
                self.durations[key].append(dt)
            self.log(f"  done in {fmt_seconds(dt)}")
            self.report()
        self.report()
        self.log(f"finished: {len(todo) - failures} units run, {failures} failed")
        return 1 if failures else 0

    # ------------------------------------------------------------------------ the work
    def do_corpus(self, _):
        from xlnet_tf.experiments.corpus import write_corpus
        src = os.path.join(self.data, "pretrain_text")
        reviews = sorted(os.path.join(src, "imdb_unsup", f)
                         for f in os.listdir(os.path.join(src, "imdb_unsup")) if f.endswith(".txt"))
        wiki = sorted(os.path.join(src, "enwiki_partial", f)
                      for f in os.listdir(os.path.join(src, "enwiki_partial")) if f.endswith(".txt"))
        imdb_out, wiki_out = self.corpus_files()
        stats = {"imdb": write_corpus(imdb_out, [("reviews", p) for p in reviews]),
                 "wiki": write_corpus(wiki_out, [("wiki", p) for p in wiki]),
                 "sources": reviews + wiki}
        for k in ("imdb", "wiki"):
            self.log(f"  corpus {k}: {stats[k][0]:,} documents, {stats[k][1]:,} sentences, "
                     f"{stats[k][2]:,} words")
        io_lib.write_json_atomic(os.path.join(self.work, "corpus", "corpus.json"), stats)

    def do_squad_split(self, _):
        """SQuAD v1.1 dev split by article: every SQUAD_HELDOUT_EVERY-th article held out."""
        src = os.path.join(self.data, "squad", "dev-v1.1.json")
        data = io_lib.read_json(src, "SQuAD v1.1 dev")
        articles = data["data"]
        held = [a for i, a in enumerate(articles) if i % SQUAD_HELDOUT_EVERY == 0]
        train = [a for i, a in enumerate(articles) if i % SQUAD_HELDOUT_EVERY != 0]
        os.makedirs(os.path.dirname(self.squad_files()[0]), exist_ok=True)
        for path, part in zip(self.squad_files(), (train, held)):
            io_lib.write_json_atomic(path, {"version": data.get("version", "1.1"),
                                            "data": part})
            n = sum(len(p["qas"]) for a in part for p in a["paragraphs"])
            self.log(f"  {os.path.basename(path)}: {len(part)} articles, {n:,} questions")

    def do_data(self, variant):
        from xlnet_tf.pretraining import prepare_data
        s = apply_overrides(self.pre, VARIANTS[variant] or [])
        default = not self.data_key(variant)
        kwargs = dict(vocab_size=int(s["vocab_size"]), seq_len=int(s["seq_len"]),
                      reuse_len=int(s["reuse_len"]), bi_data=s.get("bi_data", True) is True,
                      num_predict=int(s["num_predict"]), mask_alpha=int(s["mask_alpha"]),
                      mask_beta=int(s["mask_beta"]), uncased=s.get("uncased", False) is True,
                      bsz_per_host=int(s["train_batch_size"]), num_core_per_host=1, seed=0,
                      num_workers=os.cpu_count() or 1)
        if "max_gram" in s:
            kwargs["max_gram"] = int(s["max_gram"])
        prepare_data(self.data_dir(variant), self.corpus_files(),
                     spiece_model=None if default else self.spiece_model(), **kwargs)

    def do_pretrain(self, variant):
        args = [f"--flagfile={self.pretrain_flagfile}", *VARIANTS[variant],
                f"--record_dir={os.path.join(self.data_dir(variant), 'records')}",
                f"--spiece_model={self.spiece_model()}",
                f"--model_dir={self.model_dir(variant)}"]
        if self.F.pretrain_steps:
            args.append(f"--train_steps={self.F.pretrain_steps}")
        self.subprocess("run_pretrain.py", args, f"pretrain_{variant}")

    def do_finetune(self, arg):
        variant, step, task, seed = arg
        folder, stem, _, _ = TASKS[task]
        out = self.finetune_dir(variant, step, task, seed)
        config = os.path.join(self.work, "model_config.json")
        if not os.path.exists(config):
            self.write_model_config(config)
        args = [f"--flagfile={self.finetune_pattern.format(task=stem)}",
                f"--cache_dir={os.path.join(self.work, 'cache')}",
                f"--spiece_model={self.spiece_model()}", f"--model_config={config}",
                f"--output_dir={out}", f"--seed={seed}", "--do_train"]
        if task == "squad":
            script = "run_squad.py"
            train, held = self.squad_files()
            args += [f"--train_file={train}", f"--predict_file={held}", "--do_predict"]
        else:
            script = "run_classifier.py"
            args += [f"--data_dir={os.path.join(self.data, folder)}", "--do_eval"]
        if variant != "scratch":
            init = (os.path.join(self.model_dir(variant), f"ckpt-{step}") if step else
                    os.path.join(self.model_dir(variant), "xlnet_model.ckpt"))
            args.append(f"--init_checkpoint={init}")
        self.subprocess(script, args,
                        f"finetune_{variant}{'@' + str(step) if step else ''}_{task}_seed{seed}")

    def write_model_config(self, path):
        """The architecture every variant shares (the scratch model's too), from the
        pretraining flagfile and the vocabulary."""
        from xlnet_tf.modeling.config import XLNetConfig
        import sentencepiece as spm
        n_token = spm.SentencePieceProcessor(model_file=self.spiece_model()).get_piece_size()
        p = self.pre
        XLNetConfig(n_layer=int(p["n_layer"]), d_model=int(p["d_model"]),
                    n_head=int(p["n_head"]), d_head=int(p["d_head"]),
                    d_inner=int(p["d_inner"]), ff_activation=p.get("ff_activation", "gelu"),
                    untie_r=p.get("untie_r", True) is True, n_token=n_token).to_json(path)

    def subprocess(self, script, args, log_name):
        os.makedirs(os.path.join(self.work, "logs"), exist_ok=True)
        log_file = os.path.join(self.work, "logs", f"{log_name}.log")
        cmd = [sys.executable, os.path.join(self.repo, script), *args]
        with open(log_file, "a", encoding="utf-8") as f:
            f.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
            f.flush()
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=self.repo,
                                  env=env)
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, [*cmd, log_file])

    # ------------------------------------------------------------------------ results
    def collect(self):
        pre = {}
        for v in dict.fromkeys(v for v, _ in self.variants):
            if v == "scratch":
                continue
            d = self.model_dir(v)
            curve = loss_curve(os.path.join(d, "train"))
            pre[v] = {"flags": VARIANTS[v], "model_dir": d, "steps_done": latest_step(d),
                      "train_steps": self.train_steps, "loss_curve": curve,
                      "final_loss": curve[-1][1] if curve else None,
                      "wall_seconds": wall_seconds(os.path.join(d, "train"))}
        runs = []
        for v, step in self.variants:
            for task in self.F.tasks:
                for seed in self.seeds:
                    path = os.path.join(self.finetune_dir(v, step, task, seed),
                                        "eval_results.json")
                    if not os.path.exists(path):
                        continue
                    res = io_lib.read_json(path, "eval results")
                    metric, scale = TASKS[task][2], TASKS[task][3]
                    runs.append({"variant": v, "pretrain_step": step, "task": task,
                                 "seed": seed, "metric": metric,
                                 "value": scale * _metric(res, metric), "eval_results": res})
        return pre, runs

    def report(self):
        pre, runs = self.collect()
        summary = summarise(runs)
        os.makedirs(self.results, exist_ok=True)
        obj = {"settings": {"pretrain_flagfile": os.path.relpath(self.pretrain_flagfile,
                                                                 self.repo),
                            "pretrain_flags": self.pre,
                            "finetune_flagfiles": {t: read_flagfile(self.finetune_pattern.format(
                                task=TASKS[t][1])) for t in self.F.tasks},
                            "variants": {v: VARIANTS[v] for v, _ in self.variants},
                            "seeds": self.seeds},
               "pretraining": pre, "finetuning": runs, "summary": summary}
        io_lib.write_json_atomic(os.path.join(self.results, "results.json"), obj)
        io_lib.write_text_atomic(os.path.join(self.results, "results.md"),
                                 markdown_table(summary, pre, self.F.tasks))
        try:
            plot(pre, summary, self.F.tasks, self.results)
        except ImportError:
            self.log("  (matplotlib is not installed: no plots)")


# --------------------------------------------------------------------------- readers
def latest_step(model_dir):
    """Step of the newest ckpt-N in a model dir (0 when none)."""
    state = os.path.join(model_dir, "checkpoint")
    if not os.path.exists(state):
        return 0
    with open(state, encoding="utf-8") as f:
        for line in f:
            if line.startswith("model_checkpoint_path:"):
                name = line.split(":", 1)[1].strip().strip('"')
                try:
                    return int(name.rsplit("-", 1)[1])
                except (IndexError, ValueError):
                    return 0
    return 0


def _events(train_dir):
    if not os.path.isdir(train_dir):
        return
    import tensorflow as tf
    for name in sorted(os.listdir(train_dir)):
        if name.startswith("events.out.tfevents"):
            for e in tf.compat.v1.train.summary_iterator(os.path.join(train_dir, name)):
                yield e


def loss_curve(train_dir):
    """[(step, loss)] from the pretraining run's TensorBoard summaries (a resumed run's
    repeated steps keep their last value)."""
    import tensorflow as tf
    points = {}
    for e in _events(train_dir):
        for v in e.summary.value:
            if v.tag == "loss":
                val = (float(tf.make_ndarray(v.tensor)) if v.HasField("tensor")
                       else float(v.simple_value))
                points[int(e.step)] = val
    return sorted(points.items())


def wall_seconds(train_dir):
    """Training time from the summaries: sum over runs (resumes) of first-to-last event."""
    spans = collections.defaultdict(list)
    for e in _events(train_dir) or []:
        if e.summary.value:
            spans[e.file_version or "run"].append(e.wall_time)
    times = sorted(t for ts in spans.values() for t in ts)
    if len(times) < 2:
        return None
    # gaps longer than 10 minutes are interruptions, not training
    total, prev = 0.0, times[0]
    for t in times[1:]:
        if t - prev < 600:
            total += t - prev
        prev = t
    return round(total, 1)


def _metric(res, metric):
    for key in (metric, f"eval_{metric}"):
        if key in res:
            return float(res[key])
    for v in res.values():
        if isinstance(v, dict) and metric in v:
            return float(v[metric])
    raise ValueError(f"eval_results.json has no {metric!r}: {sorted(res)}")


def summarise(runs):
    """{variant_name: {task: {median, min, max, n, values}}}."""
    groups = collections.defaultdict(list)
    for r in runs:
        name = r["variant"] + (f"@{r['pretrain_step']}" if r["pretrain_step"] else "")
        groups[(name, r["task"])].append(r["value"])
    out = collections.defaultdict(dict)
    for (name, task), vals in groups.items():
        out[name][task] = {"median": statistics.median(vals), "min": min(vals),
                           "max": max(vals), "n": len(vals), "values": vals}
    return dict(out)


def markdown_table(summary, pre, tasks):
    head = "| variant | final pretraining loss | " + " | ".join(
        f"{t} {TASKS[t][2]}" for t in tasks) + " |"
    lines = [head, "|" + "---|" * (2 + len(tasks))]
    base = summary.get("scratch", {})
    for name, per_task in summary.items():
        v = name.split("@")[0]
        loss = pre.get(v, {}).get("final_loss")
        cells = []
        for t in tasks:
            s = per_task.get(t)
            if not s:
                cells.append("-")
                continue
            cell = f"{100 * s['median']:.1f} [{100 * s['min']:.1f}-{100 * s['max']:.1f}] (n={s['n']})"
            if name != "scratch" and t in base:
                cell += f", {100 * (s['median'] - base[t]['median']):+.1f} vs scratch"
            cells.append(cell)
        lines.append(f"| {name} | {'-' if loss is None else f'{loss:.3f}'} | "
                     + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Median over fine-tuning seeds [min-max], in points (x100); "
                 "'vs scratch' compares medians.")
    return "\n".join(lines) + "\n"


def plot(pre, summary, tasks, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if any(p["loss_curve"] for p in pre.values()):
        fig, ax = plt.subplots(figsize=(7, 4))
        for v, p in pre.items():
            if p["loss_curve"]:
                xs, ys = zip(*p["loss_curve"])
                ax.plot(xs, ys, label=v)
        ax.set_xlabel("pretraining step")
        ax.set_ylabel("training loss (nats / predicted token)")
        ax.set_title("Pretraining loss")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        _save_png(fig, os.path.join(out_dir, "pretrain_loss.png"))
        plt.close(fig)
    if summary:
        names = list(summary)
        fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.6), squeeze=False)
        for ax, t in zip(axes[0], tasks):
            for i, n in enumerate(names):
                s = summary[n].get(t)
                if not s:
                    continue
                ax.bar(i, 100 * s["median"], color="C%d" % i)
                ax.errorbar(i, 100 * s["median"], yerr=[[100 * (s["median"] - s["min"])],
                                                        [100 * (s["max"] - s["median"])]],
                            color="black", capsize=4)
                ax.scatter([i] * len(s["values"]), [100 * x for x in s["values"]], s=10,
                           color="black", zorder=3)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=30, ha="right")
            ax.set_title(f"{t} dev {TASKS[t][2]}")
            lo = [100 * summary[n][t]["min"] for n in names if t in summary[n]]
            if lo:
                ax.set_ylim(max(0, min(lo) - 10), min(100, max(
                    100 * summary[n][t]["max"] for n in names if t in summary[n]) + 5))
        fig.tight_layout()
        _save_png(fig, os.path.join(out_dir, "downstream.png"))
        plt.close(fig)


def _save_png(fig, path):
    with io_lib.atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def main(F):
    if not F.data_dir or not F.work_dir:
        cli.fail("give --data_dir (with pretrain_text/ and glue/) and --work_dir")
    for sub in ("pretrain_text", "glue") + (("squad",) if "squad" in F.tasks else ()):
        if not os.path.isdir(os.path.join(F.data_dir, sub)):
            cli.fail(f"--data_dir={F.data_dir!r} has no {sub}/ folder")
    cli.setup_logging()
    exp = Experiment(F)
    if F.report_only:
        exp.report()
        return 0
    return exp.run()


def entry():
    """The console command (pyproject.toml's [project.scripts])."""
    cli.main_entry(define_flags, main, doc=__doc__,
                   interrupt_hint="run the same command again to continue where it stopped")


if __name__ == "__main__":
    entry()
