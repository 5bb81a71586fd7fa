"""The built-in masking rules: each turns one value into a fake one of the same kind.

A rule never sees the key. It gets a `MaskContext` whose digest is keyed,
mixes in the attempt number (so a collision on a unique column is resolved by
asking again) and depends only on the rule and the value, never on the table:
one input gives one output wherever it is masked.
"""

from __future__ import annotations

import hashlib
import ipaddress
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

# Field kinds a rule can fit, named by what the column holds.
TEXT, EMAIL, URL, SLUG, IP, DATE, DATETIME, JSON = (
    "text", "email", "url", "slug", "ip", "date", "datetime", "json",
)  # fmt: skip
ANY_KIND = "any"
DEFAULT_SHIFT_DAYS = 30
FAKE_DOMAIN = "example.com"  # reserved for documentation (RFC 2606): never someone's inbox

FIRST_NAMES = (
    "Ada", "Alan", "Amal", "Ana", "Ben", "Carla", "Chen", "Dara", "Eli", "Emma", "Farid", "Grace",
    "Hana", "Ivan", "Jon", "Kira", "Lena", "Luis", "Maya", "Nia", "Omar", "Pia", "Ravi", "Rosa",
    "Sam", "Sara", "Tomas", "Uma", "Vera", "Wei", "Yusuf", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Baker", "Costa", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen",
    "Khan", "Lopez", "Moreau", "Novak", "Okafor", "Patel", "Quinn", "Rossi", "Silva", "Tanaka",
    "Underwood", "Varga", "Walsh", "Xu", "Young", "Zimmer",
)  # fmt: skip
STREET_NAMES = (
    "Acacia", "Birch", "Cedar", "Elm", "Hawthorn", "Juniper", "Linden", "Maple", "Oak", "Poplar",
    "Rowan", "Willow", "Mill", "Station", "Church", "Park", "Victoria", "High",
)  # fmt: skip
STREET_KINDS = ("Street", "Road", "Lane", "Avenue", "Close", "Way", "Gardens")
CITIES = (
    "Ashford", "Bramley", "Carlow", "Dunmore", "Elmstead", "Fairhaven", "Glenwood", "Harwich",
    "Kingsbury", "Lakeside", "Milford", "Newbridge", "Oakham", "Redhill", "Stanton", "Westbury",
)  # fmt: skip


@dataclass(frozen=True)
class MaskContext:
    """What a rule knows while it masks one value: the column's size and a keyed digest."""

    sign: Callable[[bytes], bytes]  # HMAC-SHA256 keyed by MASK_KEY, which rules never see
    max_length: int | None = None
    kind: str = TEXT
    protocol: str = "both"  # a GenericIPAddressField's protocol
    attempt: int = 0
    argument: str | None = None

    def digest(self, *parts: object) -> bytes:
        """32 bytes that depend on the key, the parts and the attempt, and on nothing else:
        the HMAC of the parts' canonical bytes and the attempt's digits, joined by 0x1f."""
        attempt = b"%d" % self.attempt if self.attempt else b"0"
        if not parts:  # a custom rule's digest(): the attempt's digits alone, as ever
            return self.sign(attempt)
        message = b"\x1f".join([p.encode() if type(p) is str else canonical(p) for p in parts])
        return self.sign(message + b"\x1f" + attempt)

    def number(self, *parts: object) -> int:
        return int.from_bytes(self.digest(*parts))

    def pick(self, choices: Sequence[str], *parts: object) -> str:
        return choices[int.from_bytes(self.digest(*parts)) % len(choices)]


def canonical(value: object) -> bytes:
    """The bytes a value is hashed as: its type's plain text, so equal values hash alike."""
    if type(value) is str:  # nearly every masked value: the one check it pays for
        return value.encode()
    if isinstance(value, bytes):
        return value
    if isinstance(value, date):
        return value.isoformat().encode()
    return str(value).encode()


def keyed_signer(key: str | bytes) -> Callable[[bytes], bytes]:
    """HMAC-SHA256 of a message under the key (RFC 2104), from SHA-256 states
    already fed the padded key: two copies and a digest each, the same bytes
    hmac.digest() gives, without its per-call set-up."""
    raw = key.encode() if isinstance(key, str) else key
    block = hashlib.sha256().block_size
    if len(raw) > block:
        raw = hashlib.sha256(raw).digest()
    raw = raw.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in raw))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in raw))

    def sign(message: bytes) -> bytes:
        signer = inner.copy()
        signer.update(message)
        result = outer.copy()
        result.update(signer.digest())
        return result.digest()

    return sign


def fit(text: str, context: MaskContext) -> str:
    return text[: context.max_length] if context.max_length else text


def same_shape(value: str, context: MaskContext, rule: str, keep_case: bool = True) -> str:
    """Each letter and digit replaced, everything else kept: the length and format stay."""
    stream = b""
    block = 0
    out = []
    for i, char in enumerate(value):
        if i >= len(stream):
            stream += context.digest(rule, value, block)
            block += 1
        byte = stream[i]
        if char.isdigit():
            out.append(string.digits[byte % 10])
        elif char.isalpha():
            letter = string.ascii_lowercase[byte % 26]
            out.append(letter.upper() if char.isupper() or not keep_case else letter)
        else:
            out.append(char)
    return "".join(out)


def mask_email(value: Any, context: MaskContext) -> str:
    width = min(16, (context.max_length or 254) - len(FAKE_DOMAIN) - 1)
    return f"{context.digest('email', value).hex()[:width]}@{FAKE_DOMAIN}"


