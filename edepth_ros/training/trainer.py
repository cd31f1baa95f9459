"""The training loop: alternating text / image paths, logs, atomic checkpoints, resume, AMP, DDP.

``train(config, resume=False)`` runs single-process, or one process of a DDP group when started by
``torchrun`` (WORLD_SIZE > 1; gloo on CPU, NCCL on GPUs). Files in ``output.dir``:
    latest.pt  (model + optimizer + step: what --resume continues; written atomically)
    best.pt    (lowest validation AbsRel), model.pt (final weights only, for export)
    log.csv    (one row per logged step), val.csv (one row per validation), tb/ (TensorBoard)
    previous_run/  (a fresh run into a folder holding an earlier run's checkpoints moves that run here)
A batch without a ground-truth pixel the loss can use is skipped (no optimiser step), counted in the
summary's ``skipped_steps`` and logged with path ``skipped``. Ctrl-C saves latest.pt and raises
TrainingInterrupted (``edepth train`` exits 130 with one line saying how to resume).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from ..network import DepthNet, build_model
from ..network.checkpoint import CheckpointError, load_state_strict, read_checkpoint, save_checkpoint
from ..network.text import encoder_record
from .config import LOSS_MIN_DEPTH, TEXT_DEFAULTS, TrainConfig, TrainConfigError, check_schedule_trains_image
from .datasets import collate
from .losses import confidence_loss, silog_loss, valid_mask
from .schedule import PathSchedule


class TrainingDiverged(RuntimeError):
    """The loss, the gradient or the weights became NaN/inf; the message names the step and the last
    good checkpoint."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: latest.pt holds the last completed step (saved on the way out when a
    step was done since the last checkpoint); the message says so and how to resume."""

    def __init__(self, message: str, step: int, saved: bool):
        super().__init__(message)
        self.step, self.saved = step, saved


@contextlib.contextmanager
def sigint_deferred():
    """Ctrl-C inside holds until the block ends. Around the optimiser step and the step counter: an
    interrupt in AdamW's loop left some tensors updated and others not, and one after the update but
    before ``step += 1`` saved step n's weights as step n - 1 (a resume then repeated a step)."""
    if threading.current_thread() is not threading.main_thread():  # signals only reach the main thread
        yield
        return
    caught: list = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(signal.SIGINT, caught[0])
        elif caught and previous == signal.SIG_DFL:  # default action (terminate), now that the step is whole
            signal.raise_signal(signal.SIGINT)


# what a fresh run (no --resume) writes in output.dir; an earlier run's are set aside first
CHECKPOINT_FILES = ("latest.pt", "best.pt", "model.pt")
RUN_FILES = CHECKPOINT_FILES + ("log.csv", "val.csv", "tb")
PREVIOUS_RUN = "previous_run"


LOG_FIELDS = ["step", "epoch", "path", "loss", "silog", "kl_text", "kl_eps", "conf", "lr", "grad_norm",
              "sec_per_step", "rss_mb"]
VAL_FIELDS = ["step", "epoch", "abs_rel", "sq_rel", "rmse", "rmse_log", "silog", "log10", "d1", "d2", "d3"]


