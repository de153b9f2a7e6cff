"""Tests for xlnet_tf.classification.metrics: hand-computed values, scipy.stats, and weight/mask identities."""
import math

import numpy as np
import pytest
from scipy import stats

from xlnet_tf.classification import metrics

# Shared small binary case:
#   idx    0  1  2  3  4
#   preds  1  0  1  1  0
#   labels 1  1  1  0  0
# -> correct at 0, 2, 4; tp = {0, 2} = 2, fn = {1} = 1, fp = {3} = 1, tn = {4} = 1.
PREDS = np.array([1, 0, 1, 1, 0])
LABELS = np.array([1, 1, 1, 0, 0])
# Weights dropping idx 3 (as is_real_example would for a padding row):
# tp = 2, fn = 1, fp = 0, tn = 1.
MASK = np.array([1, 1, 1, 0, 1])


def test_accuracy_hand():
    assert metrics.accuracy(PREDS, LABELS) == pytest.approx(3 / 5)
    # With idx 3 masked: 3 correct of 4.
    assert metrics.accuracy(PREDS, LABELS, MASK) == pytest.approx(3 / 4)
    # Fractional weights: correct weight 0.5 + 2 + 1 = 3.5 of total 0.5+1+2+4+1 = 8.5.
    w = np.array([0.5, 1.0, 2.0, 4.0, 1.0])
    assert metrics.accuracy(PREDS, LABELS, w) == pytest.approx(3.5 / 8.5)


def test_f1_hand():
    # 2tp / (2tp + fp + fn) = 4 / (4 + 1 + 1)
    assert metrics.f1_score(PREDS, LABELS) == pytest.approx(2 / 3)
    # Masked: 4 / (4 + 0 + 1)
    assert metrics.f1_score(PREDS, LABELS, MASK) == pytest.approx(4 / 5)
    # Positive class 0: tp0 = {4} = 1, fp0 = {1} = 1, fn0 = {3} = 1 -> 2 / 4.
    assert metrics.f1_score(PREDS, LABELS, positive=0) == pytest.approx(0.5)


def test_mcc_binary_hand():
    # (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (2 - 1) / sqrt(3*3*2*2) = 1/6
    assert metrics.matthews_corrcoef(PREDS, LABELS) == pytest.approx(1 / 6)
    # Masked: (2*1 - 0*1) / sqrt(2*3*1*2) = 2 / sqrt(12)
    assert metrics.matthews_corrcoef(PREDS, LABELS, MASK) == pytest.approx(2 / math.sqrt(12))


def test_mcc_multiclass_hand():
    # labels 0 1 2 0, preds 0 2 2 0: confusion [true, pred] = {(0,0): 2, (1,2): 1, (2,2): 1}
    # s = 4, c = 3, t = [2, 1, 1], p = [2, 0, 2]
    # (c*s - t.p) / sqrt((s^2 - p.p)(s^2 - t.t)) = (12 - 6) / sqrt((16 - 8)(16 - 6)) = 6 / sqrt(80)
    value = metrics.matthews_corrcoef(np.array([0, 2, 2, 0]), np.array([0, 1, 2, 0]))
    assert value == pytest.approx(6 / math.sqrt(80))


