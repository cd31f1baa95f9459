"""Tables and pictures of an evaluation: per-frame CSV, the peers' summary table, plots (Agg).

Used by the KITTI evaluation, the bag evaluation and the demo, so all three look the same.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..metrics import METRIC_LABELS, METRIC_NAMES, MetricSums

# DESIGN.md section 6: KITTI Eigen split, Garg crop, 80 m (AbsRel, SqRel, RMSE, delta1; None = not reported)
PEERS = {
    "BTS": (0.061, 0.261, 2.834, 0.954),
    "AdaBins": (0.058, 0.190, 2.360, 0.964),
    "iDisc": (0.053, 0.175, 2.216, 0.971),
    "ECoDepth": (0.054, 0.171, 2.173, 0.970),
    "GEDepth": (0.048, 0.142, 2.044, None),
    "VLE paper (CVPR 2025)": (0.050, 0.159, 2.054, 0.974),
}
PEER_COLUMNS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "d1", "d2", "d3")


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}"


def peers_table(ours: dict, ours_name: str = "edepth_ros (this run)", extra_rows: dict | None = None) -> str:
    """Markdown table in the peers' layout (AbsRel, SqRel, RMSE, RMSE log, d1-d3), ours first."""
    head = "| method | " + " | ".join(METRIC_LABELS[k] for k in PEER_COLUMNS) + " |"
    sep = "|---|" + "---:|" * len(PEER_COLUMNS)
    rows = [head, sep, f"| **{ours_name}** | " + " | ".join(_fmt(ours.get(k)) for k in PEER_COLUMNS) + " |"]
    for name, m in (extra_rows or {}).items():
        rows.append(f"| {name} | " + " | ".join(_fmt(m.get(k)) for k in PEER_COLUMNS) + " |")
    for name, (a, s, r, d1) in PEERS.items():
        vals = {"abs_rel": a, "sq_rel": s, "rmse": r, "d1": d1}
        rows.append(f"| {name} (published) | " + " | ".join(_fmt(vals.get(k)) for k in PEER_COLUMNS) + " |")
    return "\n".join(rows)


def metrics_table(rows: dict, names: Sequence[str] = METRIC_NAMES) -> str:
    """Markdown table: one row per entry of ``rows`` (name -> metric dict), all nine metrics."""
    head = "| | " + " | ".join(METRIC_LABELS[k] for k in names) + " |"
    sep = "|---|" + "---:|" * len(names)
    out = [head, sep]
    for name, m in rows.items():
        out.append(f"| {name} | " + " | ".join(_fmt(m.get(k)) for k in names) + " |")
    return "\n".join(out)


def distance_table(bins: dict) -> str:
    """Markdown table of pooled metrics per ground-truth distance bin ((lo, hi) -> MetricSums)."""
    head = "| distance (m) | pixels | AbsRel | RMSE | d1<1.25 |"
    out = [head, "|---|---:|---:|---:|---:|"]
    for (lo, hi), s in sorted(bins.items()):
        m = s.metrics()
        out.append(f"| {lo:g}-{hi:g} | {s.n} | {_fmt(m['abs_rel'])} | {_fmt(m['rmse'])} | {_fmt(m['d1'])} |")
    return "\n".join(out)


NO_DEPTH = "frames with no depth at any ground-truth pixel (NaN metrics, left out of the means)"


def no_depth_note(score, out) -> str:
    """A frame's ``note``: why it has no depth at any ground-truth pixel ("" when it has), so a lens
    cap or a blinded camera is said in the row instead of dropping silently out of the mean."""
    return "" if score.pixels else (getattr(out, "problem", "") or "no depth at any ground-truth pixel")


