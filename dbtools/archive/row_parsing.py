"""Row lines parsed back into dicts: with orjson where it is exact, and with
JSONField values kept as the text they are in the line (codec.JSONText), so
no JSON number goes through a Python float on its way into the database."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

import orjson

from .codec import JSON_NULL_KEY, JSONText, json_field_names, take_json_nulls

_WHITE = re.compile(r"[ \t\n\r]*")
_WHITE_CHARS = frozenset(" \t\n\r")
_scan_value = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _django_dumps() -> Callable[[Any], str]:
    """json.dumps with its defaults, as Django writes a JSONField's value: the
    same C encoder, made with the same arguments, once rather than per call,
    which was most of its cost. Only the check for circular references is left
    out, which a parsed value never needs."""
    make = getattr(json.encoder, "c_make_encoder", None)
    defaults = json.JSONEncoder()
    if make is None:
        return json.dumps
    encode = make(
        None,
        defaults.default,
        json.encoder.encode_basestring_ascii,
        defaults.indent,
        defaults.key_separator,
        defaults.item_separator,
        defaults.sort_keys,
        defaults.skipkeys,
        defaults.allow_nan,
    )

    def dumps(value: Any) -> str:
        return "".join(encode(value, 0))

    return dumps


_dumps_as_django = _django_dumps()


def _past_white(text: str, i: int) -> int:
    """Where the token at `i` starts; the regular expression runs only where there is white space."""
    if text[i : i + 1] in _WHITE_CHARS:
        return _WHITE.match(text, i).end()  # type: ignore[union-attr]
    return i


def parse_row_keeping_json(text: str, keep: frozenset[str]) -> dict[str, Any]:
    """Parse one row object; the values of the columns in `keep` come as the
    JSON text they are in the line (JSONText), the others as json.loads would.

    Lines as dbtools writes them have no white space between tokens, so the
    regular expression that skips it runs only where there is some."""
    row: dict[str, Any] = {}
    i = _past_white(text, 0)
    if text[i : i + 1] != "{":
        raise ValueError("a row must be a JSON object")
    i = _past_white(text, i + 1)
    if text[i : i + 1] == "}":
        i += 1
    else:
        while True:
            if text[i : i + 1] != '"':
                raise ValueError(f"expected a column name at character {i}")
            key, i = scanstring(text, i + 1)
            i = _past_white(text, i)
            if text[i : i + 1] != ":":
                raise ValueError(f"expected ':' at character {i}")
            i = _past_white(text, i + 1)
            try:
                value, end = _scan_value(text, i)
            except StopIteration:
                raise ValueError(f"expected a value at character {i}") from None
            row[key] = JSONText(text[i:end]) if key in keep and value is not None else value
            i = _past_white(text, end)
            separator = text[i : i + 1]
            if separator == ",":
                i = _past_white(text, i + 1)
                continue
            if separator != "}":
                raise ValueError(f"expected ',' or '}}' at character {i}")
            i += 1
            break
    if text[i:].strip(" \t\n\r"):
        raise ValueError(f"extra data after the row at character {i}")
    return row


def _holds_a_float(value: Any) -> bool:
    kind = type(value)
    if kind is float:
        return True
    if kind is dict:
        return any(_holds_a_float(v) for v in value.values())
    if kind is list:
        return any(_holds_a_float(v) for v in value)
    return False


def parse_row_for_jsonb(line: bytes, keep: frozenset[str]) -> dict[str, Any]:
    """parse_row_keeping_json's result, for a database that stores JSON as
    jsonb, several times faster: orjson parses the row, and the JSON values
    are written back out as text. jsonb keeps a value, not its text (white
    space, key order and all but the last of duplicate keys go), so text
    re-written from the same value stores the same jsonb. Only numbers could
    differ: orjson reads every one with a fraction or an exponent, and every
    integer beyond 64 bits, as a float. A row with a float in a JSON value,
    or one orjson refuses (NaN, a lone surrogate), is parsed the slow way.
    (A float column's value is a float either way: orjson and the standard
    library read a number to the same nearest double.)"""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        return parse_row_keeping_json(line.decode(), keep)
    if type(row) is not dict or any(_holds_a_float(row.get(name)) for name in keep):
        return parse_row_keeping_json(line.decode(), keep)
    dumps = orjson.dumps
    for name in keep:
        value = row.get(name)
        if value is not None:
            row[name] = JSONText(dumps(value).decode())
    return row


def parse_row_as_django_wrote_it(line: bytes, keep: frozenset[str]) -> dict[str, Any]:
    """parse_row_keeping_json's result, about twice as fast for the rows it can
    prove: orjson parses the row, each JSON value of `keep` is written again as
    Django writes one (json.dumps with its defaults), and the row is written
    out again around those texts. Where that is the line byte for byte, each
    text is the line's own text of its value, and every other value is what
    the standard library reads (a number orjson reads otherwise, such as an
    integer beyond 64 bits, is written back differently). Any other line (a
    database that respaced its JSON, a float orjson rounds, a duplicate key)
    is parsed the slow way."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        return parse_row_keeping_json(line.decode(), keep)
    if type(row) is not dict:
        return parse_row_keeping_json(line.decode(), keep)
    texts = {}
    for name in keep:
        value = row.get(name)
        if value is not None:
            try:
                texts[name] = text = _dumps_as_django(value)
            except (ValueError, RecursionError):
                # Not seen (orjson refuses more than 1,024 levels, which
                # json.dumps writes), but whatever it refuses the exact parser decides.
                return parse_row_keeping_json(line.decode(), keep)
            row[name] = orjson.Fragment(text)
    if orjson.dumps(row) != line:
        return parse_row_keeping_json(line.decode(), keep)
    for name, text in texts.items():
        row[name] = JSONText(text)
    return row


def row_parser(
    columns: list[dict[str, Any]], keep_json_text: bool = False, jsonb: bool = False
) -> Callable[[bytes], dict[str, Any]]:
    """How to parse one row line: orjson where no column holds JSON; else the
    standard library (orjson would make integers beyond 64 bits floats), and
    with `keep_json_text` the JSONField values as their text (JSONText);
    `jsonb` when every such value goes into a jsonb column."""
    json_columns = [c for c in columns if c.get("kind") == "json"]
    if not json_columns:
        return orjson.loads
    keep = json_field_names(columns)
    parse: Callable[[bytes], Any]
    if keep_json_text and keep:
        if jsonb and keep == {c["name"] for c in json_columns}:
            parse = lambda line: parse_row_for_jsonb(line, keep)  # noqa: E731
        else:
            parse = lambda line: parse_row_as_django_wrote_it(line, keep)  # noqa: E731
    else:
        parse = json.loads
    if not keep:
        return parse
    as_text = keep_json_text

    def parse_with_json_nulls(line: bytes) -> Any:
        row = parse(line)
        if type(row) is dict and JSON_NULL_KEY in row:
            take_json_nulls(row, keep, as_text)
        return row

    return parse_with_json_nulls
