"""Small, named patches that make moto 5.2.5 behave like AWS where this project needs it (see README.md here).

    state = OfflineState(work_dir=Path(".offline"))
    install(state)      # idempotent; patches moto classes in this process
    ...                 # mock_aws(...) in-process, or a ThreadedMotoServer in this process
    uninstall()         # restores every patched attribute, stops jobs and inference servers

Pinned to moto 5.2.5: install() refuses any other version, because every seam replaces a private method.
"""

from __future__ import annotations

import atexit
import importlib
import threading
from typing import Any

from offline.seams import _patching
from offline.seams.faults import FaultTable
from offline.seams.state import OfflineState, Registry

__all__ = ["MOTO_VERSION", "FaultTable", "OfflineState", "Registry", "current_state", "install", "uninstall"]

MOTO_VERSION = "5.2.5"

# Installation order: the order the seams were delivered in; each module has install(state) [and uninstall()].
SEAM_MODULES = (
    "offline.seams.faults",
    "offline.seams.lambda_invoke",
    "offline.seams.cloudformation",
    "offline.seams.stepfunctions_sync",
    "offline.seams.job_runner",
    "offline.seams.transform_runner",
    "offline.seams.endpoints",
    "offline.seams.event_targets",
    "offline.seams.sagemaker_events",
    "offline.seams.sagemaker_requests",
)

_lock = threading.RLock()
_state: OfflineState | None = None
_atexit_registered = False


class MotoVersionMismatch(RuntimeError):
    """The installed moto is not the version the seams were written and tested against."""


def _check_moto_version() -> None:
    import moto

    if moto.__version__ != MOTO_VERSION:
        raise MotoVersionMismatch(
            f"offline.seams patches moto {MOTO_VERSION} internals, but moto {moto.__version__} is installed: "
            "install the pinned version (pip install -r requirements/dev.txt) or re-check each seam listed "
            "in offline/seams/README.md against the new moto and update MOTO_VERSION."
        )


def install(state: OfflineState | None = None) -> OfflineState:
    """Install every seam for this state (idempotent: a second call with the same state does nothing)."""
    global _state, _atexit_registered  # noqa: PLW0603 - one offline AWS per process
    with _lock:
        if _state is not None:
            if state is None or state is _state:
                return _state
            uninstall()
        _check_moto_version()
        state = state or OfflineState()
        state.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            for name in SEAM_MODULES:
                importlib.import_module(name).install(state)
        except BaseException:
            _patching.restore_all()
            raise
        _state = state
        if not _atexit_registered:
            atexit.register(uninstall)
            _atexit_registered = True
        return state


def uninstall() -> None:
    """Remove every seam, stop running jobs' bookkeeping and every inference server (idempotent)."""
    global _state  # noqa: PLW0603 - one offline AWS per process
    with _lock:
        if _state is None:
            return
        for name in reversed(SEAM_MODULES):
            module: Any = importlib.import_module(name)
            if hasattr(module, "uninstall"):
                module.uninstall()
        _patching.restore_all()
        _state = None


def current_state() -> OfflineState | None:
    return _state