# ---------------------------------------------------------------------------- set-up helpers
def dist_info() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment (1 process without it)."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def make_datasets(cfg: TrainConfig, progress: bool = True):
    """(train, val or None) datasets from the config's data section."""
    from ..embodied import EmbodiedConfig
    from .augment import AugmentConfig
    from .datasets import BagDataset, KittiDataset, SyntheticDataset, TextSource

    d = cfg.data
    aug = AugmentConfig.from_dict(d.get("augment"))
    emb = EmbodiedConfig.from_dict(d["embodied"]) if d.get("embodied") else None
    text = TextSource(cfg.text["encoder"], cfg.text["model"], cfg.text["cache_dir"], cfg.text["max_objects"]) \
        if cfg.model.text_vae else None
    if text is not None:  # before rendering and describing every scene: one probe sentence (cached)
        dim = int(text.cache.get(["a road."]).shape[0])
        if dim != cfg.model.text_dim:
            raise TrainConfigError(f"model.text_dim: {cfg.model.text_dim} but text.encoder '{cfg.text['encoder']}' "
                                   f"gives {dim}-d embeddings; set model.text_dim: {dim}")
    common = dict(input_size=cfg.model.input_size, embodied=emb, text=text, seed=cfg.train["seed"],
                  max_depth=cfg.model.max_depth)
    if d["kind"] == "synthetic":
        kw = dict(render_scale=d.get("render_scale", 1.5), frame_stride=d.get("frame_stride", 7), progress=progress)
        train = SyntheticDataset(d["train_seeds"], d["frames_per_seed"], augment=aug, **kw, **common)
        val = SyntheticDataset(d["val_seeds"], d["val_frames_per_seed"], augment=None, **kw, **common) \
            if d["val_seeds"] else None
    elif d["kind"] == "kitti":
        kw = dict(raw_root=d["raw_root"], gt_root=d.get("gt_root"), calib_dir=d.get("calib_dir"),
                  plane_height=d.get("plane_height", 1.65), plane_pitch=d.get("plane_pitch", 0.0),
                  pre_crop=None if d.get("crop", "kb") == "none" else "kb",
                  require_depth=True)  # frames without ground truth would train / be scored on nothing
        train = KittiDataset(d["train_split"], augment=aug, **kw, **common)
        val = KittiDataset(d["val_split"], augment=None, **kw, **common) if d.get("val_split") else None
    else:
        kw = {k: d[k] for k in ("image_topic", "camera_info_topic", "depth_topic", "lidar_topic", "labels_topic",
                                "ground_frame", "plane_height", "plane_pitch", "max_frames", "max_skew", "tf_max_age")
              if d.get(k) is not None}
        train = BagDataset(d["bag"], augment=aug, **kw, **common)
        val = BagDataset(d["val_bag"], augment=None, **kw, **common) if d.get("val_bag") else None
    for ds in (train, val):
        if ds is not None:
            ds.prepare_text(progress)
    return train, val


def first_nonfinite(net) -> Optional[str]:
    """Name of the first parameter or buffer holding NaN/inf, or None when all are finite."""
    for name, t in (net.module if hasattr(net, "module") else net).state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None


def _check_optimizer_state(opt, latest) -> None:
    """The restored AdamW moments fit their parameters and are finite: the checkpoint's digest
    covers the weights only, and a damaged moment would stop the run later as a divergence
    (blaming the learning rate) or a shape error inside AdamW."""
    for group in opt.param_groups:
        for p in group["params"]:
            for name, t in opt.state.get(p, {}).items():
                if not torch.is_tensor(t) or name == "step":
                    continue
                if t.shape != p.shape or not bool(torch.isfinite(t).all()):
                    what = f"shape {tuple(t.shape)} for a parameter of {tuple(p.shape)}" if t.shape != p.shape \
                        else "values that are not finite"
                    raise CheckpointError(f"'{latest}': optimizer state '{name}' has {what}; the file is "
                                          "damaged: resume from an earlier checkpoint or start a fresh output.dir")


def _require_same_run(before, now, latest) -> None:
    """--resume continues the same run: the training data, its order and the batch size decide
    which batches were done, so a change there would skip or repeat data silently. Steps, epochs,
    logging, loss weights and the validation set may change (to train longer, say)."""
    if not isinstance(before, dict):  # a checkpoint from before train_config was stored
        return

    def part(cfg, section, key=None):
        d = cfg.get(section) if isinstance(cfg.get(section), dict) else {}
        if key is None:  # the training data; the validation set may change
            return {k: v for k, v in d.items() if not k.startswith("val_")}
        if section == "text":  # unset keys are the defaults: a section left out equals one that spells them
            return {**TEXT_DEFAULTS, **d}.get(key)
        return d.get(key)

    # the text section decides the sentences and their encoder, so the embeddings trained on; where the
    # embeddings are cached and where the encoder's folder lies (text.model) may move
    keys = [("data", None), ("train", "batch_size"), ("train", "seed")] + \
        [("text", k) for k in sorted(TEXT_DEFAULTS) if k not in ("cache_dir", "model")]
    changed = [".".join(k for k in key if k) for key in keys if part(before, *key) != part(now, *key)]
    if changed:
        raise TrainConfigError(f"--resume: {', '.join(changed)} changed since '{latest}' was written; the "
                               "batches already done would not be those of this config. Resume with the "
                               "original values, or start a fresh output.dir")


