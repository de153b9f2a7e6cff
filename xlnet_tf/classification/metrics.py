"""Evaluation metrics for the classification / regression tasks (numpy, no TF).

The GLUE-style tasks report different metrics:

* accuracy for every classification task,
* F1 of the positive class (label id 1) for MRPC and QQP,
* Matthews correlation coefficient (MCC) for CoLA,
* Pearson and Spearman correlation for STS-B (regression).

Every function takes 1-D numpy-compatible arrays and an optional ``weights`` array. Weights are
how evaluation sets padded to a multiple of the batch size stay exact: pass ``is_real_example``
(1 = real, 0 = padding) and padding rows drop out. Accuracy, F1, MCC and Pearson accept any
non-negative weights (weighted counts / weighted moments); Spearman accepts only a 0/1 mask
because ranks of fractionally weighted items are not well defined.

Conventions where the formulas are undefined (all chosen to match scikit-learn / scipy):

* F1 with no predicted and no true positives, and MCC with a zero denominator, are 0.0;
* Pearson / Spearman of a constant input are NaN (scipy also returns NaN there).
"""

from typing import Dict, Optional, Sequence

import numpy as np

__all__ = [
    "accuracy",
    "f1_score",
    "matthews_corrcoef",
    "pearson",
    "spearman",
    "rankdata_average",
    "metric_names_for_task",
    "compute_metrics",
]


def _prepare(preds, labels, weights, name):
    """Returns float64/1-D copies of preds, labels and weights, checking lengths and weights."""
    preds = np.asarray(preds)
    labels = np.asarray(labels)
    if preds.ndim != 1 or labels.ndim != 1:
        raise ValueError(
            f"{name}: expected 1-D preds and labels, got shapes {preds.shape} and {labels.shape}; "
            "pass class ids (argmax of logits) for classification or a flat array of scores for "
            "regression."
        )
    if preds.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{name}: preds has {preds.shape[0]} entries but labels has {labels.shape[0]}; they must "
            "be aligned one to one."
        )
    if weights is None:
        weights = np.ones(preds.shape[0], dtype=np.float64)
    else:
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        if weights.shape[0] != preds.shape[0]:
            raise ValueError(
                f"{name}: weights has {weights.shape[0]} entries but preds has {preds.shape[0]}."
            )
        if np.any(weights < 0) or not np.all(np.isfinite(weights)):
            raise ValueError(f"{name}: weights must be finite and non-negative (got {weights}).")
    return preds, labels, weights


def accuracy(preds, labels, weights=None) -> float:
    """Weighted fraction of ``preds == labels``. Returns NaN when the total weight is 0."""
    preds, labels, w = _prepare(preds, labels, weights, "accuracy")
    total = w.sum()
    if total == 0:
        return float("nan")
    return float(np.sum(w * (preds == labels)) / total)


def _binary_confusion(preds, labels, w, positive):
    """Weighted (tp, fp, fn, tn) with ``positive`` as the positive class."""
    p = preds == positive
    t = labels == positive
    tp = float(np.sum(w * (p & t)))
    fp = float(np.sum(w * (p & ~t)))
    fn = float(np.sum(w * (~p & t)))
    tn = float(np.sum(w * (~p & ~t)))
    return tp, fp, fn, tn


def f1_score(preds, labels, weights=None, positive=1) -> float:
    """Binary F1 of the ``positive`` class: 2·tp / (2·tp + fp + fn); 0.0 when that is 0/0."""
    preds, labels, w = _prepare(preds, labels, weights, "f1_score")
    tp, fp, fn, _ = _binary_confusion(preds, labels, w, positive)
    denom = 2.0 * tp + fp + fn
    if denom == 0:
        return 0.0
    return float(2.0 * tp / denom)


def matthews_corrcoef(preds, labels, weights=None) -> float:
    """Matthews correlation coefficient, multi-class form (Gorodkin's R_K).

    With C the (weighted) confusion matrix, s = total, c = trace, p_k = predicted counts,
    t_k = true counts: MCC = (c·s − Σ p_k t_k) / sqrt((s² − Σ p_k²)(s² − Σ t_k²)).
    For two classes this equals (tp·tn − fp·fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)).
    Returns 0.0 when the denominator is 0 (e.g. a constant prediction).
    """
    preds, labels, w = _prepare(preds, labels, weights, "matthews_corrcoef")
    classes = np.union1d(preds, labels)
    p_idx = np.searchsorted(classes, preds)
    t_idx = np.searchsorted(classes, labels)
    k = classes.shape[0]
    conf = np.zeros((k, k), dtype=np.float64)  # [true, pred]
    np.add.at(conf, (t_idx, p_idx), w)
    s = conf.sum()
    c = np.trace(conf)
    t_sum = conf.sum(axis=1)
    p_sum = conf.sum(axis=0)
    cov_ytyp = c * s - np.dot(t_sum, p_sum)
    cov_ypyp = s * s - np.dot(p_sum, p_sum)
    cov_ytyt = s * s - np.dot(t_sum, t_sum)
    denom = cov_ypyp * cov_ytyt
    if denom <= 0:
        return 0.0
    return float(cov_ytyp / np.sqrt(denom))


