"""Subset backups: what --subset, --limit and --with-children ask for, checked.

`parse_subset()` reads the options (no database needed) and `resolve()`
checks them against the tables being backed up: every label must name one
of them, every lookup must be one the ORM accepts for that model. Both raise
a one-line ConfigurationError, so backupdb and the Python API agree. The
rows themselves are chosen in subset_rows.py, inside the backup's snapshot.

Which tables get which rows (docs/subset-backups.md):
- *reached*: the chosen tables, every table they reference (transitively),
  and with --with-children the tables that point at them (transitively,
  downwards) and what those reference: only the rows the subset reaches;
- every other table: no rows. A table pointing at a reached one could point
  at rows the file does not hold; one that nothing chosen reaches (settings,
  a catalogue, a mailing list) is no part of what was asked for: choose it
  whole with `--subset app.Model` to have it.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, FieldError, ValidationError
from django.db.models import DateTimeField, Model, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from ..exceptions import ConfigurationError
from ..graph import Plan, Table, database_models, label_problem

# A lookup is a field path with an optional lookup: created_at__gte, user__email.
LOOKUP = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Filters are joined by commas; a comma followed by something that is not
# `name=` belongs to the value (created_at__range=2025-01-01,2025-06-01).
FILTER_SPLIT = re.compile(r",(?=[A-Za-z_][A-Za-z0-9_]*=)")
LISTS = ("in", "range")  # lookups whose value is a comma-separated list
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")
DIGITS = re.compile(r"[0-9]+")  # str.isdigit() also takes other scripts' digits
MAX_LIMIT = 2**63 - 1  # the header is JSON with 64-bit integers, and so is SQL's LIMIT
SUBSET_LABEL = "subset"  # the word in a subset backup's file name
REDACTED = "<redacted>"  # a lookup's value, in a masked backup's header


@dataclass(frozen=True)
class Choice:
    """One --subset: a model and the filters its rows must match (none: every row)."""

    text: str
    label: str
    filters: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SubsetSpec:
    choices: tuple[Choice, ...]
    limits: tuple[tuple[str, int], ...]
    with_children: bool

    def definition(self, redact: bool = False) -> dict[str, Any]:
        """What the backup's header records (and listbackups shows); `redact` (a
        masked backup) leaves out the lookups' values, which may be personal."""
        return {
            "subset": [redacted(c.text) if redact else c.text for c in self.choices],
            "limit": dict(self.limits),
            "with_children": self.with_children,
        }


def redacted(text: Any) -> str:
    """A --subset with its values replaced: `shop.User:email=<redacted>`."""
    label, colon, rest = str(text).partition(":")
    if not rest.strip():
        return str(text)
    lookups = [part.partition("=")[0] for part in FILTER_SPLIT.split(rest)]
    return label + colon + ",".join(f"{lookup}={REDACTED}" for lookup in lookups)


def subset_line(definition: Any, redact: bool = False) -> str:
    """A header's subset definition as the options that made it (listbackups);
    `redact` (a masked backup) shows no value, even if an older file holds them."""
    if not isinstance(definition, Mapping):
        return "(not readable)"
    texts = definition.get("subset") or ()
    parts = [f"--subset {redacted(t) if redact else t!r}" for t in texts]
    limits = definition.get("limit")
    if isinstance(limits, Mapping):
        parts += [f"--limit {label}={n}" for label, n in limits.items()]
    if definition.get("with_children"):
        parts.append("--with-children")
    return " ".join(parts) or "(not readable)"


def parse_subset(
    subset: Sequence[str],
    limit: Mapping[str, int] | Sequence[str] | None,
    with_children: bool,
) -> SubsetSpec | None:
    """The options as given, checked for form; None when no subset is asked for."""
    if isinstance(subset, str):
        subset = [subset]
    choices = tuple(parse_choice(text) for text in subset)
    limits = parse_limits(limit)
    if not choices and not limits:
        if with_children:
            raise ConfigurationError(
                "--with-children follows foreign keys back from the rows --subset or --limit "
                "chooses; give one of them too."
            )
        return None
    return SubsetSpec(choices, limits, with_children)


def parse_choice(text: str) -> Choice:
    """`app_label.Model:field__lookup=value,other=value`, or `app_label.Model` for every row."""
    if not isinstance(text, str):
        raise ConfigurationError(
            f"--subset takes text such as 'shop.Order:id__lte=100', not {text!r}."
        )
    label, _, rest = text.partition(":")
    check_model_label("--subset", label.strip(), text)
    filters = []
    for part in FILTER_SPLIT.split(rest) if rest.strip() else []:
        lookup, equals, value = part.partition("=")
        if not equals or not all(LOOKUP.fullmatch(p) for p in lookup.strip().split("__")):
            raise ConfigurationError(
                f"--subset {text!r}: {part!r} is not a lookup; write field__lookup=value, "
                f"several joined by commas (e.g. 'shop.Order:created_at__gte=2025-06-01,status=paid')."
            )
        filters.append((lookup.strip(), value))
    return Choice(text, label.strip(), tuple(filters))


