"""The nine depth metrics of the KITTI protocol the peers report (DESIGN.md section 6).

Numpy only. Valid pixels: finite ground truth with ``min_depth < gt < max_depth`` inside the
chosen crop, and a finite prediction. Predictions are clamped to ``[min_depth, max_depth]`` first.
Conventions follow BTS / AdaBins / iDisc: SILog is ``100 * sqrt(mean(e^2) - mean(e)^2)`` with
``e = log(pred) - log(gt)``; RMSE log is ``sqrt(mean(e^2))``; log10 is ``mean(|log10 pred - log10 gt|)``.

Two ways to aggregate over a data set, both offered:
- ``depth_metrics`` per frame, averaged over frames (what the peers' KITTI tables report);
- ``MetricSums`` pooled over all pixels (used for distance bins, where a frame may have few pixels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The nine metrics in the order tables print them.
METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "silog", "log10", "d1", "d2", "d3")
# True where a larger value is better (the delta accuracies).
HIGHER_IS_BETTER = {"d1": True, "d2": True, "d3": True}
METRIC_LABELS = {
    "abs_rel": "AbsRel", "sq_rel": "SqRel", "rmse": "RMSE", "rmse_log": "RMSE log",
    "silog": "SILog", "log10": "log10", "d1": "d1<1.25", "d2": "d2<1.25^2", "d3": "d3<1.25^3",
}

MIN_DEPTH = 1e-3
MAX_DEPTH = 80.0

# Crop fractions (rows top, rows bottom, cols left, cols right) of the full KITTI image.
GARG_CROP = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
EIGEN_CROP = (0.3324324, 0.91351351, 0.0359477, 0.96405229)


class MetricsError(ValueError):
    """Bad input to the metrics (shapes, crop name)."""


def _crop_mask(h: int, w: int, fractions) -> np.ndarray:
    top, bottom, left, right = fractions
    mask = np.zeros((h, w), dtype=bool)
    mask[int(top * h):int(bottom * h), int(left * w):int(right * w)] = True
    return mask


def garg_crop_mask(h: int, w: int) -> np.ndarray:
    """Boolean (h, w) mask of the Garg crop (Garg et al. 2016), as in BTS's eval code."""
    return _crop_mask(h, w, GARG_CROP)


def eigen_crop_mask(h: int, w: int) -> np.ndarray:
    """Boolean (h, w) mask of the Eigen crop (Eigen et al. 2014)."""
    return _crop_mask(h, w, EIGEN_CROP)


def crop_mask(h: int, w: int, crop: str | None) -> np.ndarray | None:
    if crop is None or crop == "none":
        return None
    if crop == "garg":
        return garg_crop_mask(h, w)
    if crop == "eigen":
        return eigen_crop_mask(h, w)
    raise MetricsError(f"crop={crop!r}: use 'garg', 'eigen' or None")