def pearson(preds, labels, weights=None) -> float:
    """(Weighted) Pearson correlation between two float arrays; NaN if either is constant."""
    preds, labels, w = _prepare(preds, labels, weights, "pearson")
    x = preds.astype(np.float64)
    y = labels.astype(np.float64)
    total = w.sum()
    if total == 0:
        return float("nan")
    mx = np.sum(w * x) / total
    my = np.sum(w * y) / total
    dx = x - mx
    dy = y - my
    sxy = np.sum(w * dx * dy)
    sxx = np.sum(w * dx * dx)
    syy = np.sum(w * dy * dy)
    if sxx <= 0 or syy <= 0:
        return float("nan")
    r = sxy / np.sqrt(sxx * syy)
    return float(np.clip(r, -1.0, 1.0))


def rankdata_average(values) -> np.ndarray:
    """1-based ranks of ``values`` where tied values share the average of their ranks.

    Example: [10, 20, 20, 5] → sorted order 5(1), 10(2), 20(3), 20(4) → ranks [2, 3.5, 3.5, 1].
    """
    values = np.asarray(values)
    n = values.shape[0]
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    ranks = np.empty(n, dtype=np.float64)
    start = 0
    while start < n:
        end = start + 1
        while end < n and sorted_vals[end] == sorted_vals[start]:
            end += 1
        # positions start..end-1 (0-based) hold ranks start+1..end; their mean:
        ranks[order[start:end]] = (start + 1 + end) / 2.0
        start = end
    return ranks


def spearman(preds, labels, weights=None) -> float:
    """Spearman rank correlation = Pearson of average ranks (ties share the mean rank).

    ``weights`` must be a 0/1 mask (e.g. ``is_real_example``): masked-out rows are removed before
    ranking.
    """
    preds, labels, w = _prepare(preds, labels, weights, "spearman")
    if not np.all((w == 0) | (w == 1)):
        raise ValueError(
            "spearman: weights must be a 0/1 mask such as is_real_example; ranks of fractionally "
            "weighted items are not defined."
        )
    keep = w == 1
    x = preds[keep].astype(np.float64)
    y = labels[keep].astype(np.float64)
    if x.shape[0] == 0:
        return float("nan")
    return pearson(rankdata_average(x), rankdata_average(y))


# Which metrics each task reports (names as used by get_task in xlnet_tf.classification.data).
_TASK_METRICS = {
    "cola": ("mcc", "accuracy"),
    "mrpc": ("accuracy", "f1"),
    "qqp": ("accuracy", "f1"),
    "sts-b": ("pearson", "spearman"),
}
_REGRESSION_METRICS = ("pearson", "spearman")
_CLASSIFICATION_METRICS = ("accuracy",)


def metric_names_for_task(task) -> Sequence[str]:
    """The metric keys ``compute_metrics`` returns for ``task`` (a name or a task processor).

    A processor object may state its own ``metric_names``; otherwise the table above is used, with
    accuracy for classification and pearson/spearman for regression.
    """
    names = getattr(task, "metric_names", None)
    if names:
        return tuple(names)
    if isinstance(task, str):
        key = task.lower().replace("_", "-")
        key = {"stsb": "sts-b", "sts": "sts-b"}.get(key, key)
        if key in _TASK_METRICS:
            return _TASK_METRICS[key]
        return _CLASSIFICATION_METRICS
    if getattr(task, "is_regression", False):
        return _REGRESSION_METRICS
    return _CLASSIFICATION_METRICS


_METRIC_FNS = {
    "accuracy": accuracy,
    "f1": f1_score,
    "mcc": matthews_corrcoef,
    "pearson": pearson,
    "spearman": spearman,
}


def compute_metrics(task, preds, labels, weights: Optional[np.ndarray] = None) -> Dict[str, float]:
    """Returns ``{metric_name: value}`` for ``task``.

    Args:
      task: task name (e.g. "cola", "mrpc", "sts-b") or a processor from ``get_task``.
      preds: class ids ``[N]``, logits/probabilities ``[N, C]`` (argmax is taken), or regression
        scores ``[N]`` / ``[N, 1]``.
      labels: ``[N]`` label ids (or float scores for regression).
      weights: optional ``[N]`` weights, typically ``is_real_example`` to drop eval padding.
    """
    names = metric_names_for_task(task)
    regression = any(n in ("pearson", "spearman") for n in names)
    preds = np.asarray(preds)
    if regression:
        if preds.ndim == 2 and preds.shape[1] == 1:
            preds = preds[:, 0]
    elif preds.ndim == 2:
        preds = np.argmax(preds, axis=-1)
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    return {name: _METRIC_FNS[name](preds, labels, weights) for name in names}
