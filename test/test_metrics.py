"""The nine depth metrics: hand-computed values, an independent pure-Python formulation, crops."""

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edepth_ros import metrics as M


def test_hand_computed_values():
    # four valid pixels; ratios max(g/p, p/g) are 2, 1, 1.3, 1.8
    gt = np.array([[2.0, 4.0, 10.0, 5.0]])
    pred = np.array([[1.0, 4.0, 13.0, 9.0]])
    m = M.depth_metrics(pred, gt, crop=None)
    assert m["abs_rel"] == pytest.approx((1 / 2 + 0 + 3 / 10 + 4 / 5) / 4)  # 0.4
    assert m["sq_rel"] == pytest.approx((1 / 2 + 0 + 9 / 10 + 16 / 5) / 4)  # 1.15
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 0 + 9 + 16) / 4))
    e = [math.log(0.5), 0.0, math.log(1.3), math.log(1.8)]
    assert m["rmse_log"] == pytest.approx(math.sqrt(sum(x * x for x in e) / 4))
    mean_e = sum(e) / 4
    assert m["silog"] == pytest.approx(100 * math.sqrt(sum(x * x for x in e) / 4 - mean_e ** 2))
    assert m["log10"] == pytest.approx(sum(abs(x) for x in e) / 4 / math.log(10))
    assert (m["d1"], m["d2"], m["d3"]) == (0.25, 0.5, 0.75)
    assert m["abs_rel"] == pytest.approx(0.4) and m["sq_rel"] == pytest.approx(1.15)


def test_invalid_pixels_excluded_and_prediction_clamped():
    gt = np.array([[2.0, 0.0, 100.0, np.nan, 4.0, 50.0]])
    pred = np.array([[1.0, 3.0, 3.0, 3.0, np.nan, 200.0]])
    m = M.depth_metrics(pred, gt, crop=None)
    # only pixels 0 (gt 2, pred 1) and 5 (gt 50, pred clamped to 80) count
    assert m["abs_rel"] == pytest.approx((0.5 + 30 / 50) / 2)
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 900) / 2))
    assert m["d1"] == 0.0 and m["d3"] == 0.5  # ratios 2 and 1.6
    assert M.prediction_coverage(pred, gt, crop=None) == pytest.approx(2 / 3)
    # +inf is a prediction (of the far limit), clamped like 200 m, not dropped as NaN is
    inf = M.depth_metrics(np.array([[1.0, 3.0, 3.0, 3.0, np.nan, np.inf]]), gt, crop=None)
    assert inf == pytest.approx(m, nan_ok=True)
    assert M.prediction_coverage(np.array([[np.inf, 3.0, 3.0, 3.0, np.nan, 1.0]]), gt, crop=None) == pytest.approx(2 / 3)


def test_no_valid_pixel_gives_nan_and_shape_mismatch_names_shapes():
    m = M.depth_metrics(np.ones((3, 3)), np.zeros((3, 3)), crop=None)
    assert all(math.isnan(v) for v in m.values()) and set(m) == set(M.METRIC_NAMES)
    with pytest.raises(M.MetricsError, match=r"\(3, 4\).*\(3, 3\)"):
        M.depth_metrics(np.ones((3, 4)), np.ones((3, 3)))
    with pytest.raises(M.MetricsError, match="crop"):
        M.depth_metrics(np.ones((3, 3)), np.ones((3, 3)), crop="kitti")


def test_garg_and_eigen_crops_on_kitti_size():
    g = M.garg_crop_mask(375, 1242)
    rows, cols = np.nonzero(g)
    # BTS: int(0.40810811 * 375) = 153 .. int(0.99189189 * 375) = 371, columns 44 .. 1197
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (153, 371, 44, 1197)
    e = M.eigen_crop_mask(375, 1242)
    rows, cols = np.nonzero(e)
    assert (rows.min(), rows.max() + 1) == (124, 342)
    # a gross error outside the crop does not count with the crop, counts without
    gt = np.full((375, 1242), 10.0)
    pred = gt.copy()
    pred[0:100, :] = 40.0
    assert M.depth_metrics(pred, gt, crop="garg")["abs_rel"] == 0.0
    assert M.depth_metrics(pred, gt, crop=None)["abs_rel"] > 0.5


