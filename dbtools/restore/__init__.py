"""Putting a backup back: check and map it (plan.py), then load it in one
transaction (flow.py), table by table with the strategy that suits each
(strategies.py); or carry it forward through the migrations first
(replay.py), or prove it restores (drill.py).

The names below are imported on first use, so that backup.py can read
with text_reads.py without importing the whole restore.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .flow import Mode, Progress, RestoreResult, describe_target, restore_database
    from .overwrite import choose_mode
    from .plan import RestorePlan, prepare_restore

_NAMES = {
    "Mode": "flow",
    "Progress": "flow",
    "choose_mode": "overwrite",
    "RestorePlan": "plan",
    "RestoreResult": "flow",
    "describe_target": "flow",
    "prepare_restore": "plan",
    "restore_database": "flow",
}
__all__ = [
    "Mode",
    "Progress",
    "RestorePlan",
    "RestoreResult",
    "choose_mode",
    "describe_target",
    "prepare_restore",
    "restore_database",
]


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
