"""Every problem with DBTOOLS['MASK'] and ['MASK_KEY'], one sentence each, with its check id."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import models

from .rules import ANY_KIND, DROP, JSON
from .spec import ChosenRule, SpecError, choose_rule, field_kind, parse_path, target, unique_scope

SHORTEST_KEY = 32
SHAPE, UNKNOWN_TARGET, DOES_NOT_FIT, NOT_UNIQUE, KEY, DANGLING, NOT_ITS_TABLE, POINTED_AT = (
    "dbtools.E010",
    "dbtools.E011",
    "dbtools.E012",
    "dbtools.E013",
    "dbtools.E014",
    "dbtools.E015",
    "dbtools.E016",
    "dbtools.E017",
)
Problem = tuple[str, str]


def mask_problems() -> list[Problem]:
    """Nothing when MASK is not set; otherwise every problem with the rules and the key."""
    raw = getattr(settings, "DBTOOLS", None) or {}
    if not isinstance(raw, dict) or raw.get("MASK") in (None, {}):
        return []
    rules = raw["MASK"]
    if not isinstance(rules, dict):
        return [
            (
                SHAPE,
                f"DBTOOLS['MASK'] must be a dict of models and fields to rules, such as {{'shop.User.email': 'email'}}, not {rules!r}.",
            )
        ]
    problems = [problem for label, spec in rules.items() for problem in entry_problems(label, spec)]
    exclude = raw.get("EXCLUDE")
    excluded = (
        {x for x in exclude if isinstance(x, str)} if isinstance(exclude, list | tuple) else set()
    )
    return problems + dangling_drops(rules, excluded) + key_problems(raw.get("MASK_KEY"))


def dangling_drops(rules: dict[Any, Any], excluded: set[str]) -> list[Problem]:
    """A dropped table that kept rows point at would leave their foreign keys
    dangling; a model left out by EXCLUDE is not kept."""
    dropped: dict[str, str] = {}
    for label, spec in rules.items():
        if spec == DROP and isinstance(label, str) and label.count(".") == 1:
            try:
                dropped[target(label)[0]._meta.label] = label
            except SpecError:
                continue  # reported by entry_problems
    pointing: dict[str, list[str]] = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.proxy or meta.label in dropped or {meta.label, meta.app_label} & excluded:
            continue
        for field in model._meta.local_concrete_fields:
            remote = field.remote_field.model if field.remote_field else None
            if remote is not None and remote._meta.label in dropped:
                name = f"{model._meta.label}.{field.name}"
                pointing.setdefault(remote._meta.label, []).append(name)
    return [
        (
            DANGLING,
            f"DBTOOLS['MASK'][{dropped[label]!r}]: 'drop' leaves out {label}, but "
            f"{', '.join(sorted(fields))} point at its rows and are kept; drop those models "
            f"too, or mask {label}'s fields instead.",
        )
        for label, fields in sorted(pointing.items())
    ]


def key_problems(key: object) -> list[Problem]:
    if key is None or key == "":
        return [
            (
                KEY,
                "DBTOOLS['MASK'] is set but DBTOOLS['MASK_KEY'] is not; set it to a secret of at least 32 characters kept out of the code, such as os.environ['DBTOOLS_MASK_KEY'].",
            )
        ]
    if not isinstance(key, str | bytes) or len(key) < SHORTEST_KEY:
        return [
            (
                KEY,
                f"DBTOOLS['MASK_KEY'] must be a secret of at least {SHORTEST_KEY} characters (python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one); the one set is too short to keep the masked values from being guessed back.",
            )
        ]
    return []


def entry_problems(label: object, spec: object) -> list[Problem]:
    where = f"DBTOOLS['MASK'][{label!r}]"
    try:
        model, field = target(label)
    except SpecError as exc:
        code = (
            SHAPE
            if not isinstance(label, str) or label.count(".") not in (1, 2)
            else UNKNOWN_TARGET
        )
        return [(code, f"{where}: {exc}.")]
    elsewhere = table_problems(where, model, field)
    if elsewhere:
        return elsewhere
    if field is None:
        if spec != DROP:
            return [
                (
                    DOES_NOT_FIT,
                    f"{where}: a whole model can only be dropped ('drop'); name a field, such as '{model._meta.label}.<field>', to mask it.",
                )
            ]
        return []
    if spec == DROP:
        return [
            (
                DOES_NOT_FIT,
                f"{where}: 'drop' leaves out a whole table; write it on the model, {model._meta.label!r}, or give the field a rule that masks it.",
            )
        ]
    field_name = f"{model._meta.label}.{field.name}"
    keys = key_role_problems(where, field, field_name)
    if keys:
        return keys
    if isinstance(spec, dict):
        return json_problems(where, field, field_name, spec)
    try:
        chosen = choose_rule(spec)
    except SpecError as exc:
        return [(SHAPE, f"{where}: {exc}.")]
    return fit_problems(where, field, field_name, chosen)


def key_role_problems(where: str, field: models.Field[Any, Any], field_name: str) -> list[Problem]:
    """A key, or a column other rows point at, keeps its value: masking it
    would break the rows that point at it, and theirs would keep the original."""
    role = None
    if field.primary_key or field in field.model._meta.pk_fields:
        role = "the primary key" if field.primary_key else "part of the composite primary key"
    elif field.is_relation:
        role = "a foreign key"
    if role:
        return [
            (
                DOES_NOT_FIT,
                f"{where}: {field_name} is {role}; masking it would break the rows that point at it, so leave it out of MASK.",
            )
        ]
    pointing = sorted(
        f"{rel.field.model._meta.label}.{rel.field.name}"
        for rel in field.model._meta.related_objects
        if field in getattr(rel.field, "foreign_related_fields", ())
    )
    if pointing:
        return [
            (
                POINTED_AT,
                f"{where}: {field_name} is the target of {', '.join(pointing)} (to_field); masking it would break the rows that point at it, which keep its original values, so leave it out of MASK.",
            )
        ]
    return []


def table_problems(
    where: str, model: type[models.Model], field: models.Field[Any, Any] | None
) -> list[Problem]:
    """A rule must name the model whose table holds the column: a masked backup
    reads tables, so a rule on a proxy model or on a field a multi-table child
    inherits would match no table and leave the column unmasked."""
    label = model._meta.label
    if model._meta.swapped:
        return [
            (
                NOT_ITS_TABLE,
                f"{where}: {label} is swapped for {model._meta.swapped} (settings.{model._meta.swappable}) and has no table; name {model._meta.swapped!r} instead.",
            )
        ]
    if field is None and model._meta.proxy:
        holder = model._meta.concrete_model or model
        return [
            (
                NOT_ITS_TABLE,
                f"{where}: {label} is a proxy model and has no table of its own; name {holder._meta.label!r}, whose table holds its rows, instead.",
            )
        ]
    if field is not None and field.model is not model:
        named = f"{field.model._meta.label}.{field.name}"
        why = (
            "is a proxy model"
            if model._meta.proxy
            else f"inherits {field.name} from {field.model._meta.label}"
        )
        return [
            (
                NOT_ITS_TABLE,
                f"{where}: {label} {why}, and the column is in {field.model._meta.label}'s table; name {named!r} instead (it masks the column for {label} too).",
            )
        ]
    return []


def json_problems(
    where: str, field: models.Field[Any, Any], field_name: str, paths: dict[Any, Any]
) -> list[Problem]:
    if field_kind(field) != JSON:
        return [
            (
                DOES_NOT_FIT,
                f"{where}: JSON paths need a JSONField, and {field_name} is a {field.get_internal_type()}.",
            )
        ]
    problems = []
    for path, spec in paths.items():
        try:
            parse_path(path)
            chosen = choose_rule(spec)
        except (SpecError, TypeError) as exc:
            problems.append((SHAPE, f"{where}[{path!r}]: {exc}."))
            continue
        if chosen.rule.name == "date_shift":
            problems.append(
                (
                    DOES_NOT_FIT,
                    f"{where}[{path!r}]: the rule {chosen.text!r} does not work inside JSON; use 'text', 'hash', 'null' or a text rule.",
                )
            )
    return problems


def fit_problems(
    where: str, field: models.Field[Any, Any], field_name: str, chosen: ChosenRule
) -> list[Problem]:
    rule, kind = chosen.rule, field_kind(field)
    if ANY_KIND not in rule.kinds and kind not in rule.kinds:
        return [
            (
                DOES_NOT_FIT,
                f"{where}: the rule {rule.name!r} cannot fit {field_name}, a {type(field).__name__}; it fits {kinds_named(rule.kinds)}.",
            )
        ]
    if rule.name == "null" and not field.null:
        return [
            (
                DOES_NOT_FIT,
                f"{where}: 'null' on {field_name}, which is NOT NULL; use 'empty' or a rule that makes a value.",
            )
        ]
    if field.max_length is not None and field.max_length < rule.min_length:
        return [
            (
                DOES_NOT_FIT,
                f"{where}: the rule {rule.name!r} needs {rule.min_length} characters and {field_name} holds {field.max_length}; choose a shorter rule such as 'hash' or 'text'.",
            )
        ]
    scope = unique_scope(field)
    if scope and not rule.unique:
        together = "unique" if scope == "alone" else "part of a unique constraint"
        return [
            (
                NOT_UNIQUE,
                f"{where}: the rule {rule.name!r} can give two rows the same value, and {field_name} is {together}; use 'hash', 'email' or 'ip', which stay unique.",
            )
        ]
    return []


def kinds_named(kinds: frozenset[str]) -> str:
    names = {
        "text": "CharField and TextField",
        "email": "EmailField",
        "url": "URLField",
        "slug": "SlugField",
        "ip": "GenericIPAddressField",
        "date": "DateField",
        "datetime": "DateTimeField",
        "json": "JSONField",
    }
    return ", ".join(names[kind] for kind in sorted(kinds))
