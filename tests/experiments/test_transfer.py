"""The transfer-experiment runner: plan, resume (finished units are skipped), results."""
import json
import os

import pytest

from xlnet_tf import cli
from xlnet_tf.experiments import transfer


def make_flags(tmp_path, **kw):
    data = tmp_path / "data"
    for sub in ("pretrain_text", "glue"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    argv = [f"--data_dir={data}", f"--work_dir={tmp_path / 'work'}",
            f"--results_dir={tmp_path / 'results'}", "--variants=scratch,plm,dae",
            "--tasks=sst-2,mrpc", "--seeds=0,1,2"] + [f"--{k}={v}" for k, v in kw.items()]
    return cli.parse(transfer.define_flags, argv, "transfer")


def test_read_flagfile(tmp_path):
    p = tmp_path / "x.flags"
    p.write_text("# comment\n\n--n_layer=4\n--untie_r\n--nobi_data\n--lr=1e-3\n")
    assert transfer.read_flagfile(p) == {"n_layer": "4", "untie_r": True, "bi_data": False,
                                         "lr": "1e-3"}
    p.write_text("n_layer=4\n")
    with pytest.raises(ValueError, match=r"x.flags:1"):
        transfer.read_flagfile(p)


def test_committed_recipe_parses():
    root = transfer.repo_root()
    pre = transfer.read_flagfile(os.path.join(root, "configs", "pretrain_small.flags"))
    assert int(pre["train_steps"]) > 0 and pre["uncased"] is True
    for stem in ("sst2", "mrpc", "rte", "squad"):
        ft = transfer.read_flagfile(os.path.join(root, "configs", f"finetune_small_{stem}.flags"))
        assert ft["uncased"] is True          # the vocabulary is uncased: so is fine-tuning


def _finish_pretrain(model_dir, step):
    os.makedirs(model_dir, exist_ok=True)
    open(os.path.join(model_dir, "xlnet_model.ckpt.index"), "w").close()
    with open(os.path.join(model_dir, "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "ckpt-{step}"\n')


def _finish_finetune(out_dir, metric, value):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "eval_results.json"), "w") as f:
        json.dump({metric: value, "accuracy": value}, f)


def test_resume_skips_finished_units_and_reports(tmp_path, monkeypatch):
    F = make_flags(tmp_path)
    exp = transfer.Experiment(F)
    steps = exp.train_steps
    # finished: corpus, default data, plm pretraining (dae only half-way), two fine-tunings
    os.makedirs(os.path.join(exp.work, "corpus"))
    open(os.path.join(exp.work, "corpus", "corpus.json"), "w").write("{}")
    os.makedirs(os.path.join(exp.data_dir("plm"), "records"))
    open(os.path.join(exp.data_dir("plm"), "records", "manifest.json"), "w").write("{}")
    _finish_pretrain(exp.model_dir("plm"), steps)
    _finish_pretrain(exp.model_dir("dae"), steps // 2)
    _finish_finetune(exp.finetune_dir("scratch", None, "sst-2", 0), "accuracy", 0.80)
    _finish_finetune(exp.finetune_dir("plm", None, "sst-2", 0), "accuracy", 0.85)
    _finish_finetune(exp.finetune_dir("plm", None, "sst-2", 1), "accuracy", 0.87)
    _finish_finetune(exp.finetune_dir("plm", None, "sst-2", 2), "accuracy", 0.83)

    calls = []
    monkeypatch.setattr(transfer.Experiment, "do_pretrain", lambda self, v: calls.append(("pretrain", v)))
    monkeypatch.setattr(transfer.Experiment, "do_finetune", lambda self, a: calls.append(("finetune", a)))
    monkeypatch.setattr(transfer.Experiment, "do_corpus", lambda self, a: calls.append(("corpus",)))
    monkeypatch.setattr(transfer.Experiment, "do_data", lambda self, a: calls.append(("data", a)))
    assert exp.run() == 0
    # only the unfinished units ran: dae pretraining, and 18 - 4 fine-tunings
    assert [c for c in calls if c[0] != "finetune"] == [("pretrain", "dae")]
    assert calls[:2] == [("finetune", ("scratch", None, "mrpc", 0)),
                         ("finetune", ("plm", None, "mrpc", 0))]
    # a variant's pretraining comes right before its first fine-tuning, at seed 0
    first_dae = min(i for i, c in enumerate(calls) if c[0] == "finetune" and c[1][0] == "dae")
    assert calls[first_dae - 1] == ("pretrain", "dae") and calls[first_dae][1][3] == 0
    done = {("scratch", None, "sst-2", 0), ("plm", None, "sst-2", 0),
            ("plm", None, "sst-2", 1), ("plm", None, "sst-2", 2)}
    ft = [c[1] for c in calls if c[0] == "finetune"]
    assert len(ft) == 3 * 2 * 3 - 4 and not done & set(ft)
    # seed-major order: every variant and task of seed 0 before any of seed 1
    seeds = [a[3] for a in ft]
    assert seeds == sorted(seeds)

    res = json.load(open(os.path.join(F.results_dir, "results.json")))
    s = res["summary"]["plm"]["sst-2"]
    assert s["n"] == 3 and s["median"] == pytest.approx(0.85)
    assert (s["min"], s["max"]) == (pytest.approx(0.83), pytest.approx(0.87))
    table = open(os.path.join(F.results_dir, "results.md")).read()
    assert "85.0 [83.0-87.0] (n=3), +5.0 vs scratch" in table


def test_variant_names_are_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown variant 'plm_fast'"):
        transfer.Experiment(make_flags(tmp_path, variants="plm_fast"))
    with pytest.raises(ValueError, match="scratch has no checkpoints"):
        transfer.Experiment(make_flags(tmp_path, variants="scratch@100"))
    exp = transfer.Experiment(make_flags(tmp_path, variants="plm@500,plm"))
    assert exp.variants == [("plm", 500), ("plm", None)]
    assert exp.finetune_dir("plm", 500, "rte", 1).endswith(os.path.join("plm@500", "rte", "seed1"))


def test_record_settings_pick_their_own_data(tmp_path):
    exp = transfer.Experiment(make_flags(tmp_path))
    assert exp.data_dir("plm") == exp.data_dir("dae") == exp.data_dir("plm_nomem")
    assert exp.data_dir("plm_nobidata").endswith("pretrain_data_nobidata")
    assert exp.data_dir("plm_nospan").endswith("pretrain_data_maxgram1")


def test_squad_is_split_by_article(tmp_path):
    """The extractive-QA task: SQuAD v1.1 dev split by article (every 5th held out), so no
    paragraph is in both halves; run with run_squad.py and scored by F1 (scaled to [0, 1])."""
    F = make_flags(tmp_path, tasks="sst-2,squad")
    squad = tmp_path / "data" / "squad"
    squad.mkdir()
    articles = [{"title": f"a{i}", "paragraphs": [
        {"context": f"context {i}", "qas": [{"id": f"q{i}-{j}", "question": "?",
                                             "answers": [{"text": "c", "answer_start": 0}]}
                                            for j in range(i + 1)]}]} for i in range(10)]
    (squad / "dev-v1.1.json").write_text(json.dumps({"version": "1.1", "data": articles}))
    exp = transfer.Experiment(F)
    assert ("squad_split", None) in exp.plan() and not exp.unit_done("squad_split", None)
    exp.do_squad_split(None)
    train, held = (json.load(open(p)) for p in exp.squad_files())
    assert [a["title"] for a in held["data"]] == ["a0", "a5"]
    assert len(train["data"]) == 8 and not {a["title"] for a in train["data"]} & {"a0", "a5"}
    assert exp.unit_done("squad_split", None)
    calls = []
    exp.subprocess = lambda script, args, name: calls.append((script, args))
    open(os.path.join(exp.work, "model_config.json"), "w").write("{}")
    exp.do_finetune(("plm", None, "squad", 1))
    script, args = calls[0]
    assert script == "run_squad.py" and "--do_predict" in args and "--seed=1" in args
    assert f"--predict_file={exp.squad_files()[1]}" in args
    assert any(a.endswith("finetune_small_squad.flags") for a in args)
    _finish_finetune(exp.finetune_dir("plm", None, "squad", 1), "f1", 42.5)
    runs = exp.collect()[1]
    assert [r["value"] for r in runs if r["task"] == "squad"] == [pytest.approx(0.425)]