def test_mcc_and_f1_degenerate():
    # Constant prediction: MCC denominator 0 -> 0.0 (scikit-learn's convention).
    assert metrics.matthews_corrcoef([1, 1, 1], [0, 1, 1]) == 0.0
    # No predicted and no true positives: F1 = 0/0 -> 0.0.
    assert metrics.f1_score([0, 0], [0, 0]) == 0.0
    # Perfect: MCC 1, F1 1; inverted: MCC -1.
    assert metrics.matthews_corrcoef([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)
    assert metrics.matthews_corrcoef([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    assert metrics.f1_score([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)


def test_pearson_hand():
    # x = 1 2 3, y = 1 2 2: dx = -1 0 1, dy = -2/3 1/3 1/3,
    # sxy = 1, sxx = 2, syy = 2/3 -> r = 1 / sqrt(4/3) = sqrt(3)/2
    assert metrics.pearson([1, 2, 3], [1, 2, 2]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(metrics.pearson([1, 1, 1], [1, 2, 3]))


def test_rank_average_and_spearman_hand():
    # [10, 20, 20, 5]: sorted 5(1) 10(2) 20(3) 20(4) -> ranks 2, 3.5, 3.5, 1
    np.testing.assert_array_equal(metrics.rankdata_average([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
    # Spearman vs y = 1 2 3 4 (ranks 1 2 3 4): drx = -.5 1 1 -1.5, dry = -1.5 -.5 .5 1.5
    # sxy = .75 - .5 + .5 - 2.25 = -1.5, sxx = 4.5, syy = 5 -> -1.5 / sqrt(22.5)
    assert metrics.spearman([10, 20, 20, 5], [1, 2, 3, 4]) == pytest.approx(-1.5 / math.sqrt(22.5))


def test_against_scipy_random_with_ties():
    rng = np.random.RandomState(7)
    for trial in range(20):
        n = rng.randint(5, 60)
        # Scores on a coarse grid so ties are common, as in STS-B (0.2 steps).
        x = np.round(rng.uniform(0, 5, n) * 2) / 2
        y = np.round((x + rng.normal(0, 1.5, n)) * 5) / 5
        assert metrics.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
        assert metrics.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
        np.testing.assert_allclose(metrics.rankdata_average(x), stats.rankdata(x, method="average"))
        # A 0/1 mask equals dropping the masked rows.
        mask = (rng.uniform(size=n) > 0.3).astype(np.float32)
        if mask.sum() < 3:
            continue
        keep = mask == 1
        assert metrics.pearson(x, y, mask) == pytest.approx(stats.pearsonr(x[keep], y[keep])[0], abs=1e-12)
        assert metrics.spearman(x, y, mask) == pytest.approx(stats.spearmanr(x[keep], y[keep])[0], abs=1e-12)


def test_integer_weights_equal_repetition():
    # Weighted statistics with integer weights = the statistic of the data repeated that often.
    rng = np.random.RandomState(3)
    n = 25
    w = rng.randint(0, 4, n)
    x = rng.normal(size=n)
    y = x + rng.normal(size=n)
    xr, yr = np.repeat(x, w), np.repeat(y, w)
    assert metrics.pearson(x, y, w) == pytest.approx(stats.pearsonr(xr, yr)[0], abs=1e-12)
    p = rng.randint(0, 3, n)
    t = rng.randint(0, 3, n)
    pr, tr = np.repeat(p, w), np.repeat(t, w)
    assert metrics.accuracy(p, t, w) == pytest.approx(metrics.accuracy(pr, tr))
    assert metrics.matthews_corrcoef(p, t, w) == pytest.approx(metrics.matthews_corrcoef(pr, tr))
    pb, tb = (p > 0).astype(int), (t > 0).astype(int)
    assert metrics.f1_score(pb, tb, w) == pytest.approx(metrics.f1_score(np.repeat(pb, w), np.repeat(tb, w)))


def test_mcc_binary_equals_formula_random():
    # The multi-class formula, for 2 classes, must match the textbook binary formula.
    rng = np.random.RandomState(11)
    for _ in range(10):
        p = rng.randint(0, 2, 40)
        t = rng.randint(0, 2, 40)
        tp = np.sum((p == 1) & (t == 1)); tn = np.sum((p == 0) & (t == 0))
        fp = np.sum((p == 1) & (t == 0)); fn = np.sum((p == 0) & (t == 1))
        expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        assert metrics.matthews_corrcoef(p, t) == pytest.approx(expected)


def test_bad_inputs():
    with pytest.raises(ValueError, match="preds has 3 entries but labels has 2"):
        metrics.accuracy([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="non-negative"):
        metrics.accuracy([1, 0], [1, 0], [1, -1])
    with pytest.raises(ValueError, match="0/1 mask"):
        metrics.spearman([1, 2, 3], [1, 2, 3], [1, 0.5, 1])
    with pytest.raises(ValueError, match="1-D"):
        metrics.f1_score(np.zeros((2, 2)), np.zeros(2))


def test_compute_metrics_per_task():
    out = metrics.compute_metrics("cola", PREDS, LABELS)
    assert set(out) == {"mcc", "accuracy"}
    assert out["mcc"] == pytest.approx(1 / 6)
    out = metrics.compute_metrics("mrpc", PREDS, LABELS, weights=MASK)
    assert out == pytest.approx({"accuracy": 3 / 4, "f1": 4 / 5})
    assert set(metrics.compute_metrics("qqp", PREDS, LABELS)) == {"accuracy", "f1"}
    assert set(metrics.compute_metrics("sst-2", PREDS, LABELS)) == {"accuracy"}
    # Logits [N, C] are argmax-ed: rows -> 1 0 1 1 0 = PREDS.
    logits = np.array([[0.1, 0.9], [2.0, -1.0], [0.0, 0.5], [-3, 3], [1, 0]])
    assert metrics.compute_metrics("rte", logits, LABELS) == pytest.approx({"accuracy": 0.6})
    # Regression with [N, 1] predictions.
    out = metrics.compute_metrics("sts-b", np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 2.0, 2.0]))
    assert out["pearson"] == pytest.approx(math.sqrt(3) / 2)
    assert out["spearman"] == pytest.approx(stats.spearmanr([1, 2, 3], [1, 2, 2])[0])


def test_compute_metrics_uses_processor_metric_names():
    class FakeTask:
        metric_names = ("accuracy", "mcc")

    assert set(metrics.compute_metrics(FakeTask(), PREDS, LABELS)) == {"accuracy", "mcc"}