def _same_shape(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape or gt.ndim != 2:
        raise MetricsError(
            f"prediction shape {pred.shape} and ground truth shape {gt.shape} must be the same (H, W);"
            " resize the prediction to the ground truth's size first")
    return pred, gt


def valid_mask(pred: np.ndarray, gt: np.ndarray, min_depth: float = MIN_DEPTH,
               max_depth: float = MAX_DEPTH, crop: str | None = "garg") -> np.ndarray:
    """Pixels that count: finite gt in (min_depth, max_depth), inside the crop, a prediction (not NaN;
    +-inf is clamped to the depth range, as the peers' evaluation code does)."""
    pred, gt = _same_shape(pred, gt)
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(gt) & (gt > min_depth) & (gt < max_depth) & ~np.isnan(pred)
    c = crop_mask(gt.shape[0], gt.shape[1], crop)
    if c is not None:
        mask &= c
    return mask


def depth_metrics(pred: np.ndarray, gt: np.ndarray, min_depth: float = MIN_DEPTH,
                  max_depth: float = MAX_DEPTH, crop: str | None = "garg") -> dict:
    """The nine metrics of one frame: dict name -> float (NaN when no pixel is valid).

    pred, gt: (H, W) metres, NaN (or <= min_depth in gt) where there is no value. Pixels with a
    NaN prediction are left out; ``prediction_coverage`` says how many that were. Predictions,
    +-inf included, are clamped to [min_depth, max_depth].
    """
    return score_frame(pred, gt, min_depth, max_depth, crop, bins=None).metrics


def prediction_coverage(pred: np.ndarray, gt: np.ndarray, min_depth: float = MIN_DEPTH,
                        max_depth: float = MAX_DEPTH, crop: str | None = "garg") -> float:
    """Fraction of valid ground-truth pixels that have a prediction, not NaN (1.0 for dense output)."""
    gt_ok = valid_mask(np.zeros_like(gt), gt, min_depth, max_depth, crop)
    n = int(gt_ok.sum())
    if n == 0:
        return float("nan")
    return float((gt_ok & ~np.isnan(pred)).sum()) / n


def mean_metrics(per_frame: list[dict]) -> dict:
    """Average of per-frame metric dicts (frames with no valid pixel, all NaN, are left out)."""
    out = {}
    for k in METRIC_NAMES:
        vals = np.array([m[k] for m in per_frame if k in m], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out[k] = float(vals.mean()) if vals.size else float("nan")
    return out


@dataclass
class MetricSums:
    """Sufficient statistics of the nine metrics, pooled over pixels of many frames.

    ``add`` is O(pixels) numpy; ``metrics()`` gives the same numbers ``depth_metrics`` would on
    the concatenation of every added pixel.
    """

    n: int = 0
    abs_rel: float = 0.0
    sq_rel: float = 0.0
    sq: float = 0.0
    log_sq: float = 0.0
    log_sum: float = 0.0
    log10: float = 0.0
    d: list = field(default_factory=lambda: [0, 0, 0])

    def add_pixels(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add matched 1-D arrays of valid, already clamped depths."""
        self.merge(binned_sums(pred, gt, None, 1)[0])

    def add(self, pred: np.ndarray, gt: np.ndarray, min_depth: float = MIN_DEPTH,
            max_depth: float = MAX_DEPTH, crop: str | None = None, mask: np.ndarray | None = None) -> None:
        """Add one frame's (H, W) prediction and ground truth (optionally only where ``mask``)."""
        valid = valid_mask(pred, gt, min_depth, max_depth, crop)
        if mask is not None:
            valid &= mask
        self.add_pixels(np.clip(np.asarray(pred, dtype=np.float64)[valid], min_depth, max_depth),
                        np.asarray(gt, dtype=np.float64)[valid])

    def merge(self, other: "MetricSums") -> None:
        self.n += other.n
        self.abs_rel += other.abs_rel
        self.sq_rel += other.sq_rel
        self.sq += other.sq
        self.log_sq += other.log_sq
        self.log_sum += other.log_sum
        self.log10 += other.log10
        self.d = [a + b for a, b in zip(self.d, other.d)]

    def metrics(self) -> dict:
        if self.n == 0:
            return {k: float("nan") for k in METRIC_NAMES}
        n = self.n
        mean_log_sq = self.log_sq / n
        mean_log = self.log_sum / n
        return {
            "abs_rel": self.abs_rel / n,
            "sq_rel": self.sq_rel / n,
            "rmse": float(np.sqrt(self.sq / n)),
            "rmse_log": float(np.sqrt(mean_log_sq)),
            "silog": float(100.0 * np.sqrt(max(0.0, mean_log_sq - mean_log ** 2))),
            "log10": self.log10 / n,
            "d1": self.d[0] / n,
            "d2": self.d[1] / n,
            "d3": self.d[2] / n,
        }


_LOG_THRESHOLDS = tuple(float(np.log(t)) for t in (1.25, 1.25 ** 2, 1.25 ** 3))


def binned_sums(pred: np.ndarray, gt: np.ndarray, index: np.ndarray | None, nbins: int) -> list:
    """One MetricSums per bin of matched 1-D valid, clamped depths; ``index`` (int, 0..nbins-1) says
    which bin each pixel goes to (None: all in one bin).

    Per-pixel terms are float32 (a dense KITTI-size frame is 0.4 M pixels: float64 temporaries
    would double the memory traffic, which is what this costs), reused in place; sums are float64.
    max(g/p, p/g) < t is tested as |log(p/g)| < log(t).
    """
    p = np.asarray(pred, dtype=np.float32)
    g = np.asarray(gt, dtype=np.float32)
    out = [MetricSums() for _ in range(nbins)]
    if p.size == 0:
        return out
    binned = index is not None and nbins > 1

    def total(w):
        if binned:
            return np.bincount(index, weights=w, minlength=nbins)
        return np.array([np.add.reduce(w, dtype=np.float64)])

    def count(sel):
        if binned:
            return np.bincount(index[sel], minlength=nbins)
        return np.array([np.count_nonzero(sel)])

    inv = np.reciprocal(g)
    diff = g - p
    sq = diff * diff
    cols = {"sq": total(sq)}
    np.multiply(sq, inv, out=sq)
    cols["sq_rel"] = total(sq)
    np.abs(diff, out=diff)
    np.multiply(diff, inv, out=diff)
    cols["abs_rel"] = total(diff)
    log_err = np.multiply(p, inv, out=inv)
    np.log(log_err, out=log_err)  # log(pred / gt)
    cols["log_sum"] = total(log_err)
    np.abs(log_err, out=diff)  # |log error|
    cols["log10"] = total(diff) / np.log(10.0)
    d = [count(diff < lt) for lt in _LOG_THRESHOLDS]
    np.multiply(log_err, log_err, out=log_err)
    cols["log_sq"] = total(log_err)
    n = count(np.ones(p.size, bool)) if binned else np.array([p.size])
    for i, s in enumerate(out):
        s.n = int(n[i])
        for k, v in cols.items():
            setattr(s, k, float(v[i]))
        s.d = [int(x[i]) for x in d]
    return out


# Distance bins (metres) for "error by distance" tables and plots.
DEFAULT_BINS = (0.0, 10.0, 20.0, 30.0, 40.0, 60.0, 80.0)


@dataclass
class FrameScore:
    """One frame scored: its nine metrics, per-distance-bin sums, and the matched pixels."""

    metrics: dict
    bins: dict
    pred: np.ndarray  # clamped predictions at the valid pixels (1-D float64)
    gt: np.ndarray
    coverage: float  # fraction of valid ground-truth pixels with a finite prediction

    @property
    def pixels(self) -> int:
        return int(self.gt.size)


def gt_valid_mask(gt: np.ndarray, min_depth: float = MIN_DEPTH, max_depth: float = MAX_DEPTH,
                  crop: str | None = "garg") -> np.ndarray:
    """Pixels whose ground truth counts (finite, in range, inside the crop), whatever the prediction."""
    return valid_mask(gt, gt, min_depth, max_depth, crop)


def score_frame(pred: np.ndarray, gt: np.ndarray, min_depth: float = MIN_DEPTH, max_depth: float = MAX_DEPTH,
                crop: str | None = "garg", bins=DEFAULT_BINS, gt_mask: np.ndarray | None = None) -> FrameScore:
    """The nine metrics of a frame and its per-bin sums (bins of the ground-truth depth), in one pass.

    gt_mask: ``gt_valid_mask(gt, min_depth, max_depth, crop)`` when the caller scores several
    predictions against one ground truth (computed here otherwise).
    """
    pred, gt = _same_shape(pred, gt)
    if gt_mask is None:
        gt_mask = gt_valid_mask(gt, min_depth, max_depth, crop)
    mask = gt_mask & ~np.isnan(pred)  # +-inf stays: clipped to [min_depth, max_depth] below
    g = gt[mask].astype(np.float32, copy=False)
    p = np.clip(pred[mask].astype(np.float32, copy=False), min_depth, max_depth)
    gt_ok = int(np.count_nonzero(gt_mask))
    coverage = p.size / gt_ok if gt_ok else float("nan")
    if bins is None:
        total = binned_sums(p, g, None, 1)[0]
        return FrameScore(total.metrics(), {}, p, g, coverage)
    edges = np.asarray(bins, dtype=np.float64)
    # bin index by counting passed edges: a few vectorised compares beat searchsorted's per-element search
    if len(edges) > 120:
        raise MetricsError(f"bins: {len(edges) - 1} distance bins; at most 119")
    idx8 = np.full(g.shape, -1, np.int8)
    for e in edges[:-1]:
        idx8 += g >= e
    idx8[g >= edges[-1]] = len(edges) - 1
    idx = idx8.astype(np.intp)
    inside = (idx >= 0) & (idx < len(edges) - 1)
    if inside.all():  # the bins cover every valid depth: the frame's totals are the bins' sum
        per = binned_sums(p, g, idx, len(edges) - 1)
        total = MetricSums()
        for s in per:
            total.merge(s)
    else:
        per = binned_sums(p[inside], g[inside], idx[inside], len(edges) - 1)
        total = binned_sums(p, g, None, 1)[0]
    keyed = {(float(edges[i]), float(edges[i + 1])): s for i, s in enumerate(per)}
    return FrameScore(total.metrics(), keyed, p, g, coverage)


def merge_bins(into: dict, bins: dict) -> dict:
    """Accumulate per-bin MetricSums (from ``score_frame``) into ``into``."""
    for key, s in bins.items():
        into.setdefault(key, MetricSums()).merge(s)
    return into


def metrics_by_distance(pred: np.ndarray, gt: np.ndarray, bins=DEFAULT_BINS, min_depth: float = MIN_DEPTH,
                        max_depth: float = MAX_DEPTH, crop: str | None = None,
                        sums: dict | None = None) -> dict:
    """Pool one frame into per-bin ``MetricSums`` keyed by (lo, hi) of the ground-truth depth.

    Pass the returned dict back as ``sums`` to accumulate over frames.
    """
    score = score_frame(pred, gt, min_depth, max_depth, crop, bins)
    return merge_bins({} if sums is None else sums, score.bins)
