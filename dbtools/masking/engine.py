"""The Masker: DBTOOLS['MASK'] turned into one small function per masked table."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.db import models

from ..exceptions import ConfigurationError, DbtoolsError
from .rules import BUILT_IN, JSON, MaskContext, Rule, canonical, keyed_signer
from .spec import ALL_ITEMS, choose_rule, field_kind, parse_path, target, unique_scope

# Part of the fingerprint: a change in how rules compute their output changes it too.
RULES_VERSION = 1
# Collisions on a unique column are rare (the rules allowed there have wide
# outputs); this many in a row means the rule cannot give the column enough values.
MAX_ATTEMPTS = 50


# (value, attempt) -> the masked value; attempt > 0 only to resolve a collision.
Masking = Callable[[Any, int], Any]
# Values (none None) -> each one's masked value at attempt 0, as Masking gives it.
BatchMasking = Callable[[list[Any]], list[Any]]
# Values a collision moved off their usual output: by the column masker's
# identity, then by the value's canonical bytes.
Remapped = dict[tuple[Any, ...], dict[bytes, Any]]
# No output computed yet (None is one: the null rule's).
UNKNOWN: Any = object()


class MaskingError(DbtoolsError):
    """A value could not be masked within its column's constraints."""


def fingerprint_of(rules: Mapping[str, Any]) -> str:
    """The rule set's identity (never the key's): equal for equal rules in any order."""
    text = json.dumps({"version": RULES_VERSION, "rules": rules}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def short_hash(value: Any) -> int:
    return int.from_bytes(hashlib.blake2b(canonical(value), digest_size=8).digest(), "big")


@dataclass
class ColumnMasker:
    """Masks the values of one column; `identity` says which other columns would mask alike."""

    label: str
    identity: tuple[Any, ...]
    mask: Masking
    mask_all: BatchMasking | None = None  # a built-in rule's, over a batch at once


@dataclass
class UniqueTracker:
    """The outputs one unique column has given this run, each with the input it came from.

    Only unique columns are tracked, and only 8-byte hashes are kept (in CPython
    about 150 bytes a row). The input is kept because a column unique only
    together with others may repeat a value: the same input giving the same
    output again is not a collision."""

    given: dict[int, int] = field(default_factory=dict)

    def claim(self, output_hash: int, source_hash: int) -> bool:
        """True when no other input has given this output on this column."""
        return self.given.setdefault(output_hash, source_hash) == source_hash


class RowMasker:
    """Masks one table's rows, given as {attname: value} the way backup reads them
    (a JSON column may come as its text: it is parsed, masked and written back as text)."""

    def __init__(
        self,
        model: type[models.Model],
        columns: list[tuple[str, ColumnMasker, UniqueTracker | None]],
        remapped: Remapped,
    ) -> None:
        self.model = model
        self.columns = columns
        self.remapped = remapped  # shared by every table of one Masker: see Masker.remapped

    @property
    def masked_columns(self) -> list[str]:
        return [column for column, _, _ in self.columns]

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row with its masked columns replaced, changed in place and returned."""
        for n, (column, _, _) in enumerate(self.columns):
            value = row.get(column)
            if value is not None:  # NULL stays NULL: nothing to hide, and NOT NULL never sees it
                row[column] = self.mask_value(n, value)
        return row

    @property
    def by_column(self) -> bool:
        """Whether masking rows column by column gives what row by row does. It
        does unless a unique column's collision can remap a value for another
        column of the table: only then does the order across columns count."""
        identities = [masker.identity for _, masker, _ in self.columns]
        has_unique = any(tracker is not None for _, _, tracker in self.columns)
        return not has_unique or len(set(identities)) == len(identities)

    def mask_column(self, n: int, values: list[Any]) -> list[Any]:
        """The n-th masked column's values, row after row, masked (None stays None)."""
        _, masker, tracker = self.columns[n]
        if masker.mask_all is None:
            return [None if v is None else self.mask_value(n, v) for v in values]
        present = [v for v in values if v is not None]
        firsts = masker.mask_all(present)
        remapped = self.remapped.get(masker.identity)
        if tracker is not None:
            firsts = [
                self.unique_value(masker, tracker, v, first)
                for v, first in zip(present, firsts, strict=True)
            ]
        elif remapped:
            firsts = [
                first if (known := remapped.get(canonical(v))) is None else known
                for v, first in zip(present, firsts, strict=True)
            ]
        if len(present) == len(values):
            return firsts
        masked = iter(firsts)
        return [None if v is None else next(masked) for v in values]

    def mask_value(self, n: int, value: Any) -> Any:
        """`value` (not None) of the n-th masked column, masked."""
        _, masker, tracker = self.columns[n]
        if tracker is not None:
            return self.unique_value(masker, tracker, value)
        remapped = self.remapped.get(masker.identity)
        known = remapped.get(canonical(value)) if remapped else None
        return known if known is not None else masker.mask(value, 0)

    def unique_value(
        self, masker: ColumnMasker, tracker: UniqueTracker, value: Any, first: Any = UNKNOWN
    ) -> Any:
        """`value` masked to an output no other input has had on this column; `first`,
        when known, is its output at attempt 0."""
        source = short_hash(value)
        remapped = self.remapped.get(masker.identity)
        for attempt in range(MAX_ATTEMPTS):
            output = remapped.get(canonical(value)) if attempt == 0 and remapped else None
            if output is None:
                output = (
                    first if attempt == 0 and first is not UNKNOWN else masker.mask(value, attempt)
                )
            if output is None:
                return None  # NULLs never clash in a unique index
            if tracker.claim(short_hash(output), source):
                if attempt:
                    self.remapped.setdefault(masker.identity, {})[canonical(value)] = output
                return output
        raise MaskingError(
            f"Masking {masker.label} gave the same value to different rows {MAX_ATTEMPTS} times, "
            f"and the column is unique; give it a rule with more possible values, such as 'hash'."
        )


class Masker:
    """DBTOOLS['MASK'] read once: which tables to drop and how to mask the rest.

    The key is kept only inside a keyed signer; `fingerprint` identifies the
    rules, never the key."""

    def __init__(self, rules: Mapping[str, Any], key: str | bytes) -> None:
        self.rules = dict(rules)
        self.fingerprint = fingerprint_of(self.rules)
        self._sign = keyed_signer(key)
        self._dropped: set[str] = set()
        self._fields: dict[str, list[tuple[models.Field[Any, Any], Any]]] = {}
        for label, spec in self.rules.items():
            model, model_field = target(label)
            if model_field is None:
                self._dropped.add(model._meta.label)
            else:
                self._fields.setdefault(model._meta.label, []).append((model_field, spec))
        # Values a collision moved off their usual output, by rule and input, so
        # the same input masks alike in every other table that run. Only
        # collisions land here, so it stays small.
        self.remapped: Remapped = {}

    @classmethod
    def from_settings(cls) -> Masker | None:
        """The project's Masker, or None when DBTOOLS has no MASK; bad settings raise
        ConfigurationError with every problem `manage.py check` reports."""
        from .validate import mask_problems

        raw = getattr(settings, "DBTOOLS", None) or {}
        if not isinstance(raw, dict) or not raw.get("MASK"):
            return None
        problems = mask_problems()
        if problems:
            raise ConfigurationError(" ".join(message for _, message in problems))
        return cls(raw["MASK"], raw["MASK_KEY"])

    def targets(self) -> list[tuple[str, str | None]]:
        """Each rule's model label and the attribute of the column it masks
        (None: a table it drops), as the code's models name them."""
        return [(label, None) for label in sorted(self._dropped)] + [
            (label, model_field.attname)
            for label, fields in sorted(self._fields.items())
            for model_field, _ in fields
        ]

    def drops(self, model: type[models.Model]) -> bool:
        """True when the table's rows are left out of a masked backup."""
        return model._meta.label in self._dropped

    def masks(self, model: type[models.Model]) -> bool:
        """True when a masked backup changes the table: its rows are dropped or a column masked."""
        return model._meta.label in self._fields or self.drops(model)

    def for_table(self, model: type[models.Model]) -> RowMasker | None:
        """The masker of one table's rows, or None when none of its columns is masked."""
        fields = self._fields.get(model._meta.label)
        if not fields:
            return None
        columns = []
        for model_field, spec in fields:
            tracker = UniqueTracker() if unique_scope(model_field) else None
            columns.append((model_field.attname, self.column_masker(model_field, spec), tracker))
        return RowMasker(model, columns, self.remapped)

    def column_masker(self, model_field: models.Field[Any, Any], spec: Any) -> ColumnMasker:
        label = f"{model_field.model._meta.label}.{model_field.name}"
        base = MaskContext(
            self._sign,
            max_length=model_field.max_length,
            kind=field_kind(model_field),
            protocol=getattr(model_field, "protocol", "both"),
        )
        identity = (json.dumps(spec, sort_keys=True), base.max_length, base.kind, base.protocol)
        if isinstance(spec, dict):
            mask = json_paths_masker(spec, MaskContext(self._sign))
        else:
            chosen = choose_rule(spec)
            context = replace(base, argument=chosen.argument)
            mask = plain_masker(chosen.rule.apply, context)
            if chosen.rule.name not in BUILT_IN:
                mask = checked_custom(mask, label, chosen.text, model_field)
            elif chosen.rule.name == "null" or base.kind != JSON:  # null: SQL NULL, not JSON null
                return ColumnMasker(label, identity, mask, batch_masker(chosen.rule, context))
        if base.kind == JSON:
            mask = through_json_text(mask)
        return ColumnMasker(label, identity, mask)


def plain_masker(apply: Callable[[Any, MaskContext], Any], context: MaskContext) -> Masking:
    def mask(value: Any, attempt: int) -> Any:
        return apply(value, replace(context, attempt=attempt) if attempt else context)

    return mask


def batch_masker(rule: Rule, context: MaskContext) -> BatchMasking | None:
    apply_all = rule.apply_all
    if apply_all is None:
        return None

    def mask_all(values: list[Any]) -> list[Any]:
        return apply_all(values, context)

    return Remembering(mask_all)


class Remembering:
    """A built-in rule over batches that masks each distinct text once while
    values repeat (a first name, a city, an empty string): a built-in rule's
    output depends on the value alone, so a remembered one is the one it would
    give again. Past REMEMBERED values it forgets them all, so memory stays
    bounded; once a column shows few repeats it stops remembering, for good.
    Other values than text (whose equality is not their canonical bytes':
    1 == 1.0 == True) are always masked afresh."""

    REMEMBERED = 10_000
    # Remembering pays when at least this share of the values seen are repeats,
    # judged once this many have been seen.
    MIN_REPEATS, JUDGED_AFTER = 0.125, 2_000

    def __init__(self, mask_all: BatchMasking) -> None:
        self.mask_all = mask_all
        self.known: dict[str, Any] | None = {}
        self.seen = self.repeats = 0

    def __call__(self, values: list[Any]) -> list[Any]:
        known = self.known
        if known is None or any(type(value) is not str for value in values):
            return self.mask_all(values)
        distinct = dict.fromkeys(values)
        if len(known) + len(distinct) > self.REMEMBERED:
            known.clear()
        unseen = [value for value in distinct if value not in known]
        known.update(zip(unseen, self.mask_all(unseen), strict=True))
        self.seen += len(values)
        self.repeats += len(values) - len(unseen)
        masked = [known[value] for value in values]
        if self.seen >= self.JUDGED_AFTER and self.repeats < self.seen * self.MIN_REPEATS:
            self.known = None
        return masked


def checked_custom(
    mask: Masking, label: str, path: str, model_field: models.Field[Any, Any]
) -> Masking:
    """A project's function, held to what the built-in rules promise: NOT NULL
    stays satisfied and text fits the column."""

    def mask_checked(value: Any, attempt: int) -> Any:
        output = mask(value, attempt)
        if output is None and not model_field.null:
            raise MaskingError(
                f"The masking function {path} gave None for {label}, which is NOT NULL; "
                f"make it return a value."
            )
        limit = model_field.max_length
        if isinstance(output, str) and limit is not None and len(output) > limit:
            raise MaskingError(
                f"The masking function {path} gave {len(output)} characters for {label}, "
                f"which holds {limit}; make it cut its output to context.max_length."
            )
        return output

    return mask_checked


def through_json_text(mask: Masking) -> Masking:
    """Backup reads a JSON column as the database's JSON text: masked as the
    document it holds, and given back as text."""

    def mask_text(value: Any, attempt: int) -> Any:
        if not isinstance(value, str):
            return mask(value, attempt)
        return json.dumps(mask(json.loads(value), attempt), ensure_ascii=False)

    return mask_text


def json_paths_masker(paths: Mapping[str, str], context: MaskContext) -> Masking:
    """Masks the values at JSON paths in a document, leaving the rest of it as it is."""
    steps = [(parse_path(path), choose_rule(rule)) for path, rule in paths.items()]

    def mask(document: Any, attempt: int) -> Any:
        for path, chosen in steps:
            rule_context = replace(context, argument=chosen.argument, attempt=attempt)
            document = at_path(document, path, bound(chosen.rule.apply, rule_context))
        return document

    return mask


def bound(apply: Callable[[Any, MaskContext], Any], context: MaskContext) -> Callable[[Any], Any]:
    return lambda value: apply(value, context)


def at_path(value: Any, path: tuple[str | int, ...], change: Callable[[Any], Any]) -> Any:
    """A copy of value with change applied where path leads; a path that leads nowhere changes nothing."""
    if not path:
        return value if value is None else change(value)
    step, rest = path[0], path[1:]
    if isinstance(value, dict) and isinstance(step, str) and step in value:
        return {**value, step: at_path(value[step], rest, change)}
    if isinstance(value, list) and step == ALL_ITEMS:
        return [at_path(item, rest, change) for item in value]
    if isinstance(value, list) and isinstance(step, int) and -len(value) <= step < len(value):
        copy = list(value)
        copy[step] = at_path(value[step], rest, change)
        return copy
    return value