def check_model_label(option: str, label: str, text: str) -> None:
    if label.count(".") != 1 or not all(label.split(".")):
        raise ConfigurationError(
            f"{option} {text!r}: {label!r} is not app_label.Model (e.g. shop.Order)."
        )


def parse_limits(limit: Mapping[str, int] | Sequence[str] | None) -> tuple[tuple[str, int], ...]:
    """--limit LABEL=N (repeatable), or the API's {label: N}."""
    if limit is None:
        return ()
    pairs: list[tuple[str, Any]] = []
    if isinstance(limit, Mapping):
        pairs = list(limit.items())
    else:
        for text in [limit] if isinstance(limit, str) else limit:
            label, equals, number = str(text).partition("=")
            if not equals or not DIGITS.fullmatch(number.strip()):
                raise ConfigurationError(
                    f"--limit {text!r}: write app_label.Model=N, e.g. shop.User=1000."
                )
            pairs.append((label.strip(), int(number)))
    for label, number in pairs:
        check_model_label("--limit", label, f"{label}={number}")
        if type(number) is not int or not 1 <= number <= MAX_LIMIT:
            raise ConfigurationError(
                f"--limit {label}: the number of rows must be a whole number from 1 to "
                f"{MAX_LIMIT}, not {number!r}."
            )
    labels = [label.lower() for label, _ in pairs]
    if len(set(labels)) < len(labels):
        raise ConfigurationError("--limit names a model twice; give each model one limit.")
    return tuple(pairs)


# Checked against the tables ----------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """A chosen table: which of its rows, at most how many (first by primary key)."""

    table: Table
    where: Q | None  # None: every row
    limit: int | None


@dataclass(frozen=True)
class Selection:
    spec: SubsetSpec
    seeds: tuple[Seed, ...]
    reached: frozenset[str]  # tables holding the rows the subset reaches
    empty: frozenset[str]  # every other table: no rows
    tables: Mapping[str, Table]  # every table of the plan, by label

    def definition(self, plan: Plan, redact: bool = False) -> dict[str, Any]:
        """The header's record: the options, and the tables no chosen row reaches
        (`unreached`, in file order), which the backup does not cover: a restore
        leaves them as they are, whatever its mode."""
        unreached = [t.label for t in plan.tables if t.label in self.empty]
        return {**self.spec.definition(redact), "unreached": unreached}


def resolve(spec: SubsetSpec, plan: Plan, alias: str) -> Selection:
    """The subset against the tables being backed up; a one-line error for a
    label that is not one of them or a lookup the ORM refuses."""
    by_label = {t.label.lower(): t for t in plan.tables}
    wheres: dict[str, Q | None] = {}  # None: every row
    for choice in spec.choices:
        table = table_named(choice.label, choice.text, alias, by_label, "--subset")
        where = checked_filter(table, choice, alias) if choice.filters else None
        if table.label in wheres:  # two --subset of one model: the rows of either
            before = wheres[table.label]
            where = None if before is None or where is None else before | where
        wheres[table.label] = where
    limits = {
        table_named(label, f"{label}={n}", alias, by_label, "--limit").label: n
        for label, n in spec.limits
    }
    seeds = tuple(
        Seed(table, wheres.get(table.label), limits.get(table.label))
        for table in plan.tables
        if table.label in wheres or table.label in limits
    )
    reached = reached_tables(plan, {s.table.label for s in seeds}, spec.with_children)
    check_references_kept(plan, reached)
    return Selection(
        spec=spec,
        seeds=seeds,
        reached=frozenset(reached),
        empty=frozenset(t.label for t in plan.tables if t.label not in reached),
        tables={t.label: t for t in plan.tables},
    )


def check_references_kept(plan: Plan, reached: set[str]) -> None:
    """Refuse a subset whose rows reference a table this backup leaves out:
    their foreign keys would point at rows the file does not hold."""
    kept = {t.label for t in plan.tables}
    left_out = sorted(
        {target for t in plan.tables if t.label in reached for target in t.depends_on} - kept
    )
    if left_out:
        raise ConfigurationError(
            f"The chosen rows reference {', '.join(left_out)}, which this backup leaves out "
            f"(--only, --exclude or DBTOOLS['EXCLUDE']), so their foreign keys would point at "
            f"rows the file does not hold; back up those tables too, or choose rows that do not "
            f"reach them."
        )


