"""Masking rules for safe development copies: DBTOOLS['MASK'] read into a Masker.

The rules (docs/masking.md) map each value through HMAC-SHA256 keyed by
DBTOOLS['MASK_KEY'], so one input gives one output in every table and every
run, and another key gives other outputs. The key is never written anywhere;
`Masker.fingerprint` identifies the rule set, not the key.

The API a backup calls, in the order it needs it::

    masker = Masker.from_settings()   # None without MASK; ConfigurationError on bad rules
    masker.fingerprint                # for the backup's metadata
    for model in models_in_order:
        if masker.drops(model):       # a "drop" rule: leave the table's rows out
            continue
        row_masker = masker.for_table(model)   # None when no column of it is masked
        for row in rows:              # {column: value} as read, before the codec encodes it
            row = row_masker(row) if row_masker else row

One Masker serves one backup run: its RowMaskers remember, for unique columns
only, a hash of each value they gave, so a collision is found and resolved by
asking the rule again with the next attempt number (deterministic for rows read
in the same order). NULL stays NULL. `mask_problems()` lists what
`manage.py check` reports (dbtools.E010 to E017).
"""

from __future__ import annotations

from .engine import Masker, MaskingError, RowMasker
from .rules import BUILT_IN, MaskContext
from .validate import mask_problems

__all__ = ["BUILT_IN", "MaskContext", "Masker", "MaskingError", "RowMasker", "mask_problems"]
