"""Semantic labels: Cityscapes train ids and the class groups embodied depth reasons about.

Labels are uint8 (H, W) images of Cityscapes train ids (255 = ignore). Which ids count as road,
other ground, vertical (standing on the ground) and sky is configuration (`ClassGroups`), so a
deployment with its own segmenter can remap without touching the geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

ROAD = 0
SIDEWALK = 1
BUILDING = 2
WALL = 3
FENCE = 4
POLE = 5
TRAFFIC_LIGHT = 6
TRAFFIC_SIGN = 7
VEGETATION = 8
TERRAIN = 9
SKY = 10
PERSON = 11
RIDER = 12
CAR = 13
TRUCK = 14
BUS = 15
TRAIN = 16
MOTORCYCLE = 17
BICYCLE = 18
IGNORE = 255

CLASS_NAMES: dict[int, str] = {
    ROAD: "road",
    SIDEWALK: "sidewalk",
    BUILDING: "building",
    WALL: "wall",
    FENCE: "fence",
    POLE: "pole",
    TRAFFIC_LIGHT: "traffic light",
    TRAFFIC_SIGN: "traffic sign",
    VEGETATION: "vegetation",
    TERRAIN: "terrain",
    SKY: "sky",
    PERSON: "person",
    RIDER: "rider",
    CAR: "car",
    TRUCK: "truck",
    BUS: "bus",
    TRAIN: "train",
    MOTORCYCLE: "motorcycle",
    BICYCLE: "bicycle",
    IGNORE: "ignore",
}

_GROUP_NAMES = ("road", "ground", "vertical", "sky")


class LabelError(ValueError):
    """A label image or a class-group configuration is unusable; the message says what to fix."""


def _id_set(name: str, ids: Iterable[int]) -> frozenset[int]:
    out = set()
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= int(i) <= 255:
            raise LabelError(
                f"ClassGroups.{name}: {i!r} is not a label id; ids are integers 0..255 "
                "(Cityscapes train ids, 255 = ignore)"
            )
        out.add(int(i))
    return frozenset(out)


@dataclass(frozen=True)
class ClassGroups:
    """Which label ids are road, other ground, vertical (standing on the ground) and sky.

    Ids in no group (255 ignore, by default) get no geometric depth and are inpainted.
    """

    road: frozenset = field(default_factory=lambda: frozenset({ROAD}))
    ground: frozenset = field(default_factory=lambda: frozenset({SIDEWALK, TERRAIN}))
    vertical: frozenset = field(
        default_factory=lambda: frozenset(
            {BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION, PERSON, RIDER,
             CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE}
        )
    )
    sky: frozenset = field(default_factory=lambda: frozenset({SKY}))

    def __post_init__(self):
        for name in _GROUP_NAMES:
            object.__setattr__(self, name, _id_set(name, getattr(self, name)))
        for i, a in enumerate(_GROUP_NAMES):
            for b in _GROUP_NAMES[i + 1:]:
                both = getattr(self, a) & getattr(self, b)
                if both:
                    raise LabelError(
                        f"ClassGroups: ids {sorted(both)} are in both '{a}' and '{b}'; "
                        "each id belongs to at most one group"
                    )

    @classmethod
    def from_dict(cls, groups: Mapping[str, Iterable[int]]) -> "ClassGroups":
        """Build from a mapping such as a YAML section; missing groups keep their defaults."""
        if not isinstance(groups, Mapping):
            raise LabelError(f"ClassGroups: {groups!r}; expected a mapping of group name to a list of label ids "
                             f"(groups {list(_GROUP_NAMES)})")
        unknown = set(groups) - set(_GROUP_NAMES)
        if unknown:
            raise LabelError(
                f"ClassGroups: unknown group(s) {sorted(unknown)}; the groups are {list(_GROUP_NAMES)}"
            )
        for k, v in groups.items():
            # a bare id or null would fail in frozenset() naming no group; a string would split into characters
            if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Iterable):
                one = f"[{v!r}] for one id, " if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else ""
                raise LabelError(f"ClassGroups.{k}: {v!r}; expected a list of label ids ({one}[] for none)")
        return cls(**{k: frozenset(v) for k, v in groups.items()})

    def to_dict(self) -> dict[str, list[int]]:
        return {name: sorted(getattr(self, name)) for name in _GROUP_NAMES}

    def unknown_lut(self) -> np.ndarray:
        """A 256-entry uint8 table: 1 for ids that are neither a train id, 255 nor in a group."""
        lut = np.ones(256, dtype=np.uint8)
        lut[sorted(set(CLASS_NAMES) | set().union(*(getattr(self, n) for n in _GROUP_NAMES)))] = 0
        return lut

    def group_lut(self, codes: Mapping[str, int], default: int = 0) -> np.ndarray:
        """A 256-entry uint8 table: label id -> codes[group] (default for ids in no group)."""
        lut = np.full(256, default, dtype=np.uint8)
        for name in _GROUP_NAMES:
            ids = sorted(getattr(self, name))
            if ids:
                lut[ids] = codes[name]
        return lut


def validate_labels(labels, height: int, width: int, what: str = "labels") -> np.ndarray:
    """Return `labels` as a C-contiguous uint8 (height, width) array, or raise LabelError."""
    if not isinstance(labels, np.ndarray):
        raise LabelError(f"{what}: expected a numpy uint8 array of shape ({height}, {width}), "
                         f"got {type(labels).__name__}")
    if labels.dtype != np.uint8:
        raise LabelError(
            f"{what}: dtype is {labels.dtype}, expected uint8 Cityscapes train ids "
            "(convert integer ids with labels.astype(np.uint8); float images are not label images)"
        )
    if labels.ndim == 3 and labels.shape[2] == 1:
        labels = labels[:, :, 0]
    if labels.shape != (height, width):
        raise LabelError(
            f"{what}: shape is {labels.shape}, expected ({height}, {width}) to match the image/camera; "
            "resize labels with nearest-neighbour interpolation (cv2.INTER_NEAREST) first"
        )
    return np.ascontiguousarray(labels)


def unknown_ids_message(labels: np.ndarray, unknown: np.ndarray, what: str = "labels",
                        consequence: str = "they got no geometric depth and were inpainted") -> str:
    """Why ids outside the convention matter, naming them (`unknown`: the unknown_lut mask)."""
    ids = np.unique(labels[unknown.view(bool)])
    shown = ", ".join(str(int(i)) for i in ids[:8]) + (", ..." if ids.size > 8 else "")
    share = 100.0 * np.count_nonzero(unknown) / unknown.size
    return (f"{what}: ids {shown} ({share:.1f}% of pixels) are not Cityscapes train ids (0-18, 255 "
            f"ignore) nor in a configured class group, so {consequence}; map Cityscapes label ids "
            "(road 7, sky 23, car 26) to train ids first (cityscapesscripts' id2trainId), or add "
            "other ids to the class groups")