def no_depth_line(per_frame: list[dict], key: str, listed: int = 10) -> str:
    """The summary's line counting such frames, the first ``listed`` named by ``key`` with their note
    (every one is in per_frame.csv)."""
    rows = [r for r in per_frame if r.get("note")]
    more = f"; {len(rows) - listed} more in per_frame.csv" if len(rows) > listed else ""
    return f"- {NO_DEPTH}: {len(rows)}" + "".join(f"; {r[key]}: {r['note']}" for r in rows[:listed]) + more


def latency_stats(values_ms: Iterable[float]) -> dict:
    v = np.asarray([x for x in values_ms if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"n": 0}
    return {"n": int(v.size), "mean_ms": float(v.mean()), "median_ms": float(np.median(v)),
            "p95_ms": float(np.percentile(v, 95)), "max_ms": float(v.max())}


def write_csv(path: Path, rows: list[dict]) -> None:
    """CSV with the union of the rows' keys as columns (first row's order first)."""
    path = Path(path)
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def write_json(path: Path, data) -> None:
    def default(o):
        if isinstance(o, (np.floating, np.integer)):
            return o.item()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(type(o).__name__)

    Path(path).write_text(json.dumps(_strict(data), indent=2, default=default, allow_nan=False) + "\n")


def _strict(obj):
    """NaN / inf become null: bare NaN is not JSON, and strict parsers (jq, browsers) refuse it."""
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if isinstance(obj, (float, np.floating)) and not math.isfinite(obj):
        return None
    return obj


# ------------------------------------------------------------------------------- pictures

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_error_by_distance(bins: dict, path: Path, title: str = "Error by ground-truth distance") -> Path:
    """AbsRel and RMSE per distance bin (bars) with pixel counts."""
    plt = _plt()
    keys = sorted(bins)
    labels = [f"{lo:g}-{hi:g}" for lo, hi in keys]
    ms = [bins[k].metrics() for k in keys]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    x = np.arange(len(keys))
    ax[0].bar(x, [m["abs_rel"] for m in ms], color="tab:blue")
    ax[0].set_ylabel("AbsRel")
    ax[1].bar(x, [m["rmse"] for m in ms], color="tab:orange")
    ax[1].set_ylabel("RMSE (m)")
    for a in ax:
        a.set_xticks(x, labels)
        a.set_xlabel("ground-truth depth (m)")
        a.grid(axis="y", alpha=0.3)
    for i, k in enumerate(keys):
        ax[0].annotate(_count(bins[k].n) + " px", (i, ms[i]["abs_rel"] if math.isfinite(ms[i]["abs_rel"]) else 0),
                       ha="center", va="bottom", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e3 else str(n)


class PredVsTrue:
    """2-D histogram of (true, predicted) depth pooled over frames, drawn as a density plot."""

    def __init__(self, max_depth: float = 80.0, bins: int = 160):
        self.edges = np.linspace(0.0, max_depth, bins + 1)
        self.hist = np.zeros((bins, bins), dtype=np.int64)

    def add(self, pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Add matched pixels: 1-D arrays (as in ``metrics.FrameScore``), or images with a mask."""
        if mask is not None:
            pred, gt = pred[mask], gt[mask]
        nb = len(self.edges) - 1
        scale = np.float32(nb / self.edges[-1])
        i = np.minimum((np.asarray(gt, np.float32) * scale).astype(np.int32), nb - 1)  # depths are > 0
        j = np.minimum((np.asarray(pred, np.float32) * scale).astype(np.int32), nb - 1)
        i *= nb
        i += j
        self.hist += np.bincount(i, minlength=nb * nb).reshape(nb, nb)

    def plot(self, path: Path, title: str = "Predicted vs true depth") -> Path:
        plt = _plt()
        from matplotlib.colors import LogNorm

        fig, ax = plt.subplots(figsize=(5, 4.6))
        hist = self.hist.T.astype(float)
        hist[hist == 0] = np.nan
        e = self.edges
        top = max(2.0, float(np.nanmax(hist)) if np.isfinite(hist).any() else 2.0)
        im = ax.pcolormesh(e, e, hist, norm=LogNorm(vmin=1, vmax=top), cmap="viridis", shading="flat")
        ax.plot([0, e[-1]], [0, e[-1]], "w--", lw=1)
        ax.plot([0, e[-1]], [0, e[-1] * 1.25], ":", color="0.7", lw=0.8)
        ax.plot([0, e[-1]], [0, e[-1] / 1.25], ":", color="0.7", lw=0.8)
        ax.set_xlabel("true depth (m)")
        ax.set_ylabel("predicted depth (m)")
        ax.set_xlim(0, e[-1])
        ax.set_ylim(0, e[-1])
        fig.colorbar(im, ax=ax, label="pixels")
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return Path(path)


def plot_examples(rows: list[dict], path: Path, max_depth: float = 80.0) -> Path:
    """Grid RGB | embodied | prediction | error (|pred - gt| / gt) per row.

    rows: dicts with title, rgb, embodied, pred, gt (arrays of one frame at image size).
    """
    plt = _plt()
    n = len(rows)
    h, w = rows[0]["rgb"].shape[:2]
    aspect = h / w
    fig, axes = plt.subplots(n, 4, figsize=(16, 4 * aspect * n * 1.15 + 1.2), squeeze=False,
                             layout="constrained")
    depth_im = err_im = None
    for i, r in enumerate(rows):
        gt = r["gt"]
        err = np.full(gt.shape, np.nan, np.float32)
        ok = np.isfinite(gt) & (gt > 1e-3) & np.isfinite(r["pred"])
        err[ok] = np.abs(r["pred"][ok] - gt[ok]) / gt[ok]
        if ok.mean() < 0.3:  # sparse LiDAR ground truth: widen each point so the picture shows it
            import cv2

            err = cv2.dilate(np.where(ok, err, -1.0).astype(np.float32), np.ones((5, 5), np.uint8))
            err[err < 0] = np.nan
        panels = [
            (r["rgb"], None, "RGB"),
            (r["embodied"], "turbo_r", "embodied depth"),
            (r["pred"], "turbo_r", "prediction"),
            (err, "magma", "AbsRel error (0-0.5) at GT pixels"),
        ]
        for j, (img, cmap, name) in enumerate(panels):
            ax = axes[i, j]
            if cmap is None:
                ax.imshow(img)
            elif cmap == "magma":
                ax.set_facecolor("0.55")  # grey: magma's 0 is black
                err_im = ax.imshow(img, cmap=cmap, vmin=0, vmax=0.5, interpolation="nearest")
            else:
                ax.set_facecolor("black")
                depth_im = ax.imshow(img, cmap=cmap, vmin=0, vmax=max_depth)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
        axes[i, 0].set_ylabel(r["title"], fontsize=8)
    if depth_im is not None:
        fig.colorbar(depth_im, ax=axes[-1, 1:3], orientation="horizontal", fraction=0.08, aspect=40,
                     label="depth (m); black: no estimate")
    if err_im is not None:
        fig.colorbar(err_im, ax=axes[-1, 3], orientation="horizontal", fraction=0.08, aspect=20,
                     label="|pred - gt| / gt; grey: no ground truth")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def pick_best_median_worst(per_frame: list[dict], key: str = "abs_rel") -> list[tuple[str, int]]:
    """Indices of the best, median and worst frames by ``key`` (finite values only)."""
    vals = [(r[key], i) for i, r in enumerate(per_frame) if isinstance(r.get(key), float) and math.isfinite(r[key])]
    if not vals:
        return []
    vals.sort()
    picks = [("best", vals[0][1]), ("median", vals[len(vals) // 2][1]), ("worst", vals[-1][1])]
    seen, out = set(), []
    for name, i in picks:
        if i not in seen:
            seen.add(i)
            out.append((name, i))
    return out


def pooled(bins: dict) -> MetricSums:
    total = MetricSums()
    for s in bins.values():
        total.merge(s)
    return total
