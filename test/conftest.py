"""Shared test set-up: the KITTI samples folder, the slow marker, quiet thread pools."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run tests marked slow (make test does)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow test: run with --slow (make test runs it)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def kitti_root() -> Path:
    return Path(os.environ.get("EDEPTH_KITTI_SAMPLES", PROJECT.parent / "shared" / "kitti")).resolve()


@pytest.fixture(scope="session")
def kitti_dir() -> Path:
    """The shared KITTI sample frames; the test is skipped, saying why, where they are absent."""
    root = kitti_root()
    if not (root / "README.md").is_file() and not (root / "object").is_dir():
        pytest.skip(f"KITTI samples not found at {root} (set EDEPTH_KITTI_SAMPLES to the folder)")
    return root


@pytest.fixture(scope="session")
def project_dir() -> Path:
    return PROJECT


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """A local CLIP text-model folder (transformers format, random weights; see tiny_clip.py)."""
    pytest.importorskip("transformers")
    from tiny_clip import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")