def mask_name(value: Any, context: MaskContext) -> str:
    first = context.pick(FIRST_NAMES, "first_name", value)
    return fit(f"{first} {context.pick(LAST_NAMES, 'last_name', value)}", context)


def mask_first_name(value: Any, context: MaskContext) -> str:
    return fit(context.pick(FIRST_NAMES, "first_name", value), context)


def mask_last_name(value: Any, context: MaskContext) -> str:
    return fit(context.pick(LAST_NAMES, "last_name", value), context)


def mask_street(value: Any, context: MaskContext) -> str:
    number = context.number("street", value) % 199 + 1
    name = context.pick(STREET_NAMES, "street-name", value)
    return fit(f"{number} {name} {context.pick(STREET_KINDS, 'street-kind', value)}", context)


def mask_city(value: Any, context: MaskContext) -> str:
    return fit(context.pick(CITIES, "city", value), context)


def mask_postcode(value: Any, context: MaskContext) -> str:
    return same_shape(str(value), context, "postcode", keep_case=False)


def mask_phone(value: Any, context: MaskContext) -> str:
    return same_shape(str(value), context, "phone")


def mask_text(value: Any, context: MaskContext) -> str:
    return same_shape(str(value), context, "text")


def mask_ip(value: Any, context: MaskContext) -> str:
    """A private IPv4 address (10.0.0.0/8) or a documentation IPv6 one (2001:db8::/32)."""
    protocol = context.protocol.lower()
    if protocol in ("ipv4", "ipv6"):
        version = 4 if protocol == "ipv4" else 6
    elif ":" not in str(value):
        version = 4  # a valid IPv4 address or no address at all: 4 either way
    else:
        try:
            version = ipaddress.ip_address(str(value)).version
        except ValueError:
            version = 4
    if context.max_length is not None and context.max_length < 39:
        version = 4  # an IPv6 address would not fit the column
    number = context.number("ip", value)
    if version == 4:  # 10.0.0.0/8, written as str(IPv4Address) would, without building one
        return f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"
    return str(ipaddress.IPv6Address((0x20010DB8 << 96) | number % (1 << 96)))


def mask_date_shift(value: Any, context: MaskContext) -> Any:
    """Moved by a non-zero number of days (a date) or seconds (a datetime) within ±N days."""
    days = int(context.argument or DEFAULT_SHIFT_DAYS)
    as_text = isinstance(value, str)
    moment = datetime.fromisoformat(value) if as_text else value
    is_date = isinstance(moment, date) and not isinstance(moment, datetime)
    if as_text and len(value) <= 10:
        is_date, moment = True, moment.date()
    span = days if is_date else days * 86_400
    offset = context.number("date_shift", value) % (2 * span) - span
    offset = offset if offset < 0 else offset + 1
    shifted = moment + (timedelta(days=offset) if is_date else timedelta(seconds=offset))
    if not as_text:
        return shifted
    return (
        shifted.isoformat(sep=" " if " " in value else "T") if not is_date else shifted.isoformat()
    )


def mask_hash(value: Any, context: MaskContext) -> str:
    return context.digest("hash", value).hex()[: min(32, context.max_length or 32)]


def mask_null(value: Any, context: MaskContext) -> None:
    return None


def mask_empty(value: Any, context: MaskContext) -> Any:
    if isinstance(value, dict | list):
        return type(value)()
    return ""


# Byte b -> the letter or digit at b % 62, as a translation table.
PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LETTERS = bytes(ord(PASSWORD_ALPHABET[b % len(PASSWORD_ALPHABET)]) for b in range(256))


def mask_unusable_password(value: Any, context: MaskContext) -> str:
    """What Django's set_unusable_password() stores ("!" then 40 characters), keyed instead of random."""
    raw = context.digest("unusable_password", value) + context.digest("unusable_password+", value)
    return "!" + raw[:40].translate(PASSWORD_LETTERS).decode()


@dataclass(frozen=True)
class Rule:
    name: str
    apply: Callable[[Any, MaskContext], Any]
    kinds: frozenset[str]
    # True when distinct inputs get distinct outputs often enough that a unique
    # column's rare collisions can be resolved by asking again.
    unique: bool = False
    min_length: int = 1
    takes_argument: bool = False


def _rule(name: str, apply: Callable[[Any, MaskContext], Any], kinds: set[str], **kw: Any) -> Rule:
    return Rule(name, apply, frozenset(kinds), **kw)


BUILT_IN: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        _rule("email", mask_email, {EMAIL, TEXT}, unique=True, min_length=len(FAKE_DOMAIN) + 9),
        _rule("name", mask_name, {TEXT}),
        _rule("first_name", mask_first_name, {TEXT}),
        _rule("last_name", mask_last_name, {TEXT}),
        _rule("phone", mask_phone, {TEXT}),
        _rule("street", mask_street, {TEXT}),
        _rule("city", mask_city, {TEXT}),
        _rule("postcode", mask_postcode, {TEXT}),
        _rule("ip", mask_ip, {IP, TEXT}, unique=True, min_length=15),
        _rule("text", mask_text, {TEXT, SLUG}),
        _rule("date_shift", mask_date_shift, {DATE, DATETIME}, takes_argument=True),
        _rule("hash", mask_hash, {TEXT, SLUG}, unique=True, min_length=8),
        _rule("null", mask_null, {ANY_KIND}, unique=True),  # NULLs never clash in a unique index
        _rule("empty", mask_empty, {TEXT, SLUG, EMAIL, URL, JSON}),
        _rule("unusable_password", mask_unusable_password, {TEXT}, unique=True, min_length=41),
    )
}
DROP = "drop"