def set_aside_earlier_run(out_dir: Path) -> Optional[Path]:
    """A fresh run into a folder holding an earlier run's checkpoints: move them (and its logs) to
    ``output.dir/previous_run/`` so an old best.pt or model.pt is never taken for this run's. The
    folder is the demo's (``runs/demo``) and the ablation's, which are retrained on purpose, so it is
    not refused; only the one run before is kept. Returns the folder, or None when there was nothing."""
    import shutil

    found = [n for n in CHECKPOINT_FILES if (out_dir / n).is_file()]
    if not found:
        return None
    prev = out_dir / PREVIOUS_RUN
    replaced = prev.exists() or prev.is_symlink()
    if prev.is_dir() and not prev.is_symlink():
        shutil.rmtree(prev)
    elif replaced:
        prev.unlink()
    prev.mkdir()
    moved = [n for n in RUN_FILES if (out_dir / n).exists()]
    for name in moved:
        os.replace(out_dir / name, prev / name)
    print(f"edepth train: output.dir '{out_dir}' held an earlier run ({', '.join(found)}): moved "
          f"{', '.join(moved)} to '{prev}'{' (replacing the run kept there)' if replaced else ''} so they are "
          "not taken for this run's. To continue that run instead, stop this one, move them back and pass "
          "--resume", file=sys.stderr)
    return prev


def json_safe(value):
    """Plain JSON types (YAML dates become strings): what weights_only torch.load accepts."""
    return json.loads(json.dumps(value, default=str))


def poly_lr(step: int, total: int, lr: float, lr_end: float, power: float = 0.9) -> float:
    frac = min(step, total) / max(total, 1)
    return (lr - lr_end) * (1 - frac) ** power + lr_end


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2 ** 20


# ---------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(net: DepthNet, dataset, batch_size: int = 8, device="cpu", use_text: bool = False) -> dict:
    """Mean per-frame metrics (edepth_ros.metrics, no crop) of the image path on a dataset.

    use_text=False uses the running latent (what the exported graph bakes in); True uses each
    frame's own text latent.
    """
    from ..metrics import METRIC_NAMES, depth_metrics, mean_metrics

    was_training = net.training
    net.eval()
    per_frame = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    for batch in loader:
        text = batch["text"].to(device) if use_text and "text" in batch else None
        out = net(batch["rgb"].to(device), batch["embodied"].to(device), text, path="image")
        pred = out["depth"][:, 0].float().cpu().numpy()
        gt = batch["depth"][:, 0].numpy()
        for p, g in zip(pred, gt):
            per_frame.append(depth_metrics(p, np.where(g > 0, g, np.nan), max_depth=net.cfg.max_depth, crop=None))
    net.train(was_training)
    m = mean_metrics(per_frame)
    return {k: float(m[k]) for k in METRIC_NAMES}


def embodied_baseline(dataset, max_depth: Optional[float] = None) -> dict:
    """Metrics of the embodied depth alone (no network) on the same frames, for the ablation.

    max_depth: the evaluated range; by default the dataset's (model.max_depth, as the network is scored).
    """
    from ..metrics import METRIC_NAMES, depth_metrics, mean_metrics

    per_frame = []
    for i in range(len(dataset)):
        s = dataset[i]
        d = s["embodied"][0]
        per_frame.append(depth_metrics(np.where(d > 0, d, np.nan), np.where(s["depth"][0] > 0, s["depth"][0], np.nan),
                                       max_depth=float(max_depth if max_depth is not None else dataset.max_depth),
                                       crop=None))
    m = mean_metrics(per_frame)
    return {k: float(m[k]) for k in METRIC_NAMES}


