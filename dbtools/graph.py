"""Which tables a backup or restore covers, and in which order.

A table is one model's own table: each level of multi-table inheritance and
each auto-created many-to-many table stands on its own. Tables are ordered so
that a table comes after the tables its foreign keys point to; tables that
point at each other (cycles, self-references) are grouped and recorded, since
no order can satisfy them and the restore must defer or disable FK checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.apps import apps
from django.db import connections, router
from django.db.migrations.loader import MigrationLoader
from django.db.models import Model

from .archive.codec import AnyField
from .exceptions import ConfigurationError


@dataclass(frozen=True)
class Table:
    model: type[Model]
    fields: tuple[AnyField, ...]  # local concrete columns, generated ones left out
    pk_fields: tuple[AnyField, ...]
    depends_on: frozenset[str]  # labels of the tables this one points to

    @property
    def label(self) -> str:
        return self.model._meta.label

    @property
    def db_table(self) -> str:
        return self.model._meta.db_table


@dataclass(frozen=True)
class Plan:
    tables: tuple[Table, ...]  # in dependency order
    cycles: tuple[tuple[str, ...], ...]  # groups of labels that reference each other

    def labels(self) -> list[str]:
        return [t.label for t in self.tables]

    def select(self, only: Sequence[str] = (), exclude: Sequence[str] = ()) -> Plan:
        """The same plan limited by --only/--exclude labels, order kept."""
        check_labels([*only, *exclude], [t.model for t in self.tables])
        tables = tuple(
            t
            for t in self.tables
            if (not only or matches(t.model, only)) and not (exclude and matches(t.model, exclude))
        )
        kept = {t.label for t in tables}
        cycles = tuple(c for c in self.cycles if set(c) <= kept)
        return Plan(tables=tables, cycles=cycles)


def owner(model: type[Model]) -> type[Model]:
    """The model a table belongs to for --only/--exclude: an auto-created
    many-to-many table goes with the model that declares the field."""
    auto_created = model._meta.auto_created
    return auto_created if isinstance(auto_created, type) else model


def matches(model: type[Model], labels: Iterable[str]) -> bool:
    """Does --only/--exclude `labels` name this table: its app, its model, or (for
    an auto-created many-to-many table) the model that declares the field?"""
    own = model._meta
    meta = owner(model)._meta
    for label in labels:
        label = label.lower()
        if label in (meta.app_label, meta.label_lower, own.label_lower):
            return True
    return False


def label_problem(label: str, models: Sequence[type[Model]]) -> str | None:
    """Why `label` names no installed app or model, or None if it names one."""
    app_labels = {config.label for config in apps.get_app_configs()} | {
        m._meta.app_label for m in models
    }
    model_labels = {m._meta.label_lower for m in models}
    app_label, _, model_name = label.partition(".")
    if app_label in app_labels and (not model_name or label.lower() in model_labels):
        return None
    if app_label not in app_labels:
        return (
            f"Unknown app {app_label!r} in {label!r}; the installed apps are "
            f"{', '.join(sorted(app_labels))}."
        )
    in_app = sorted(m._meta.label for m in models if m._meta.app_label == app_label)
    return f"Unknown model {label!r}; the models of {app_label} are {', '.join(in_app)}."


def check_labels(labels: Iterable[str], models: Sequence[type[Model]]) -> None:
    """Refuse labels that name no installed app or model, all of them at once."""
    problems = [p for label in labels if (p := label_problem(label, models))]
    if problems:
        raise ConfigurationError(" ".join(problems) + " Give an app label or app_label.ModelName.")


def database_models(alias: str) -> list[type[Model]]:
    """The models as the database's applied migrations left them.

    Not the models in the code: before `migrate` (safemigrate's backup) or
    after a rollback the database's tables differ from them, and a backup or
    restore must read and write the columns that are really there. These are
    the historical models that RunPython migrations get.
    """
    connection = connections[alias]
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    applied = [key for key in loader.applied_migrations if key in loader.graph.nodes]
    state = loader.project_state(applied, at_end=True)
    return list(state.apps.get_models(include_auto_created=True))


def table_for(model: type[Model]) -> Table:
    fields = tuple(f for f in model._meta.local_concrete_fields if not f.generated)
    depends_on = set()
    for field in fields:
        if field.is_relation and field.remote_field is not None:
            target = field.related_model
            assert isinstance(target, type)
            depends_on.add((target._meta.concrete_model or target)._meta.label)
    return Table(
        model=model,
        fields=fields,
        pk_fields=tuple(model._meta.pk_fields),
        depends_on=frozenset(depends_on),
    )


def plan_tables(
    alias: str,
    only: Sequence[str] = (),
    exclude: Sequence[str] = (),
    include_unmanaged: bool = False,
) -> Plan:
    """Every table the ORM manages on `alias`, filtered and ordered."""
    models = database_models(alias)
    check_labels([*only, *exclude], models)
    connection = connections[alias]
    existing: set[str] | None = None
    chosen: list[Table] = []
    for model in models:
        meta = model._meta
        if meta.proxy or meta.swapped:
            continue
        if not meta.managed:
            if not include_unmanaged:
                continue
            if existing is None:
                with connection.cursor() as cursor:
                    existing = set(connection.introspection.table_names(cursor))
            if meta.db_table not in existing:
                continue
        elif not meta.can_migrate(connection) or not router.allow_migrate_model(alias, model):
            continue
        if only and not matches(model, only):
            continue
        if exclude and matches(model, exclude):
            continue
        chosen.append(table_for(model))
    ordered, cycles = dependency_order(chosen)
    return Plan(tables=tuple(ordered), cycles=tuple(cycles))


def dependency_order(tables: Sequence[Table]) -> tuple[list[Table], list[tuple[str, ...]]]:
    """Order tables so each follows the tables it references.

    Strongly connected groups (Tarjan) are kept together in their original
    order; between groups, the original order breaks ties, so the result is
    stable. Returns the order and the groups that form cycles.
    """
    index = {t.label: i for i, t in enumerate(tables)}
    edges = {t.label: sorted(d for d in t.depends_on if d in index) for t in tables}
    groups = strongly_connected(list(index), edges)

    waiting_on = groups_waiting_on(groups, edges)
    ordered: list[Table] = []
    done: set[int] = set()
    while len(done) < len(groups):
        ready = [g for g in waiting_on if g not in done and waiting_on[g] <= done]
        first = min(ready, key=lambda g: min(index[label] for label in groups[g]))
        done.add(first)
        ordered.extend(tables[i] for i in sorted(index[label] for label in groups[first]))
    return ordered, cycles_among(groups, edges, index)


def groups_waiting_on(groups: list[list[str]], edges: dict[str, list[str]]) -> dict[int, set[int]]:
    """For each group (by position), the other groups its tables reference."""
    group_of = {label: g for g, members in enumerate(groups) for label in members}
    waiting_on: dict[int, set[int]] = {g: set() for g in range(len(groups))}
    for label, targets in edges.items():
        for target in targets:
            if group_of[target] != group_of[label]:
                waiting_on[group_of[label]].add(group_of[target])
    return waiting_on


def cycles_among(
    groups: list[list[str]], edges: dict[str, list[str]], index: dict[str, int]
) -> list[tuple[str, ...]]:
    """The groups that form cycles (a table referencing itself is one), in table order."""
    cycles = [
        tuple(sorted(members, key=index.__getitem__))
        for members in groups
        if len(members) > 1 or members[0] in edges[members[0]]
    ]
    cycles.sort(key=lambda members: index[members[0]])
    return cycles


def strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative so a deep schema cannot hit the recursion limit."""
    counter = 0
    low: dict[str, int] = {}
    number: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in nodes:
        if root in number:
            continue
        work = [(root, 0)]
        while work:
            node, next_edge = work.pop()
            if next_edge == 0:
                number[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = edges[node]
            if next_edge < len(targets):
                work.append((node, next_edge + 1))
                target = targets[next_edge]
                if target not in number:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], number[target])
                continue
            if low[node] == number[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(group)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return groups
