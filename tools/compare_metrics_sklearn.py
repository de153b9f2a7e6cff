"""Compares xlnet_tf.classification.metrics with scikit-learn and scipy on random data (a reference check).

scikit-learn is not a project dependency; run this with a side environment, e.g.

    python3 -m venv --system-site-packages /work/venvs/sklearn
    /work/venvs/sklearn/bin/pip install scikit-learn
    /work/venvs/sklearn/bin/python tools/compare_metrics_sklearn.py

It imports ``xlnet_tf.classification.metrics`` (pure numpy; no TensorFlow import), draws random
binary / multi-class / regression problems with ties and sample weights, and prints the largest
absolute difference per metric. Exit status 1 if any difference exceeds 1e-10.
"""
import pathlib
import sys
import warnings

import numpy as np
import scipy
import sklearn
from scipy import stats
from sklearn import metrics as skm

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from xlnet_tf.classification import metrics as ours  # noqa: E402


def main(trials=500, tol=1e-10, seed=0):
    rng = np.random.RandomState(seed)
    worst = {}
    warnings.simplefilter("ignore", UserWarning)  # sklearn: "a single label was found" on tiny draws

    def record(name, a, b):
        if np.isnan(a) and np.isnan(b):
            d = 0.0
        else:
            d = abs(a - b)
        worst[name] = max(worst.get(name, 0.0), d)

    for _ in range(trials):
        n = rng.randint(2, 200)
        k = rng.randint(2, 6)
        labels = rng.randint(0, k, n)
        preds = np.where(rng.uniform(size=n) < 0.6, labels, rng.randint(0, k, n))
        w = rng.randint(0, 4, n).astype(np.float64)
        if w.sum() == 0:
            w[0] = 1.0
        record("accuracy", ours.accuracy(preds, labels), skm.accuracy_score(labels, preds))
        record("accuracy(weighted)", ours.accuracy(preds, labels, w), skm.accuracy_score(labels, preds, sample_weight=w))
        record("mcc(multiclass)", ours.matthews_corrcoef(preds, labels), skm.matthews_corrcoef(labels, preds))
        record("mcc(multiclass, weighted)", ours.matthews_corrcoef(preds, labels, w),
               skm.matthews_corrcoef(labels, preds, sample_weight=w))
        pb, lb = (preds > 0).astype(int), (labels > 0).astype(int)
        record("f1", ours.f1_score(pb, lb), skm.f1_score(lb, pb, zero_division=0.0))
        record("f1(weighted)", ours.f1_score(pb, lb, w), skm.f1_score(lb, pb, sample_weight=w, zero_division=0.0))
        record("mcc(binary)", ours.matthews_corrcoef(pb, lb), skm.matthews_corrcoef(lb, pb))
        x = np.round(rng.uniform(0, 5, n) * 2) / 2
        y = np.round((x + rng.normal(0, 1.0, n)) * 5) / 5
        if n >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            record("pearson", ours.pearson(x, y), stats.pearsonr(x, y)[0])
            record("spearman(ties)", ours.spearman(x, y), stats.spearmanr(x, y)[0])
            mask = (rng.uniform(size=n) > 0.3).astype(float)
            keep = mask == 1
            if keep.sum() >= 3 and np.ptp(x[keep]) > 0 and np.ptp(y[keep]) > 0:
                record("spearman(masked)", ours.spearman(x, y, mask), stats.spearmanr(x[keep], y[keep])[0])
    bad = False
    for name in sorted(worst):
        flag = "OK" if worst[name] <= tol else "MISMATCH"
        bad |= worst[name] > tol
        print(f"{name:28s} max |ours - reference| = {worst[name]:.3e}  {flag}")
    print(f"{trials} random trials; scikit-learn {sklearn.__version__}, scipy {scipy.__version__}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
