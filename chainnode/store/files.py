"""The small files operators hand around (key files, certificates, genesis, node config)
and the node's own (its PBFT safety record): read bounded, every failure one line that
names the file; written atomically and durably."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_bounded(path: str | os.PathLike, *, noun: str, max_bytes: int, error: type[Exception], label: str = "",
                 missing_hint: str = "") -> bytes:
    """The bytes of `path` (read no further than `max_bytes` + 1), or `error(message)`.

    `noun` says what the file should be ("chainnode key file"); `label` goes before the
    path in "not found" and "cannot read" ("key file "); `missing_hint` follows "not
    found" (e.g. how to create one)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{label}{path} not found{missing_hint}") from None
    except OSError as exc:
        raise error(f"cannot read {label}{path}: {exc.strerror}") from None
    if len(raw) > max_bytes:
        raise error(f"{path} is larger than any {noun} ({max_bytes} bytes); is it the right file?")
    return raw


def read_json_file(path: str | os.PathLike, *, noun: str, max_bytes: int, error: type[Exception], label: str = "",
                   missing_hint: str = "") -> Any:
    """The parsed JSON of `path` (at most `max_bytes`), or `error(message)`; see read_bounded."""
    raw = read_bounded(path, noun=noun, max_bytes=max_bytes, error=error, label=label, missing_hint=missing_hint)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise error(f"{path} is not JSON, so not a {noun}; is it the right file?") from None


def write_atomic(path: str | os.PathLike, data: bytes, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new bytes:
    a temporary file (created with `mode`, so a key is never readable by others, not even
    for a moment), fsynced, renamed over `path`, and the directory fsynced so the rename
    itself survives a power cut."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
