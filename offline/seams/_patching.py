"""Record every attribute a seam replaces in moto (or botocore), so uninstall puts the originals back
exactly."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

_MISSING = object()
_LOCK = threading.Lock()


@dataclass
class _Patch:
    owner: Any
    name: str
    original: Any


_applied: list[_Patch] = []


class SeamTargetMissing(RuntimeError):
    """moto no longer has the attribute a seam replaces: the seam must be revisited for this moto version."""


def original(owner: Any, name: str) -> Any:
    """The attribute as moto defines it (even while patched), or raise SeamTargetMissing."""
    for patch in _applied:
        if patch.owner is owner and patch.name == name:
            return patch.original
    # A class's own attribute as stored (a classmethod stays a classmethod), else an inherited one.
    value = owner.__dict__.get(name, _MISSING) if isinstance(owner, type) else _MISSING
    if value is _MISSING:
        value = getattr(owner, name, _MISSING)
    if value is _MISSING:
        raise SeamTargetMissing(f"{getattr(owner, '__name__', owner)!s}.{name} does not exist in this moto")
    return value


def replace(owner: Any, name: str, new: Any, *, must_exist: bool = True) -> None:
    """Set owner.name = new, remembering the original; must_exist=False adds an attribute moto lacks."""
    with _LOCK:
        if any(p.owner is owner and p.name == name for p in _applied):
            setattr(owner, name, new)
            return
        current = (
            owner.__dict__.get(name, _MISSING) if isinstance(owner, type) else getattr(owner, name, _MISSING)
        )
        if current is _MISSING and must_exist:
            raise SeamTargetMissing(
                f"{getattr(owner, '__name__', owner)!s}.{name} does not exist in this moto"
            )
        _applied.append(_Patch(owner, name, current))
        setattr(owner, name, new)


def restore_all() -> None:
    with _LOCK:
        while _applied:
            patch = _applied.pop()
            if patch.original is _MISSING:
                delattr(patch.owner, patch.name)
            else:
                setattr(patch.owner, patch.name, patch.original)


def is_patched(owner: Any, name: str) -> bool:
    return any(p.owner is owner and p.name == name for p in _applied)