# ---------------------------------------------------------------------------- training
def compute_losses(net, batch: dict, path: str, tc: dict, device) -> dict:
    gt = batch["depth"].to(device)
    text = batch.get("text")
    out = net(batch["rgb"].to(device), batch["embodied"].to(device),
              None if text is None else text.to(device), path=path)
    mask = valid_mask(gt, LOSS_MIN_DEPTH, _maxd(net))  # WorDepth/BTS: 0.1 < gt < max_depth
    silog = silog_loss(out["log_depth"], gt, mask, tc["silog_lambda"])
    terms = dict(silog=silog, kl_text=out["kl_text"], kl_eps=out["kl_eps"],
                 conf=confidence_loss(out["conf_logit"], out["log_depth"], gt, mask) if path == "image"
                 else silog.new_zeros(()))
    if path == "text":  # phase 1: VAE + decoder with KL + SILog (the sampler is not in the graph)
        loss = silog + tc["kl_text_weight"] * out["kl_text"]
    else:  # phase 2: sampler + encoders + decoder with SILog (mu, sigma detached: the VAE is frozen)
        loss = silog + tc["kl_eps_weight"] * out["kl_eps"] + tc["conf_weight"] * terms["conf"]
    terms["loss"] = loss
    # pixels the loss could use: a batch with none has nothing to learn from (the step is skipped)
    terms["valid_px"] = mask.sum()
    return terms


def _maxd(net) -> float:
    return float((net.module if hasattr(net, "module") else net).cfg.max_depth)


class CsvLog:
    def __init__(self, path: Path, fields: list[str], append: bool):
        self.path, self.fields = path, fields
        new = not (append and path.is_file())
        self._fh = open(path, "w" if new else "a", newline="")
        self._w = csv.DictWriter(self._fh, fieldnames=fields)
        if new:
            self._w.writeheader()

    def write(self, row: dict) -> None:
        self._w.writerow({k: row.get(k, "") for k in self.fields})
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def frozen_parameters(net) -> dict[str, list]:
    """Per path, the parameters that must not change: the VAE in image steps (phase 2); the
    sampler and the image encoders in text steps (phase 1)."""
    def params(*names):
        return [p for n in names if getattr(net, n, None) is not None for p in getattr(net, n).parameters()]

    return {"image": params("text_vae"), "text": params("sampler", "rgb_encoder", "depth_encoder", "fusion")}


def publish(cfg: TrainConfig, out_dir: Path) -> None:
    """Copy the deployable weights, logs and config to output.publish (e.g. models/demo/), and
    re-export the model.onnx already there so it is not left describing the old weights."""
    import shutil

    cfg.publish.mkdir(parents=True, exist_ok=True)
    for name in ("model.pt", "log.csv", "val.csv"):
        if (out_dir / name).is_file():
            tmp = cfg.publish / f".{name}.tmp"
            shutil.copyfile(out_dir / name, tmp)
            os.replace(tmp, cfg.publish / name)
    if cfg.source is not None:
        shutil.copyfile(cfg.source, cfg.publish / "config.yaml")
    onnx_path = cfg.publish / "model.onnx"
    if onnx_path.is_file() and (cfg.publish / "model.pt").is_file():
        reexport(cfg.publish / "model.pt", onnx_path)