def _reference(pred, gt, lo=1e-3, hi=80.0):
    """Independent formulation: plain Python loops over pixels, math module only."""
    p_list, g_list = [], []
    for p, g in zip(pred.ravel().tolist(), gt.ravel().tolist()):
        if not (math.isfinite(g) and lo < g < hi and math.isfinite(p)):
            continue
        p_list.append(min(max(p, lo), hi))
        g_list.append(g)
    n = len(g_list)
    thr = [0, 0, 0]
    s = dict(abs_rel=0.0, sq_rel=0.0, sq=0.0, lsq=0.0, l=0.0, l10=0.0)
    for p, g in zip(p_list, g_list):
        s["abs_rel"] += abs(g - p) / g
        s["sq_rel"] += (g - p) ** 2 / g
        s["sq"] += (g - p) ** 2
        d = math.log(p) - math.log(g)
        s["lsq"] += d * d
        s["l"] += d
        s["l10"] += abs(math.log10(p) - math.log10(g))
        r = max(g / p, p / g)
        for i, t in enumerate((1.25, 1.5625, 1.953125)):
            thr[i] += r < t
    var = s["lsq"] / n - (s["l"] / n) ** 2
    return {
        "abs_rel": s["abs_rel"] / n, "sq_rel": s["sq_rel"] / n, "rmse": math.sqrt(s["sq"] / n),
        "rmse_log": math.sqrt(s["lsq"] / n), "silog": 100 * math.sqrt(max(var, 0.0)),
        "log10": s["l10"] / n, "d1": thr[0] / n, "d2": thr[1] / n, "d3": thr[2] / n,
    }


@pytest.mark.parametrize("seed", range(5))
def test_matches_independent_formulation_on_random_data(seed):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(-5, 95, size=(37, 53))  # some below 0 and above 80: invalid
    gt[rng.random(gt.shape) < 0.1] = np.nan
    pred = gt * rng.lognormal(0.0, 0.3, size=gt.shape) + rng.normal(0, 1, size=gt.shape)
    pred[rng.random(gt.shape) < 0.05] = np.nan
    ours = M.depth_metrics(pred, gt, crop=None)
    ref = _reference(pred, gt)
    for k in M.METRIC_NAMES:
        # 1e-5: per-pixel terms are float32 for speed (metrics.binned_sums), sums float64
        assert ours[k] == pytest.approx(ref[k], rel=1e-5, abs=1e-9), k


def test_pooled_sums_equal_metrics_of_concatenation():
    rng = np.random.default_rng(7)
    frames = [(rng.uniform(1, 79, (20, 30)), rng.uniform(0.5, 90, (20, 30))) for _ in range(3)]
    sums = M.MetricSums()
    for p, g in frames:
        sums.add(p, g)
    cat_p = np.concatenate([p for p, _ in frames], axis=1)
    cat_g = np.concatenate([g for _, g in frames], axis=1)
    expect = M.depth_metrics(cat_p, cat_g, crop=None)
    got = sums.metrics()
    for k in M.METRIC_NAMES:
        assert got[k] == pytest.approx(expect[k], rel=1e-5), k
    # split by distance bins and merged back: same totals
    bins = M.metrics_by_distance(cat_p, cat_g, bins=(0, 20, 50, 80))
    merged = M.MetricSums()
    for s in bins.values():
        merged.merge(s)
    assert merged.n == sums.n
    assert merged.metrics()["rmse"] == pytest.approx(expect["rmse"], rel=1e-5)
    # the near bin only holds pixels with gt < 20
    near = bins[(0.0, 20.0)]
    sel = (cat_g > 1e-3) & (cat_g < 20)
    assert near.n == int(sel.sum())


def test_mean_metrics_skips_empty_frames():
    a = {k: 1.0 for k in M.METRIC_NAMES}
    b = {k: 3.0 for k in M.METRIC_NAMES}
    c = {k: float("nan") for k in M.METRIC_NAMES}
    assert M.mean_metrics([a, b, c])["rmse"] == 2.0


@settings(max_examples=30, deadline=None)
@given(scale=st.floats(0.2, 5.0), seed=st.integers(0, 1000))
@example(scale=5.0, seed=182)  # a lognormal tail times 5 passes 80 m: clamping would break invariance
def test_silog_is_scale_invariant_and_perfect_prediction_is_perfect(scale, seed):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(1.0, 10.0, (8, 8))
    pred = gt * rng.lognormal(0, 0.2, gt.shape)
    a = M.depth_metrics(pred, gt, crop=None, max_depth=1000.0)
    b = M.depth_metrics(pred * scale, gt, crop=None, max_depth=1000.0)  # a range with no clamping
    assert b["silog"] == pytest.approx(a["silog"], rel=1e-4, abs=1e-4)
    perfect = M.depth_metrics(gt, gt, crop=None)
    assert perfect["abs_rel"] == 0 and perfect["rmse"] == 0 and perfect["d1"] == 1.0
