"""RunPython's code, read without running it: the models it reaches."""

from __future__ import annotations

import dis
import sys
import types
from collections.abc import Iterator
from typing import Any

from django.db import models


def function_name(code: Any) -> str:
    return str(getattr(code, "__qualname__", None) or getattr(code, "__name__", None) or repr(code))


def imported_models(function: Any) -> Iterator[str]:
    """Labels of real (today's) models a RunPython function reaches through its
    globals or its own imports, instead of through apps.get_model()."""
    code = getattr(function, "__code__", None)
    if code is None:
        return
    namespace = getattr(function, "__globals__", {})
    for instruction, attributes in instructions(code):
        value: Any = None
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            value = namespace.get(instruction.argval)
        elif instruction.opname == "IMPORT_NAME":
            # Only modules already loaded (Django has loaded every app's models):
            # the check must not import anything itself.
            value = sys.modules.get(instruction.argval)
        if isinstance(value, type) and issubclass(value, models.Model):
            yield value._meta.label
        elif isinstance(value, types.ModuleType):
            for name in attributes:
                member = getattr(value, name, None)
                if isinstance(member, type) and issubclass(member, models.Model):
                    yield member._meta.label


def instructions(code: types.CodeType) -> Iterator[tuple[dis.Instruction, set[str]]]:
    """Every instruction, nested functions included, with the names the code uses as attributes."""
    attributes = {
        i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_ATTR", "IMPORT_FROM")
    }
    for instruction in dis.get_instructions(code):
        yield instruction, attributes
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from instructions(constant)