def reexport(checkpoint: Path, onnx_path: Path) -> None:
    """Export `checkpoint` over `onnx_path` at its sidecar's size; on failure say so and how to redo
    it (the trained weights are published either way)."""
    import sys

    from ..model_io import read_sidecar, stale_export

    try:
        spec = read_sidecar(onnx_path)
        if spec.text:  # the deployment's own descriptions cannot be recovered exactly from the sidecar
            raise RuntimeError(f"it was exported with --text; {stale_export(spec, onnx_path)}")
        from ..export import DEFAULT_OPSET, export_onnx

        export_onnx(checkpoint, spec.height, spec.width, None, onnx_path, dynamic_batch=spec.dynamic_batch,
                    opset=spec.opset or DEFAULT_OPSET, exporter=spec.parity.get("exporter") or "torchscript")
        print(f"re-exported {onnx_path} from {checkpoint}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - a failed export must not lose the trained model
        print(f"WARNING: {onnx_path} was not re-exported ({type(exc).__name__}: {exc}); it still holds the "
              f"previous model: run `edepth export --checkpoint {checkpoint} --out {onnx_path} ...`",
              file=sys.stderr)


def train(config, resume: bool = False, progress: bool = True, datasets=None,
          stop_after: Optional[int] = None) -> dict:
    """Train from a config (TrainConfig or YAML path). Returns a summary dict (rank 0's view).

    datasets: optional (train, val) to reuse already built datasets (tests, ablations).
    stop_after: stop (with a checkpoint, as if interrupted) once this global step is reached; the
    schedule still spans the whole run, so ``resume`` continues it exactly.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.load(config)
    tc = cfg.train
    rank, local_rank, world = dist_info()
    use_cuda = tc["device"] == "cuda" or (tc["device"] == "auto" and torch.cuda.is_available())
    if tc["device"] == "cuda" and not torch.cuda.is_available():
        raise TrainConfigError("train.device: cuda asked for but no GPU is visible; use auto or cpu")
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if tc["threads"]:
        torch.set_num_threads(int(tc["threads"]))
    own_group = world > 1 and not dist.is_initialized()
    if own_group:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    out_dir = cfg.output
    latest = out_dir / "latest.pt"
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    if resume and not latest.is_file():
        raise CheckpointError(f"--resume: no checkpoint at '{latest}' (output.dir); start without --resume")

    seed_everything(tc["seed"])  # same initial weights on every rank
    net = build_model(cfg.model).to(device)
    if world > 1 and use_cuda and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        # batch statistics over all ranks (SyncBatchNorm runs on GPUs only; on CPU each rank keeps its own)
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tc["lr"], weight_decay=tc["weight_decay"])
    amp = bool(tc["amp"]) and use_cuda
    amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)

    start_step, start_epoch, best = 0, 0, math.inf
    if resume:
        payload = read_checkpoint(latest)
        if payload["config"] != cfg.model.to_dict():
            changed = sorted(k for k in set(payload["config"]) | set(cfg.model.to_dict())
                             if payload["config"].get(k) != cfg.model.to_dict().get(k))
            raise CheckpointError(f"--resume: '{latest}' was trained with another model config (model."
                                  f"{', model.'.join(changed)} differ); use a fresh output.dir or the original config")
        _require_same_run(payload.get("train_config"), json_safe(cfg.raw), latest)
        load_state_strict(net, payload["model"], source=f"checkpoint '{latest}'")
        try:
            opt.load_state_dict(payload["optimizer"])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"'{latest}': optimizer state does not fit ({exc})") from exc
        _check_optimizer_state(opt, latest)
        if "scaler" in payload and scaler.is_enabled():
            scaler.load_state_dict(payload["scaler"])
        start_step, start_epoch = int(payload["step"]), int(payload["epoch"])
        best = float(payload.get("best_abs_rel", math.inf))

    train_set, val_set = datasets if datasets is not None else make_datasets(cfg, progress and rank == 0)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=tc["seed"],
                                 drop_last=True)
    per_rank_batch = int(tc["batch_size"])
    steps_per_epoch = len(sampler) // per_rank_batch
    if steps_per_epoch == 0:
        raise TrainConfigError(f"train.batch_size: {per_rank_batch} per process is larger than the "
                               f"{len(sampler)} training samples per process; lower it or add data")
    total = tc["max_steps"] or tc["epochs"] * steps_per_epoch
    if total <= 0:  # never write (or publish) an untrained model as if it were trained
        raise TrainConfigError(f"train.max_steps: {tc['max_steps']} must be a positive number of steps")
    epochs = math.ceil(total / steps_per_epoch)
    if cfg.model.text_vae:
        check_schedule_trains_image(tc, epochs)
    schedule = PathSchedule(seed=tc["seed"], **tc["schedule"])
    frozen = frozen_parameters(net)
    ddp_net = net
    if world > 1:
        ddp_net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[local_rank] if use_cuda else None, find_unused_parameters=True)

    if rank == 0 and not resume:  # as late as possible: a run refused above leaves the earlier one in place
        set_aside_earlier_run(out_dir)
    log = CsvLog(out_dir / "log.csv", LOG_FIELDS, append=resume) if rank == 0 else None
    vlog = CsvLog(out_dir / "val.csv", VAL_FIELDS, append=resume) if rank == 0 else None
    tb = None
    if rank == 0:
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(out_dir / "tb"))
        except ImportError:  # tensorboard is optional for training itself
            tb = None
    from tqdm import tqdm

    bar = tqdm(total=total, initial=start_step, desc=f"train {cfg.model.name}", disable=not progress or rank != 0,
               dynamic_ncols=True)
    step, last_good = start_step, (start_step if resume else None)
    t_start = time.time()
    summary: dict = {}
    # steps whose whole batch (on every rank) had no ground-truth pixel the loss can use: no optimiser step
    no_gt_count = int(payload.get("skipped_steps", 0)) if resume else 0
    no_gt_first: list = list(payload.get("skipped_first", [])) if resume else []
    epoch = start_epoch

    train_config = json_safe(cfg.raw)  # a YAML date would make the checkpoint unloadable with weights_only
    # the encoder the VAE learned from, resolved (the raw config's path is relative to its file):
    # `edepth export --text` must embed with this one, not the default
    text_encoder = encoder_record(cfg.text["encoder"], cfg.text["model"]) if cfg.model.text_vae else None

    def diverged(what: str, epoch_now: int, path_now: Optional[str] = None) -> TrainingDiverged:
        where = f"'{latest}' (step {last_good})" if last_good is not None else "none written yet"
        during = f"epoch {epoch_now}, {path_now} path" if path_now else f"epoch {epoch_now}"
        return TrainingDiverged(
            f"{what} at step {step} ({during}); training stopped. "
            f"Last good checkpoint: {where}. Lower train.lr, check the data, or resume with --resume")

    def checkpoint(epoch_now: int, path: Path = latest, with_opt: bool = True) -> None:
        # last guard: never replace a good file with NaN weights. Every rank calling this checks
        # its own copy, which DDP keeps identical, so ranks stop together at latest.pt.
        bad = first_nonfinite(net)
        if bad is not None:
            raise diverged(f"weights are not finite ('{bad}'); '{path.name}' not written", epoch_now)
        if rank != 0:
            return
        extra = dict(step=step, epoch=epoch_now, best_abs_rel=best, train_config=train_config,
                     text_encoder=text_encoder, skipped_steps=no_gt_count, skipped_first=list(no_gt_first))
        if with_opt:
            extra["optimizer"] = opt.state_dict()
            if scaler.is_enabled():
                extra["scaler"] = scaler.state_dict()
        save_checkpoint(path, net, extra)

    net.train()
    try:
        for epoch in range(start_epoch, epochs):
            sampler.set_epoch(epoch)
            train_set.set_epoch(epoch)
            indices = list(sampler)
            skip = step - epoch * steps_per_epoch  # resume mid-epoch: skip the batches already done
            batches = [indices[i * per_rank_batch:(i + 1) * per_rank_batch] for i in range(steps_per_epoch)]
            loader = DataLoader(train_set, batch_sampler=batches[max(skip, 0):], collate_fn=collate,
                                num_workers=int(tc["workers"]))
            t0 = time.time()
            for batch in loader:
                if step >= total or (stop_after is not None and step >= stop_after):
                    break
                path = schedule.path(step, epoch, cfg.model.text_vae)
                lr = poly_lr(step, total, tc["lr"], tc["lr_end"])
                for g in opt.param_groups:
                    g["lr"] = lr
                opt.zero_grad(set_to_none=True)
                # the text path's noise is a function of (seed, step, rank) alone, so a resumed run draws
                # what the uninterrupted one drew (a restored RNG state would also count the draws the
                # data loaders make) and each rank draws its own
                torch.manual_seed((tc["seed"] * 1_000_003 + step) * world + rank)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                    terms = compute_losses(ddp_net, batch, path, tc, device)
                loss = terms["loss"]
                valid_px = terms.pop("valid_px", None)
                # backward runs even on a NaN loss: under DDP every rank must reach the same collectives
                scaler.scale(loss).backward()
                for p in frozen[path]:  # DDP hands unused parameters zero grads: AdamW would still decay them
                    p.grad = None
                scaler.unscale_(opt)
                grad_norm = torch.nn.utils.clip_grad_norm_(params, tc["grad_clip"])
                # [loss, grad] not finite, one slot per rank. An fp16 GradScaler skips inf/NaN gradients
                # itself (and lowers its scale): that is not divergence. Without it, a non-finite norm
                # would make the clipped gradients, and after opt.step the weights, NaN.
                # Row 2: no ground-truth pixel in this rank's batch (every GT pixel 0 or beyond max_depth).
                bad = torch.zeros(3, world, device=device)
                bad[0, rank] = float(not torch.isfinite(loss.detach()))
                bad[1, rank] = float(not scaler.is_enabled() and not torch.isfinite(grad_norm))
                bad[2, rank] = float(valid_px is not None and int(valid_px) == 0)
                if world > 1:  # agree, so no rank quits while the others wait for it in a collective
                    dist.all_reduce(bad)
                # no rank has ground truth: nothing to learn from, and a loss of 0 (or 0 x an inf prediction)
                # is no divergence. Skip the optimiser step (AdamW would still move the weights on its
                # moments and the decay), count it and go on; with ground truth on some rank, train on it.
                no_gt = bool(bad[2].all())
                if not no_gt and bool(bad[:2].any()):
                    row = 0 if bool(bad[0].any()) else 1
                    ranks = ", ".join(str(r) for r in bad[row].nonzero().flatten().tolist())
                    what = ("loss is not finite (NaN/inf)" if row == 0 else
                            "gradient norm is not finite (NaN/inf) with a finite loss")
                    raise diverged(what + (f" on rank {ranks}" if world > 1 else ""), epoch, path)
                with sigint_deferred():  # the weights, the step count and its log row: all or none
                    if no_gt:
                        opt.zero_grad(set_to_none=True)
                        if scaler.is_enabled():  # unscale_ ran: the scaler wants its update before the next step
                            scaler.update()
                    else:
                        scaler.step(opt)
                        scaler.update()
                    step += 1
                    bar.update(1)
                    if no_gt:
                        no_gt_count += 1
                        if len(no_gt_first) < 100:
                            no_gt_first.append(step)
                        if rank == 0 and no_gt_count <= 10:
                            tqdm.write(f"edepth train: WARNING: step {step} skipped: its batch has no ground-truth "
                                       f"pixel in ({LOSS_MIN_DEPTH:g}, model.max_depth {cfg.model.max_depth:g}) m, so "
                                       "nothing to learn from (no optimiser step); counted in the summary's "
                                       "skipped_steps" + ("; later ones are counted, not printed"
                                                          if no_gt_count == 10 else ""), file=sys.stderr)
                        if rank == 0 and (step % tc["log_every"] == 0 or step == total):
                            log.write(dict(step=step, epoch=epoch, path="skipped", lr=lr,
                                           sec_per_step=round(time.time() - t0, 4), rss_mb=round(rss_mb(), 1)))
                    elif step % tc["log_every"] == 0 or step == total:
                        vals = {k: float(v.detach()) for k, v in terms.items()}
                        if world > 1:  # the logged loss is the mean over ranks
                            t = torch.tensor([vals[k] for k in ("loss", "silog", "kl_text", "kl_eps", "conf")],
                                             device=device)
                            dist.all_reduce(t)
                            vals.update(zip(("loss", "silog", "kl_text", "kl_eps", "conf"), (t / world).tolist()))
                        row = dict(step=step, epoch=epoch, path=path, lr=lr, grad_norm=float(grad_norm),
                                   sec_per_step=round(time.time() - t0, 4), rss_mb=round(rss_mb(), 1),
                                   **{k: round(v, 6) for k, v in vals.items()})
                        if rank == 0:
                            log.write(row)
                            bar.set_postfix(loss=f"{vals['loss']:.3f}", path=path)
                            if tb:
                                for k in ("loss", "silog", "kl_text", "kl_eps", "conf"):
                                    tb.add_scalar(f"train/{k}", vals[k], step)
                                tb.add_scalar("train/lr", lr, step)
                if step % tc["checkpoint_every"] == 0:
                    checkpoint(epoch)
                    last_good = step
                t0 = time.time()
            done_epoch = epoch + 1 if step >= (epoch + 1) * steps_per_epoch else epoch
            if val_set is not None and rank == 0 and ((epoch + 1) % tc["val_every"] == 0 or step >= total):
                m = evaluate(net, val_set, per_rank_batch, device)
                vlog.write(dict(step=step, epoch=epoch, **{k: round(v, 5) for k, v in m.items()}))
                if tb:
                    for k, v in m.items():
                        tb.add_scalar(f"val/{k}", v, step)
                summary["val"] = m
                if m["abs_rel"] < best:
                    best = m["abs_rel"]
                    checkpoint(done_epoch, out_dir / "best.pt", with_opt=False)
            checkpoint(done_epoch)
            last_good = step
            if step >= total:
                break
            if stop_after is not None and step >= stop_after:
                summary.update(steps=step, interrupted=True, output=str(out_dir), skipped_steps=no_gt_count)
                return summary
        if rank == 0:
            checkpoint(epochs, out_dir / "model.pt", with_opt=False)
            if cfg.publish is not None:
                publish(cfg, out_dir)
    except KeyboardInterrupt:  # Ctrl-C: keep what was trained, in a file --resume continues exactly
        saved = step > start_step
        if saved and step != last_good:  # else latest.pt holds this step already
            try:
                checkpoint(epoch)
            except KeyboardInterrupt:  # a second Ctrl-C while saving: the write is atomic, the old file stays
                where = f"'{latest}' keeps step {last_good}" if last_good is not None else "nothing saved"
                raise TrainingInterrupted(f"interrupted at step {step}, and again while saving; {where}"
                                          + ("; resume with --resume" if last_good is not None else ""),
                                          step, False) from None
        if saved:
            msg = f"interrupted at step {step}; '{latest}' saved; resume with --resume"
        elif resume:
            msg = f"interrupted at step {step} before another step; '{latest}' unchanged; resume with --resume"
        else:
            msg = f"interrupted before the first step; nothing saved in '{out_dir}'"
        raise TrainingInterrupted(msg, step, saved) from None
    finally:
        bar.close()
        for h in (log, vlog):
            if h:
                h.close()
        if tb:
            tb.close()
        if own_group and dist.is_initialized():
            dist.destroy_process_group()
    summary.update(steps=step, seconds=round(time.time() - t_start, 1), output=str(out_dir),
                   best_abs_rel=best if math.isfinite(best) else None,  # no validation set: null (JSON has no inf)
                   world_size=world, skipped_steps=no_gt_count, skipped_first=no_gt_first)
    if no_gt_count and rank == 0:
        print(f"edepth train: {no_gt_count} of {step} steps skipped (batch without ground truth in "
              f"({LOSS_MIN_DEPTH:g}, {cfg.model.max_depth:g}) m), first at steps {no_gt_first[:10]}; check the "
              "data or model.max_depth if that is many", file=sys.stderr)
    return summary
