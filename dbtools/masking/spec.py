"""Reading DBTOOLS['MASK']: which model or field each entry names and which rule it asks for.

Shared by the engine, which builds maskers from it, and by the validation,
which turns every way it can go wrong into one sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.module_loading import import_string

from .rules import (
    ANY_KIND,
    BUILT_IN,
    DATE,
    DATETIME,
    EMAIL,
    IP,
    JSON,
    SLUG,
    TEXT,
    URL,
    MaskContext,
    Rule,
)

JSON_PATH = re.compile(r"\$((\.[A-Za-z0-9_\-]+)|(\[\*\])|(\[\d+\]))+")
PATH_STEP = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\*|\d+)\]")
ALL_ITEMS = "*"


class SpecError(ValueError):
    """One entry of DBTOOLS['MASK'] that cannot be used; the message says why."""


def field_kind(field: models.Field[Any, Any]) -> str:
    """What a column holds, in the terms rules state what they fit."""
    for field_class, kind in (
        (models.EmailField, EMAIL),
        (models.URLField, URL),
        (models.SlugField, SLUG),
        (models.GenericIPAddressField, IP),
        (models.DateTimeField, DATETIME),
        (models.DateField, DATE),
        (models.JSONField, JSON),
        (models.CharField, TEXT),
        (models.TextField, TEXT),
    ):
        if isinstance(field, field_class):
            return kind
    return field.get_internal_type()


@dataclass(frozen=True)
class ChosenRule:
    """A rule named in the setting, with its argument (date_shift:90) if any."""

    text: str
    rule: Rule

    @property
    def argument(self) -> str | None:
        return self.text.partition(":")[2] or None


def choose_rule(text: object) -> ChosenRule:
    if not isinstance(text, str) or not text:
        raise SpecError(f"the rule must be a rule's name or a function's dotted path, not {text!r}")
    name, colon, argument = text.partition(":")
    if name in BUILT_IN:
        rule = BUILT_IN[name]
        if colon and not rule.takes_argument:
            raise SpecError(f"the rule {name!r} takes no argument, but {text!r} gives one")
        if colon and not (argument.isdigit() and int(argument) > 0):
            raise SpecError(f"{text!r} needs a whole number of days of 1 or more after the colon")
        return ChosenRule(text, rule)
    if "." not in text:
        known = ", ".join(sorted([*BUILT_IN, "drop"]))
        raise SpecError(
            f"{text!r} is neither a built-in rule ({known}) nor the dotted path of a function"
        )
    try:
        function = import_string(text)
    except ImportError as exc:
        raise SpecError(f"the function {text!r} cannot be imported ({exc})") from exc
    if not callable(function):
        raise SpecError(f"{text!r} is not a function")
    return ChosenRule(text, custom_rule(text, function))


def custom_rule(path: str, function: Callable[[Any, MaskContext], Any]) -> Rule:
    # A project's function is trusted to fit its field and, through
    # context.digest (which mixes in the attempt), to resolve collisions.
    return Rule(path, function, frozenset({ANY_KIND}), unique=True)


def parse_path(path: str) -> tuple[str | int, ...]:
    """$.a.b[*].c -> ("a", "b", "*", "c"); [2] -> 2."""
    if not JSON_PATH.fullmatch(path):
        raise SpecError(
            f"{path!r} is not a JSON path dbtools reads; write $.key, $.key.inner, $.list[*].key "
            f"or $.list[0]"
        )
    steps: list[str | int] = []
    for key, index in PATH_STEP.findall(path):
        steps.append(key if key else (index if index == ALL_ITEMS else int(index)))
    return tuple(steps)


def target(label: object) -> tuple[type[models.Model], models.Field[Any, Any] | None]:
    """The model ("app.Model") or model and field ("app.Model.field") a key of MASK names."""
    parts = label.split(".") if isinstance(label, str) else []
    if len(parts) not in (2, 3) or not all(parts):
        raise SpecError(
            f"{label!r} must name a model or a field, such as 'shop.User' or 'shop.User.email'"
        )
    try:
        model = apps.get_model(parts[0], parts[1])
    except (LookupError, ValueError):
        raise SpecError(f"{parts[0]}.{parts[1]} is not an installed model") from None
    if len(parts) == 2:
        return model, None
    try:
        field = model._meta.get_field(parts[2])
    except FieldDoesNotExist:
        raise SpecError(f"{model._meta.label} has no field {parts[2]!r}") from None
    if not getattr(field, "concrete", False) or field.many_to_many:
        raise SpecError(f"{model._meta.label}.{parts[2]} is not a column of its table")
    return model, field


def unique_scope(field: models.Field[Any, Any]) -> str | None:
    """ "alone" if no two rows share the column's value, "together" if only with other columns."""
    if field.unique:
        return "alone"
    meta = field.model._meta
    unique = [c for c in meta.constraints if isinstance(c, models.UniqueConstraint)]
    groups = [tuple(c.fields) for c in unique if c.fields]
    groups += [tuple(group) for group in meta.unique_together]
    named = [group for group in groups if field.name in group or field.attname in group]
    if any(len(group) == 1 for group in named):
        return "alone"
    return "together" if named or in_expression(field, unique) else None


def in_expression(field: models.Field[Any, Any], unique: list[models.UniqueConstraint]) -> bool:
    """UniqueConstraint(Lower("nick")): what is unique is a function of the
    column, which may differ where the values do not, so the column is taken
    as unique together with others."""
    return any(field.name in expression_fields(c) for c in unique if c.expressions)


def expression_fields(constraint: models.UniqueConstraint) -> set[str]:
    """The fields a unique constraint's expressions refer to by F()."""
    names: set[str] = set()
    for expression in constraint.expressions:
        parts = expression.flatten() if hasattr(expression, "flatten") else [expression]
        # F.name: django-stubs leave it out.
        names.update(p.name for p in parts if isinstance(p, models.F))  # type: ignore[attr-defined]
    return names
