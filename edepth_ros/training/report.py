"""Measurements for docs/network_and_training.md, each printing JSON (and a PNG where useful):

    python -m edepth_ros.training.report costs                  # params + GFLOPs of every config
    python -m edepth_ros.training.report ablation --steps 360 --seeds 0 1 2   # held-out synthetic ablation
    python -m edepth_ros.training.report kitti --checkpoint models/demo/model.pt
    python -m edepth_ros.training.report curves --run models/demo --png docs/img/demo_training.png

``costs``: parameters and forward GFLOPs (torch.utils.flop_counter counts 2 FLOPs per multiply-add; one image) of the exported graph
(DeployNet) of each registered config at its own resolution, beside Depth Anything V2-S's ViT-S/14
encoder at 308 x 308 (built with timm, random weights; its DPT head is not counted).
``ablation``: full model vs (a) embodied depth alone, (b) no depth branch, (c) no text VAE, with
equal training budgets, on held-out scene seeds; ``--seeds 0 1 2`` trains each variant once per seed
and reports the mean and the spread.
``kitti``: a checkpoint on the real KITTI frames with annotated depth (Garg crop, 1e-3..80 m),
embodied depth from the nominal mounting (1.65 m, level) and the 2011_09_26 calibration.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..metrics import METRIC_NAMES, depth_metrics, mean_metrics
from ..safe_paths import output_file, output_folder


# ---------------------------------------------------------------------------- costs
def model_costs(names=None) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from ..network import MODEL_CONFIGS, DeployNet, build_model

    out = {}
    for name in names or list(MODEL_CONFIGS):
        net = build_model(name).eval()
        h, w = net.cfg.input_size
        deploy = DeployNet(net).eval()
        rgb = torch.zeros(1, h, w, 3, dtype=torch.uint8)
        emb = torch.zeros(1, 2, h, w)
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            deploy(rgb, emb)
        deploy_params = sum(p.numel() for p in deploy.parameters())
        text_params = sum(p.numel() for p in net.text_vae.parameters()) if net.text_vae is not None else 0
        out[name] = dict(backbone=net.cfg.backbone, input=[h, w], params_m=round(deploy_params / 1e6, 2),
                         params_deployed_m=round((deploy_params - text_params) / 1e6, 2),
                         gflops=round(fc.get_total_flops() / 1e9, 2), gmacs=round(fc.get_total_flops() / 2e9, 2))
        del net, deploy
    import timm

    vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=308).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        vit(torch.zeros(1, 3, 308, 308))
    out["depth_anything_v2_s_encoder"] = dict(
        backbone="vit_small_patch14_dinov2 (DA-V2-S encoder; DPT head not counted)", input=[308, 308],
        params_m=round(sum(p.numel() for p in vit.parameters()) / 1e6, 2), gflops=round(fc.get_total_flops() / 1e9, 2),
        gmacs=round(fc.get_total_flops() / 2e9, 2),
        note="published DA-V2-S total: 24.8 M params")
    return out


# ---------------------------------------------------------------------------- ablation
VARIANTS = {  # relative to the config's model section
    "full": {},
    "no_depth_branch": {"depth_branch": False, "embodied_residual": False},
    "no_text_vae": {"text_vae": False},
    "full_no_residual": {"embodied_residual": False},
    "no_text_vae_no_residual": {"text_vae": False, "embodied_residual": False},
    # RGB only: WorDepth's own ablation (does the text VAE help a network with no geometry?)
    "no_depth_no_text": {"depth_branch": False, "embodied_residual": False, "text_vae": False},
}


class AblationError(ValueError):
    """A bad ablation request (--steps, --seeds, --variants, a config without a held-out set), named
    before any data is built or any variant trained."""


# the held-out set every variant is scored on, per data.kind
HELDOUT_KEYS = {"synthetic": "val_seeds", "kitti": "val_split", "bag": "val_bag"}


def check_ablation(base, steps, variants, seeds) -> list:
    """The seeds as ints, or AblationError naming the argument or the config key and what to do."""
    from ..network.config import POSITIVE_INT
    from .config import TRAIN_RULES

    if not POSITIVE_INT[0](steps):
        raise AblationError(f"ablation --steps: {steps!r} must be a positive number of training steps (each "
                            "variant and seed trains that many; 0 would fall back on the config's epochs)")
    if not seeds:
        raise AblationError("ablation --seeds: give at least one training seed")
    ok, what = TRAIN_RULES["seed"]
    for s in seeds:
        if not ok(s):
            raise AblationError(f"ablation --seeds: {s!r}: expected {what}")
    for arg, given in (("--seeds", list(seeds)), ("--variants", list(variants or []))):
        twice = sorted({str(x) for x in given if given.count(x) > 1})
        if twice:
            raise AblationError(f"ablation {arg}: {', '.join(twice)} given twice; each is one training run into "
                                "its own folder (a repeat would retrain it and count it twice in the mean and the "
                                f"spread): give distinct {arg[2:]}")
    for name in variants or VARIANTS:
        if name not in VARIANTS:
            raise AblationError(f"ablation --variants: unknown variant '{name}'; known: {sorted(VARIANTS)}")
    kind = base.data["kind"]
    key = HELDOUT_KEYS[kind]
    if not base.data.get(key):
        source = base.source or "the config"
        raise AblationError(f"data.{key}: {source} has no held-out set, and the ablation scores every variant "
                            f"(and the embodied depth alone) on it: give data.{key}"
                            + (" (scene seeds never trained on, e.g. {start: 1000, count: 8})"
                               if kind == "synthetic" else ""))
    return [int(s) for s in seeds]


def ablation(config, steps: int, out_dir: Path, variants=None, seeds=(0,)) -> dict:
    """Train every variant once per training seed on the same data; held-out metrics, mean and spread.

    A seed changes the initial weights, the batch order and the text-step draws (the data and its
    augmentation stay the same for every run). One run per variant cannot separate variants closer
    than the run-to-run spread, so ``seeds`` should be several. Variants with a text VAE are also
    scored with each frame's own description latent (the paper's inference) beside the running
    latent the exported graph bakes in (the headline figures).
    """
    from .config import TrainConfig
    from .trainer import embodied_baseline, evaluate, make_datasets, train
    from ..network import load_checkpoint

    base = copy.deepcopy(config) if isinstance(config, TrainConfig) else TrainConfig.load(config)
    seeds = check_ablation(base, steps, variants, list(seeds))  # before any scene is rendered
    base.train["max_steps"] = steps
    base.train["val_every"] = 10 ** 6  # validate once, at the end
    train_set, val_set = make_datasets(base, progress=True)
    results = {"embodied_only": embodied_baseline(val_set)}
    spread, runs, per_image_text, timings = {}, {}, {}, {}
    for name in variants or VARIANTS:
        runs[name] = []
        for seed in seeds:
            cfg = copy.deepcopy(base)
            for k, v in VARIANTS[name].items():
                setattr(cfg.model, k, v)
            cfg.train["seed"] = seed
            cfg.output = out_dir / name / f"seed{seed}"
            cfg.publish = None
            t0 = time.time()
            train(cfg, progress=True, datasets=(train_set, val_set))
            run = dict(seed=seed, seconds=round(time.time() - t0, 1))
            net = load_checkpoint(cfg.output / "model.pt")
            run["metrics"] = evaluate(net, val_set, batch_size=8)
            if net.text_vae is not None:
                run["metrics_per_image_text"] = evaluate(net, val_set, batch_size=8, use_text=True)
            runs[name].append(run)
        timings[name] = [r["seconds"] for r in runs[name]]
        results[name], spread[name] = _mean_std([r["metrics"] for r in runs[name]])
        if "metrics_per_image_text" in runs[name][0]:
            per_image_text[name] = _mean_std([r["metrics_per_image_text"] for r in runs[name]])[0]
    source = base.source if isinstance(config, TrainConfig) else config
    heldout_key = HELDOUT_KEYS[base.data["kind"]]
    summary = dict(config=str(source), steps=steps, batch_size=base.train["batch_size"], seeds=seeds,
                   train_frames=len(train_set), heldout_frames=len(val_set),
                   heldout_seeds=base.data.get("val_seeds"),  # synthetic; KITTI / bags: heldout names the set
                   heldout={f"data.{heldout_key}": base.data[heldout_key]}, seconds=timings, metrics=results,
                   metrics_std_over_seeds=spread, metrics_per_image_text=per_image_text, runs=runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ablation.json").write_text(json.dumps(summary, indent=1))
    _plot_ablation(results, out_dir / "ablation.png", spread, len(seeds),
                   "held-out synthetic scenes" if base.data["kind"] == "synthetic" else f"held-out frames "
                   f"(data.{heldout_key})")
    return summary


def _mean_std(metric_dicts: list) -> tuple[dict, dict]:
    """Per metric: mean and (population) standard deviation over runs."""
    keys = metric_dicts[0].keys()
    return ({k: float(np.mean([m[k] for m in metric_dicts])) for k in keys},
            {k: float(np.std([m[k] for m in metric_dicts])) for k in keys})


def _plot_ablation(results: dict, path: Path, spread: dict | None = None, n_seeds: int = 1,
                   heldout: str = "held-out synthetic scenes") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spread = spread or {}
    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key, label in ((axes[0], "abs_rel", "AbsRel (lower is better)"), (axes[1], "d1", "delta < 1.25 (higher)")):
        err = [spread[n][key] if n in spread else 0.0 for n in names]
        ax.bar(range(len(names)), [results[n][key] for n in names], yerr=err, capsize=3,
               color=["#888", "#2a7", "#c84", "#48c", "#a5c", "#cc4"][: len(names)])
        ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=8)
        ax.set_title(label, fontsize=9)
    axes[1].set_ylim(min(results[n]["d1"] for n in names) - 0.05, 1.0)
    runs = f"mean +- std over {n_seeds} training seeds" if n_seeds > 1 else "one training run per variant"
    fig.suptitle(f"{heldout} ({runs})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- KITTI sample frames
def kitti_samples(checkpoint: str, kitti_dir: Path, plane_height: float = 1.65, out_png: Path | None = None) -> dict:
    """Metrics of a checkpoint (and of the embodied depth alone) on the annotated KITTI frames."""
    import cv2

    from ..network import load_checkpoint
    from .augment import crop_window, kb_crop_window
    from .datasets import KittiDataset

    ann = kitti_dir / "annotated_depth"
    names = sorted(p.name for p in (ann / "rgb").glob("*.png"))
    if not names:
        raise FileNotFoundError(f"no frames in {ann / 'rgb'} (set EDEPTH_KITTI_SAMPLES)")
    net = load_checkpoint(checkpoint)
    split = Path(os.environ.get("TMPDIR", "/tmp")) / f"edepth_kitti_sample_split_{os.getpid()}.txt"
    split.write_text("".join(f"rgb/{n} depth/{n} 721.5377\n" for n in names))
    ds = KittiDataset(str(split), str(ann), str(ann), net.cfg.input_size,
                      calib_dir=str(kitti_dir / "raw_calib" / "2011_09_26"), plane_height=plane_height)
    per_model, per_embodied, pictures = [], [], []
    for i in range(len(ds)):
        frame = ds.base(i)
        H, W = frame.labels.shape
        x0, y0, w0, h0 = kb_crop_window(H, W)
        x, y, w, h = crop_window(h0, w0, net.cfg.input_size, None)
        x, y = x + x0, y + y0
        s = ds[i]
        with torch.no_grad():
            out = net(torch.as_tensor(s["rgb"])[None], torch.as_tensor(s["embodied"])[None], path="image")
        pred = np.full((H, W), np.nan, np.float32)
        pred[y:y + h, x:x + w] = cv2.resize(out["depth"][0, 0].numpy(), (w, h), interpolation=cv2.INTER_LINEAR)
        emb = np.full((H, W), np.nan, np.float32)
        e = s["embodied"][0]
        emb[y:y + h, x:x + w] = cv2.resize(np.where(e > 0, e, np.nan), (w, h), interpolation=cv2.INTER_NEAREST)
        per_model.append(depth_metrics(pred, frame.depth, crop="garg"))
        per_embodied.append(depth_metrics(emb, frame.depth, crop="garg"))
        pictures.append((frame.rgb, pred, frame.depth))
    split.unlink(missing_ok=True)
    if out_png:
        _plot_kitti(pictures, out_png)
    keep = lambda m: {k: round(float(m[k]), 4) for k in METRIC_NAMES}  # noqa: E731
    return dict(checkpoint=str(checkpoint), frames=names, model=keep(mean_metrics(per_model)),
                embodied_only=keep(mean_metrics(per_embodied)), per_frame_model=[keep(m) for m in per_model])


def _plot_kitti(pictures, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(pictures), 2, figsize=(12, 1.9 * len(pictures)))
    for row, (rgb, pred, gt) in zip(np.atleast_2d(axes), pictures):
        row[0].imshow(rgb)
        row[1].imshow(pred, cmap="magma_r", vmin=0, vmax=60)
        v, u = np.nonzero(np.isfinite(gt) & (gt > 0))
        row[0].scatter(u[::7], v[::7], c=gt[v[::7], u[::7]], s=0.3, cmap="magma_r", vmin=0, vmax=60)
        for a in row:
            a.axis("off")
    axes.flat[0].set_title("image + annotated depth", fontsize=9)
    axes.flat[1].set_title("demo model (trained on synthetic scenes only)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------- training curves
def plot_curves(run_dir: Path, out_png: Path) -> dict:
    """Training loss (image / text steps) and held-out AbsRel / delta1 of a run folder (log.csv, val.csv)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(run_dir / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    val = []
    if (run_dir / "val.csv").is_file():
        with open(run_dir / "val.csv") as fh:
            val = list(csv.DictReader(fh))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for path, colour in (("image", "#2a7"), ("text", "#c84")):
        pts = [(int(r["step"]), float(r["silog"])) for r in rows if r["path"] == path]
        if pts:
            axes[0].plot(*zip(*pts), ".", color=colour, ms=3, label=f"SILog, {path} path")
    axes[0].set_xlabel("step")
    axes[0].legend(fontsize=8)
    if val:
        steps = [int(v["step"]) for v in val]
        axes[1].plot(steps, [float(v["abs_rel"]) for v in val], "o-", label="AbsRel")
        axes[1].plot(steps, [float(v["d1"]) for v in val], "s-", label="delta < 1.25")
        axes[1].set_xlabel("step")
        axes[1].set_title("held-out scenes", fontsize=9)
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return dict(run=str(run_dir), png=str(out_png), steps=len(rows), validations=len(val))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m edepth_ros.training.report", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("costs")
    c.add_argument("--names", nargs="*")
    a = sub.add_parser("ablation")
    a.add_argument("--config", default="models/demo.yaml")
    a.add_argument("--steps", type=int, default=120)
    a.add_argument("--out", default="runs/ablation", type=output_folder)
    a.add_argument("--variants", nargs="*")
    a.add_argument("--seeds", nargs="*", type=int, default=[0], help="training seeds; one run per variant and seed")
    k = sub.add_parser("kitti")
    k.add_argument("--checkpoint", default="models/demo/model.pt")
    k.add_argument("--kitti", default=os.environ.get("EDEPTH_KITTI_SAMPLES", "../shared/kitti"))
    k.add_argument("--png", default=None, type=output_file)
    cu = sub.add_parser("curves")
    cu.add_argument("--run", default="models/demo")
    cu.add_argument("--png", default="docs/img/demo_training.png", type=output_file)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.what == "costs":
        res = model_costs(args.names)
    elif args.what == "curves":
        res = plot_curves(Path(args.run), Path(args.png))
    elif args.what == "ablation":
        from .config import TrainConfigError
        from .datasets import DatasetError

        try:
            res = ablation(args.config, args.steps, Path(args.out), args.variants, args.seeds)
        except (AblationError, TrainConfigError, DatasetError) as exc:  # named and what to do: no traceback
            print(f"report ablation: {exc}", file=sys.stderr)
            return 2
    else:
        res = kitti_samples(args.checkpoint, Path(args.kitti), out_png=Path(args.png) if args.png else None)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
