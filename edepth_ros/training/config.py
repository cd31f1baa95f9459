"""The training configuration (one YAML file: model, data, text, train, output), validated at start.

Every error names the key (``train.lr``, ``data.raw_root``) and what to do, before any data is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ..network.config import (BOOL, NAME, NON_NEGATIVE_INT, NON_NEGATIVE_NUMBER, NUMBER, POSITIVE_INT,
                              POSITIVE_NUMBER, PROBABILITY, ModelConfig, NetworkConfigError, check_values, one_of,
                              project_root)
from ..synthetic import SEED_MAX  # scene seeds are 32-bit: outside, two seeds would be one scene


class TrainConfigError(ValueError):
    """A training configuration value is missing, unknown or inconsistent; the message names the key."""


# the loss (and the datasets' skip of frames without ground truth) use only pixels with
# LOSS_MIN_DEPTH < gt < model.max_depth (WorDepth/BTS): a max_depth at or below it leaves none
LOSS_MIN_DEPTH = 0.1
# a {start, count} seed range larger than this is a typo (each seed renders frames kept in memory)
MAX_SEED_COUNT = 10 ** 6


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (safe_load keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *anchor' may be overridden on purpose
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base class names it
                    continue
                if first is not None:
                    raise TrainConfigError(
                        f"{_key_path(self, node, key)}: given twice (lines {first + 1} and "
                        f"{key_node.start_mark.line + 1}); keep one of them")
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _key_path(loader: "_UniqueKeyLoader", node, key) -> str:
    """The dotted path of ``key`` in the mapping ``node`` (e.g. train.lr), found from the document root."""
    def walk(cur, path):
        if cur is node:
            return path
        if isinstance(cur, yaml.MappingNode):
            for k, v in cur.value:
                found = walk(v, path + [str(getattr(k, "value", k))])
                if found is not None:
                    return found
        elif isinstance(cur, yaml.SequenceNode):
            for i, v in enumerate(cur.value):
                found = walk(v, path + [str(i)])
                if found is not None:
                    return found
        return None

    root = getattr(loader, "_edepth_root", None)
    path = walk(root, []) if root is not None else None
    return ".".join((path or []) + [str(key)])


def _load_yaml(text: str):
    loader = _UniqueKeyLoader(text)
    try:
        root = loader.get_single_node()
        loader._edepth_root = root
        return loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()


TRAIN_DEFAULTS = dict(
    epochs=10, max_steps=0, batch_size=8, lr=3e-4, lr_end=3e-5, weight_decay=1e-2, grad_clip=1.0,
    silog_lambda=0.85, kl_text_weight=1e-3, kl_eps_weight=1e-3, conf_weight=0.1, seed=0, workers=0,
    amp=True, log_every=10, val_every=1, checkpoint_every=200, threads=0, device="auto",
    schedule=dict(mode="step", p_text=0.1, text_every=2, text_epochs=1),
)
DATA_KINDS = ("synthetic", "kitti", "bag")
DATA_KEYS = {
    "synthetic": {"kind", "train_seeds", "val_seeds", "frames_per_seed", "val_frames_per_seed", "render_scale",
                  "frame_stride", "augment", "embodied"},
    "kitti": {"kind", "raw_root", "gt_root", "train_split", "val_split", "calib_dir", "crop", "plane_height",
              "plane_pitch", "augment", "embodied"},
    "bag": {"kind", "bag", "val_bag", "image_topic", "camera_info_topic", "depth_topic", "lidar_topic",
            "labels_topic", "ground_frame", "plane_height", "plane_pitch", "max_frames", "max_skew", "tf_max_age",
            "augment", "embodied"},
}
TEXT_DEFAULTS = dict(encoder="sentence-transformers", model=None, cache_dir=None, max_objects=8)
TEXT_ENCODERS = ("sentence-transformers", "minilm", "st", "clip")  # what network.text.make_encoder accepts

# types and ranges, checked at load so that a '1e-3' or a -1 is named before anything runs
TRAIN_RULES = {
    **{k: POSITIVE_INT for k in ("batch_size", "log_every", "val_every", "checkpoint_every")},
    **{k: NON_NEGATIVE_INT for k in ("epochs", "max_steps", "workers", "threads")},
    # the trainer derives per-step seeds from it; torch seeds are 64-bit
    "seed": (lambda v: NON_NEGATIVE_INT[0](v) and v < 2 ** 31, "an integer in [0, 2**31 - 1]"),
    "lr": POSITIVE_NUMBER, "lr_end": POSITIVE_NUMBER,
    "grad_clip": (POSITIVE_NUMBER[0], "a positive number (the gradient norm is clipped to it)"),
    **{k: NON_NEGATIVE_NUMBER for k in ("weight_decay", "kl_text_weight", "kl_eps_weight", "conf_weight")},
    "silog_lambda": PROBABILITY, "amp": BOOL, "device": one_of("auto", "cpu", "cuda"),
}
SCHEDULE_RULES = {"mode": NAME, "p_text": PROBABILITY, "text_every": POSITIVE_INT, "text_epochs": NON_NEGATIVE_INT}
DATA_RULES = {
    **{k: POSITIVE_INT for k in ("frames_per_seed", "val_frames_per_seed", "frame_stride", "max_frames")},
    # scenes are rendered at render_scale x the model size and cropped down to it
    "render_scale": (lambda v: NUMBER[0](v) and v >= 1, "a number >= 1 (the render is cropped to the model size)"),
    "plane_height": POSITIVE_NUMBER, "plane_pitch": NUMBER,
    # bags: image / ground-truth pairing window and the tf age limit (s), as `edepth eval bag`'s
    "max_skew": POSITIVE_NUMBER, "tf_max_age": NON_NEGATIVE_NUMBER,
}
AUGMENT_RULES = {"flip": PROBABILITY, "color": NON_NEGATIVE_NUMBER, "enabled": BOOL,
                 "scale": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(NUMBER[0](x) for x in v),
                           "[low, high], two numbers")}
OPTIONAL_TEXT = (lambda v: v is None or (isinstance(v, str) and bool(v)),
                 "a string (a name or a path), or null")
TEXT_RULES = {"encoder": one_of(*TEXT_ENCODERS), "max_objects": POSITIVE_INT, "model": OPTIONAL_TEXT,
              "cache_dir": OPTIONAL_TEXT}
# paths and topics: a number or a list here would become a folder named '5' or "['a']", or a TypeError
DATA_RULES.update({k: OPTIONAL_TEXT for k in (
    "raw_root", "gt_root", "train_split", "val_split", "calib_dir", "crop", "bag", "val_bag", "image_topic",
    "camera_info_topic", "depth_topic", "lidar_topic", "labels_topic", "ground_frame")})
OUTPUT_RULES = {"dir": NAME, "publish": OPTIONAL_TEXT}


def _at_most(rule: tuple, high, why: str) -> tuple:
    """``rule`` (type and sign) with an upper bound: past it a value is a typo that would overflow
    (1e300 m is inf in float32), exhaust memory or start millions of processes, not a setting."""
    ok, what = rule
    return (lambda v: ok(v) and v <= high, f"{what}, at most {high:g} ({why})")


# upper bounds, one table for every section: (section, key) -> (the key's type rule, bound, why)
LIMITS = {
    **{("model", k): (POSITIVE_NUMBER, 1000, "metres; depth is predicted in float32 / fp16 and in log space")
       for k in ("max_depth", "min_depth")},
    **{("model", k): (POSITIVE_INT, 4096, "a larger layer does not fit in memory")
       for k in ("fusion_dim", "fusion_heads", "latent_dim", "sampler_dim", "sampler_heads", "head_channels")},
    ("model", "text_dim"): (POSITIVE_INT, 8192, "the size of a sentence embedding"),
    ("model", "sampler_layers"): (POSITIVE_INT, 64, "a larger layer does not fit in memory"),
    ("train", "batch_size"): (POSITIVE_INT, 4096, "per process; a larger batch does not fit in memory"),
    ("train", "epochs"): (NON_NEGATIVE_INT, 10 ** 6, "use train.max_steps for long runs"),
    ("train", "max_steps"): (NON_NEGATIVE_INT, 10 ** 9, "a run that never ends"),
    ("train", "workers"): (NON_NEGATIVE_INT, 256, "each is a process"),
    ("train", "threads"): (NON_NEGATIVE_INT, 1024, "CPU threads"),
    **{("train", k): (POSITIVE_NUMBER, 10, "a larger learning rate diverges at the first step")
       for k in ("lr", "lr_end")},
    **{("train", k): (NON_NEGATIVE_NUMBER, 1000, "a loss weight; larger swamps the depth loss")
       for k in ("kl_text_weight", "kl_eps_weight", "conf_weight")},
    ("train", "weight_decay"): (NON_NEGATIVE_NUMBER, 10, "AdamW's decoupled decay"),
    **{("data", k): (POSITIVE_INT, 10 ** 5, "frames are rendered and kept in memory")
       for k in ("frames_per_seed", "val_frames_per_seed")},
    ("data", "render_scale"): (DATA_RULES["render_scale"], 8, "scenes are rendered at this x the model size"),
    ("data", "plane_height"): (POSITIVE_NUMBER, 100, "metres of camera height above the road"),
    ("text", "max_objects"): (POSITIVE_INT, 1000, "one sentence each per frame"),
}
# model sizes given as lists: every entry has the same bound
LIST_LIMITS = {("model", k): (8192, "a larger image or layer does not fit in memory")
               for k in ("input_size", "depth_channels", "text_hidden", "decoder_channels")}


def check_limits(section: str, values: dict, error=None) -> None:
    """The LIMITS / LIST_LIMITS of ``section`` on ``values`` (types first, so each error says what was expected)."""
    check_values(values, {k: _at_most(rule, high, why) for (s, k), (rule, high, why) in LIMITS.items() if s == section},
                 section, error or TrainConfigError)
    for (s, k), (high, why) in LIST_LIMITS.items():
        v = values.get(k)
        if s == section and isinstance(v, (list, tuple)) and any(_is_number(x) and x > high for x in v):
            raise (error or TrainConfigError)(f"{section}.{k}: {list(v)} has an entry above {high} ({why}); "
                                              "check the value")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass
class TrainConfig:
    model: ModelConfig
    data: dict
    text: dict
    train: dict
    output: Path
    source: Optional[Path] = None
    publish: Optional[Path] = None
    raw: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise TrainConfigError(f"--config: file '{path}' does not exist (see models/*.yaml)")
        try:
            data = _load_yaml(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise TrainConfigError(f"{path}: not valid YAML: {exc}") from exc
        except TrainConfigError as exc:  # a key given twice
            raise TrainConfigError(f"{path}: {exc}") from None
        return cls.from_dict(data, source=path)

    @classmethod
    def from_dict(cls, data: dict, source: Optional[Path] = None) -> "TrainConfig":
        if not isinstance(data, dict):
            raise TrainConfigError("config: expected a mapping with model, data, train, output")
        unknown = set(data) - {"model", "data", "text", "train", "output", "description"}
        if unknown:
            raise TrainConfigError(f"{sorted(unknown)[0]}: unknown top-level key; valid: model, data, text, "
                                   "train, output, description")
        for key in ("model", "data"):
            if key not in data:
                raise TrainConfigError(f"{key}: missing section")
        for key in ("data", "text", "train", "output"):  # model: ModelConfig names it
            if not isinstance(data[key] if key == "data" else data.get(key) or {}, dict):
                raise TrainConfigError(f"{key}: expected a mapping of settings, got {data[key]!r}")
        base = source.parent if source else Path.cwd()
        if isinstance(data["model"], dict):  # a list or a number here is a TypeError inside the registry look-up
            check_values(data["model"], {"arch": NAME}, "model", TrainConfigError)
        try:  # a relative pretrained_path is relative to the project root, like the data paths
            model = ModelConfig.from_dict(data["model"], root=project_root(base))
        except NetworkConfigError as exc:
            raise TrainConfigError(str(exc)) from exc
        check_limits("model", model.to_dict())
        if model.max_depth <= LOSS_MIN_DEPTH:
            raise TrainConfigError(f"model.max_depth: {model.max_depth} m is at or below the loss's {LOSS_MIN_DEPTH} m "
                                   "floor, so no ground-truth pixel would ever train; give the largest depth to "
                                   f"predict, above {LOSS_MIN_DEPTH} m (e.g. 80 for KITTI)")
        data_cfg = _check_data(dict(data["data"]), base)
        text = dict(TEXT_DEFAULTS)
        for k, v in (data.get("text") or {}).items():
            if k not in TEXT_DEFAULTS:
                raise TrainConfigError(f"text.{k}: unknown key; valid keys: {sorted(TEXT_DEFAULTS)}")
            text[k] = v
        check_values(text, TEXT_RULES, "text", TrainConfigError)
        check_limits("text", text)
        if text["cache_dir"]:
            text["cache_dir"] = str(_resolve(text["cache_dir"], base))
        if text["model"] and (project_root(base) / str(text["model"])).exists():
            text["model"] = str(_resolve(text["model"], base))  # a folder in the project; else a name
        if text["encoder"] == "clip" and not text["model"]:
            raise TrainConfigError("text.model: missing; text.encoder: clip needs the local CLIP folder "
                                   "(transformers format)")
        train = _check_train(dict(data.get("train") or {}))
        if model.text_vae and train["max_steps"] == 0:  # else the epochs depend on the data: the trainer checks
            check_schedule_trains_image(train)
        out = data.get("output") or {}
        if not out.get("dir"):
            raise TrainConfigError("output.dir: missing (where checkpoints and logs go)")
        unknown = set(out) - {"dir", "publish"}
        if unknown:
            raise TrainConfigError(f"output.{sorted(unknown)[0]}: unknown key; valid keys: dir, publish")
        check_values(out, OUTPUT_RULES, "output", TrainConfigError)
        out_dir = _output_folder("output.dir", _resolve(out["dir"], base))
        publish = _output_folder("output.publish", _resolve(out["publish"], base)) if out.get("publish") else None
        return cls(model, data_cfg, text, train, out_dir, source, publish, data)


def _check_train(train: dict) -> dict:
    out = dict(TRAIN_DEFAULTS)
    sched = dict(TRAIN_DEFAULTS["schedule"])
    for k, v in train.items():
        if k not in TRAIN_DEFAULTS:
            raise TrainConfigError(f"train.{k}: unknown key; valid keys: {sorted(TRAIN_DEFAULTS)}")
        if k == "schedule":
            if not isinstance(v or {}, dict):
                raise TrainConfigError(f"train.schedule: expected a mapping (mode, p_text, ...), got {v!r}")
            for sk, sv in (v or {}).items():
                if sk not in sched:
                    raise TrainConfigError(f"train.schedule.{sk}: unknown key; valid keys: {sorted(sched)}")
                sched[sk] = sv
        else:
            out[k] = v
    out["schedule"] = sched
    from .schedule import PathSchedule, ScheduleError

    check_values(sched, SCHEDULE_RULES, "train.schedule", TrainConfigError)
    check_values(out, TRAIN_RULES, "train", TrainConfigError)
    check_limits("train", out)
    try:
        PathSchedule(**sched)
    except ScheduleError as exc:
        raise TrainConfigError(str(exc)) from exc
    if out["epochs"] == 0 and out["max_steps"] == 0:
        raise TrainConfigError("train.epochs / train.max_steps: give at least one of them")
    if not 0 < out["lr_end"] <= out["lr"]:
        raise TrainConfigError(f"train.lr_end: {out['lr_end']} must be in (0, lr = {out['lr']}]")
    return out


def check_schedule_trains_image(train: dict, epochs: int | None = None) -> None:
    from .schedule import PathSchedule, ScheduleError

    try:
        PathSchedule(**train["schedule"]).check_trains_image(train["epochs"] if epochs is None else epochs)
    except ScheduleError as exc:
        raise TrainConfigError(str(exc)) from exc


def _check_data(d: dict, base: Path) -> dict:
    kind = d.get("kind")
    if kind not in DATA_KINDS:
        raise TrainConfigError(f"data.kind: '{kind}' must be one of {DATA_KINDS}")
    for k in d:
        if k not in DATA_KEYS[kind]:
            raise TrainConfigError(f"data.{k}: unknown key for kind '{kind}'; valid keys: {sorted(DATA_KEYS[kind])}")
    check_values(d, DATA_RULES, "data", TrainConfigError)
    check_limits("data", d)
    _check_augment(d.get("augment"))
    _check_embodied(d.get("embodied"))
    if kind == "synthetic":
        for k in ("train_seeds", "val_seeds"):
            seeds = d.get(k)
            if k == "train_seeds" and not seeds:
                raise TrainConfigError("data.train_seeds: give a list of scene seeds (or {start, count})")
            d[k] = _seeds(seeds or [], f"data.{k}")
        overlap = set(d["train_seeds"]) & set(d["val_seeds"])
        if overlap:
            raise TrainConfigError(f"data.val_seeds: seeds {sorted(overlap)[:5]} are also training seeds; "
                                   "held-out scenes must never be seen in training")
        d.setdefault("frames_per_seed", 8)
        d.setdefault("val_frames_per_seed", 2)
    elif kind == "kitti":
        for k in ("raw_root", "train_split"):
            if not d.get(k):
                raise TrainConfigError(f"data.{k}: missing (KITTI raw folder / Eigen split file)")
        for k in ("raw_root", "gt_root", "calib_dir", "train_split", "val_split"):
            if d.get(k):
                p = _resolve(d[k], base)
                if not p.exists():
                    raise TrainConfigError(f"data.{k}: '{p}' does not exist; download KITTI raw + annotated "
                                           "depth and point this key at it")
                d[k] = str(p)
        # KittiDataset reads depth only from gt_root: without it every frame would train on no ground truth
        if not d.get("gt_root"):
            raise TrainConfigError("data.gt_root: missing; give the annotated depth folder (the split file's depth "
                                   "paths are relative to it; the same folder as data.raw_root if they are there)")
        if d.get("crop", "kb") not in ("kb", "none"):
            raise TrainConfigError(f"data.crop: '{d['crop']}' must be kb or none")
    else:
        for k in ("bag", "image_topic", "camera_info_topic"):
            if not d.get(k):
                raise TrainConfigError(f"data.{k}: missing")
        if bool(d.get("depth_topic")) == bool(d.get("lidar_topic")):
            raise TrainConfigError("data.depth_topic / data.lidar_topic: give exactly one")
        for k in ("bag", "val_bag"):
            if d.get(k):
                p = _resolve(d[k], base)
                if not p.exists():
                    raise TrainConfigError(f"data.{k}: bag '{p}' does not exist")
                d[k] = str(p)
    return d


def _check_augment(aug: Any) -> None:
    """data.augment is parsed again by make_datasets; checked here so that a typo stops the start."""
    from .augment import AugmentConfig, AugmentError

    if aug is None:
        return
    if not isinstance(aug, dict):
        raise TrainConfigError(f"data.augment: expected a mapping (flip, scale, color, enabled), got {aug!r}")
    check_values(aug, AUGMENT_RULES, "data.augment", TrainConfigError)
    try:
        AugmentConfig.from_dict(aug, prefix="data.augment")
    except AugmentError as exc:
        raise TrainConfigError(str(exc)) from exc


def _check_embodied(emb: Any) -> None:
    """data.embodied, as make_datasets will build it, with errors under its key path."""
    from ..embodied import EmbodiedConfig

    if emb is None:
        return
    if not isinstance(emb, dict):
        raise TrainConfigError(f"data.embodied: expected a mapping of EmbodiedConfig settings, got {emb!r}")
    known = sorted(EmbodiedConfig.__dataclass_fields__)
    for k in emb:
        if k not in known:
            raise TrainConfigError(f"data.embodied.{k}: unknown key; valid keys: {known}")
    try:
        EmbodiedConfig.from_dict(emb)
    except (ValueError, TypeError) as exc:  # EmbodiedConfigError / LabelError, or a value of the wrong type
        msg = str(exc).replace("EmbodiedConfig.", "data.embodied.").replace("ClassGroups:", "data.embodied.groups:")
        if not msg.startswith("data.embodied"):
            msg = f"data.embodied: {msg}"
        raise TrainConfigError(msg) from exc


def _output_folder(key: str, path: Path) -> Path:
    """The check `--output` gets (safe_paths): a file where a folder is wanted is refused now, not after the run."""
    from ..safe_paths import OutputPathError, check_output_path

    try:
        return check_output_path(path, folder=True)
    except OutputPathError as exc:
        raise TrainConfigError(f"{key}: {exc}") from None


def _resolve(p: str, base: Path) -> Path:
    p = Path(str(p)).expanduser()
    if p.is_absolute():
        return p
    cand = project_root(base) / p
    return cand.resolve()


def _seeds(value: Any, key: str) -> list[int]:
    if isinstance(value, dict):
        if set(value) - {"start", "count"} or "count" not in value:
            raise TrainConfigError(f"{key}: give a list of integers or {{start, count}}")
        start, count = value.get("start", 0), value["count"]
        for name, v, low in (("start", start, 0), ("count", count, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise TrainConfigError(f"{key}.{name}: expected an integer >= {low}, got {v!r}")
        if count > MAX_SEED_COUNT:  # before building the list: 10**12 seeds is a MemoryError, not a run
            raise TrainConfigError(f"{key}.count: {count} scenes is more than {MAX_SEED_COUNT} (each is rendered "
                                   "and kept in memory); give a smaller count")
        if start + count - 1 > SEED_MAX:
            raise TrainConfigError(f"{key}: start {start} + count {count} goes past {SEED_MAX}; scene seeds are "
                                   f"32-bit (seeds past it repeat scenes of [0, {SEED_MAX}]): lower start or count")
        return list(range(start, start + count))
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        raise TrainConfigError(f"{key}: {value!r} must be a list of integer seeds")
    bad = [s for s in value if not 0 <= s <= SEED_MAX]
    if bad:
        raise TrainConfigError(f"{key}: seed {bad[0]} is outside [0, {SEED_MAX}]; scene seeds are 32-bit (the "
                               "generator wraps others onto seeds in range, so train and held-out scenes could "
                               "be the same): give seeds in range")
    return [int(s) for s in value]
