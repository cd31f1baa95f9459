"""Keeping written files where they belong: a name that comes from data or a parameter (a topic, a
frame id, a stem, a run name) joined under an output folder must not climb out of it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


class UnsafePathError(ValueError):
    """A path would be written outside the folder it is meant for (the message names both)."""


def confined_path(root: str | os.PathLike, *parts: str | os.PathLike, what: str = "path") -> Path:
    """``root / parts...`` resolved (symlinks followed), refused unless it stays inside ``root``.

    ``what`` names the parameter or field the parts came from, for the error message. Absolute
    parts, ``..`` components and symlinks pointing elsewhere are all caught by comparing resolved
    paths, so the check holds however the name was built.
    """
    base = Path(root).expanduser().resolve()
    for p in parts:
        if "\x00" in str(p):
            raise UnsafePathError(f"{what}: {str(p)!r} contains a NUL byte")
    target = base.joinpath(*[str(p) for p in parts]).resolve()
    if target != base and base not in target.parents:
        raise UnsafePathError(f"{what}: {'/'.join(str(p) for p in parts)!r} resolves to {target}, outside "
                              f"{base}; use a plain name without '..', '/' or links leading out")
    return target


def safe_name(name: str, what: str = "name") -> str:
    """``name`` as a single path component (topic '/cam/image' -> 'cam_image'); refuses empty names."""
    cleaned = "_".join(part for part in str(name).replace("\\", "/").split("/") if part not in ("", ".", ".."))
    cleaned = cleaned.replace("\x00", "")
    if not cleaned:
        raise UnsafePathError(f"{what}: {name!r} gives an empty file name")
    return cleaned


class OutputPathError(ValueError):
    """An output path cannot be written (the message names the path and why)."""


def check_output_path(path: str | os.PathLike, folder: bool = False) -> Path:
    """Refuse, before a long run, an output that its end would fail to write.

    ``folder``: the path is a folder to write files into (``--plots DIR``), else a file (``--json OUT``).
    """
    path = Path(path).expanduser()
    if folder and path.exists() and not path.is_dir():
        raise OutputPathError(f"{path}: a file, not a folder; give a folder for the output files")
    if not folder and path.is_dir():
        raise OutputPathError(f"{path}: a folder; give a file name inside it")
    parent = path if folder else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"{path}: {parent} is a file, so nothing can be written below it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{path}: {parent} is not writable by this user")
    return path


def _argparse_type(folder: bool):
    def parse(value: str) -> Path:
        try:
            return check_output_path(value, folder)
        except OutputPathError as exc:  # argparse names the flag: "argument --json: ..."
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "output folder" if folder else "output file"
    return parse


# argparse ``type=`` for outputs: a bad one is refused when the command line is read, not after the run
output_file = _argparse_type(folder=False)
output_folder = _argparse_type(folder=True)