def table_named(
    label: str, text: str, alias: str, by_label: Mapping[str, Table], option: str
) -> Table:
    table = by_label.get(label.lower())
    if table is not None:
        return table
    models = database_models(alias)
    problem = label_problem(label, models)
    model = next((m for m in models if m._meta.label_lower == label.lower()), None)
    if problem is None and model is not None and model._meta.proxy:
        concrete = model._meta.concrete_model or model
        problem = (
            f"{model._meta.label} is a proxy model, which has no table of its own: its rows "
            f"are those of {concrete._meta.label}; choose them there: "
            f"{option} {concrete._meta.label + text.strip()[len(label) :]!r}."
        )
    elif problem is None:  # a real model, left out of this backup
        problem = (
            f"{label} is not among the tables this backup holds (left out by --only, "
            f"--exclude or DBTOOLS['EXCLUDE']), so no rows of it can be chosen."
        )
    raise ConfigurationError(f"{option} {text!r}: {problem}")


def checked_filter(table: Table, choice: Choice, alias: str) -> Q:
    """The choice's filters as a Q the ORM has accepted for this model (no query is run)."""
    where = Q(**{lookup: typed_value(table.model, lookup, raw) for lookup, raw in choice.filters})
    try:
        QuerySet(model=table.model, using=alias).filter(where)
    except (FieldError, FieldDoesNotExist, ValidationError, ValueError, TypeError) as exc:
        reason = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        reason = " ".join(reason.split()).rstrip(".")
        raise ConfigurationError(
            f"--subset {choice.text!r}: {reason}. Write Django lookups on "
            f"{table.label}'s fields, as QuerySet.filter() takes them."
        ) from exc
    return where


def typed_value(model: type[Model], lookup: str, raw: str) -> Any:
    """The text of a value as the lookup wants it: a list for __in and __range,
    a boolean for __isnull, an aware date-time for a DateTimeField."""
    *path, last = lookup.split("__")
    if last == "isnull":
        if raw.strip().lower() in TRUE + FALSE:
            return raw.strip().lower() in TRUE
        return raw  # the ORM says what is wrong with it
    if last in LISTS:
        field = final_field(model, path)
        return [as_datetime(field, item) for item in raw.split(",")]
    field = final_field(model, [*path, last])
    if field is None:  # `last` is a lookup (gte, lt, ...) on the field before it
        field = final_field(model, path)
    return as_datetime(field, raw)


def final_field(model: type[Model], path: Sequence[str]) -> Any:
    """The field a lookup path ends on, or None where it is not a plain field path."""
    field: Any = None
    for name in path:
        if field is not None:
            model = field.related_model
            if model is None:
                return None
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            if name != "pk":
                return None
            field = model._meta.pk
    return field


def as_datetime(field: Any, raw: str) -> Any:
    """A date or date-time given for a DateTimeField, made aware in TIME_ZONE, as
    Django would (without its warning for a naive value)."""
    if not isinstance(field, DateTimeField):
        return raw
    text = raw.strip()
    try:
        value = parse_datetime(text)
        day = None if value else parse_date(text)
    except ValueError:  # well formed, not a real date: the ORM says so in its words
        return raw
    if value is None:
        if day is None:
            return raw
        value = datetime.datetime(day.year, day.month, day.day)
    if settings.USE_TZ and timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


# Which tables the subset reaches ----------------------------------------------------


def references(plan: Plan) -> dict[str, set[str]]:
    labels = {t.label for t in plan.tables}
    return {t.label: {d for d in t.depends_on if d in labels} for t in plan.tables}


def reached_tables(plan: Plan, chosen: set[str], with_children: bool) -> set[str]:
    """The chosen tables, their children's tables (with --with-children,
    transitively) and every table any of them references."""
    refs = references(plan)
    start = set(chosen)
    if with_children:
        start |= closure(start, referenced_by(refs))
    return start | closure(start, refs)


def referenced_by(refs: Mapping[str, set[str]]) -> dict[str, set[str]]:
    back: dict[str, set[str]] = {label: set() for label in refs}
    for label, targets in refs.items():
        for target in targets:
            back[target].add(label)
    return back


def closure(start: set[str], edges: Mapping[str, set[str]]) -> set[str]:
    """Every label reachable from `start` along `edges`, `start` left out unless reached again."""
    found: set[str] = set()
    todo = list(start)
    while todo:
        for target in edges.get(todo.pop(), ()):
            if target not in found:
                found.add(target)
                todo.append(target)
    return found
