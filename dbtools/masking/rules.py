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

    sign: Signer  # HMAC-SHA256 keyed by MASK_KEY, which rules never see
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

    def digests(self, part: str, values: Sequence[Any], *after: object) -> list[bytes]:
        """[digest(part, value, *after) for value in values], without the per-value set-up."""
        tail = b"".join([b"\x1f" + canonical(p) for p in after])
        return self.sign.each(part.encode() + b"\x1f", values, tail + b"\x1f%d" % self.attempt)

    def number(self, *parts: object) -> int:
        return int.from_bytes(self.digest(*parts))

    def pick(self, choices: Sequence[str], *parts: object) -> str:
        return choices[int.from_bytes(self.digest(*parts)) % len(choices)]

    def picks(self, choices: Sequence[str], part: str, values: Sequence[Any]) -> list[str]:
        """[pick(choices, part, value) for value in values]."""
        count, number = len(choices), int.from_bytes
        return [choices[number(digest) % count] for digest in self.digests(part, values)]


def canonical(value: object) -> bytes:
    """The bytes a value is hashed as: its type's plain text, so equal values hash alike."""
    if type(value) is str:  # nearly every masked value: the one check it pays for
        return value.encode()
    if isinstance(value, bytes):
        return value
    if isinstance(value, date):
        return value.isoformat().encode()
    return str(value).encode()


class Signer:
    """HMAC-SHA256 of a message under the key (RFC 2104), from SHA-256 states
    already fed the padded key: two copies and a digest each, the same bytes
    hmac.digest() gives, without its per-call set-up."""

    def __init__(self, key: str | bytes) -> None:
        raw = key.encode() if isinstance(key, str) else key
        block = hashlib.sha256().block_size
        if len(raw) > block:
            raw = hashlib.sha256(raw).digest()
        raw = raw.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in raw))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in raw))

    def __call__(self, message: bytes) -> bytes:
        signer = self._inner.copy()
        signer.update(message)
        result = self._outer.copy()
        result.update(signer.digest())
        return result.digest()

    def each(self, head: bytes, values: Sequence[Any], tail: bytes) -> list[bytes]:
        """[self(head + canonical(value) + tail) for value in values]: the head
        fed once, the loop's lookups bound once."""
        if len(values) == 1:  # a rule asked for one value: no state to share
            return [self(head + canonical(values[0]) + tail)]
        started = self._inner.copy()
        started.update(head)
        inner, outer = started.copy, self._outer.copy
        digests = []
        for value in values:
            signer = inner()
            signer.update(value.encode() if type(value) is str else canonical(value))
            signer.update(tail)
            result = outer()
            result.update(signer.digest())
            digests.append(result.digest())
        return digests


def keyed_signer(key: str | bytes) -> Signer:
    return Signer(key)


# A rule masks a batch of values, each as it would alone: the outputs are a
# function of each value, the context and the key, never of the other values.
Batch = Callable[[Sequence[Any], MaskContext], list[Any]]


def fit(texts: list[str], context: MaskContext) -> list[str]:
    limit = context.max_length
    return [text[:limit] for text in texts] if limit else texts


DIGIT_OF = [string.digits[b % 10] for b in range(256)]
LOWER_OF = [string.ascii_lowercase[b % 26] for b in range(256)]
UPPER_OF = [letter.upper() for letter in LOWER_OF]


def same_shape(
    values: Sequence[Any], context: MaskContext, rule: str, keep_case: bool
) -> list[str]:
    """Each letter and digit replaced, everything else kept: the length and format
    stay. Character i takes byte i of the digests of (rule, text, 0), (rule, text, 1)..."""
    texts = [str(value) for value in values]
    firsts = iter(context.digests(rule, [text for text in texts if text], 0))
    out: list[str] = []
    for text in texts:
        if not text:
            out.append(text)
            continue
        stream = next(firsts)
        while len(stream) < len(text):
            stream += context.digest(rule, text, len(stream) // 32)
        shaped = []
        for char, byte in zip(text, stream, strict=False):
            if char.isdigit():
                shaped.append(DIGIT_OF[byte])
            elif char.isalpha():
                shaped.append(UPPER_OF[byte] if char.isupper() or not keep_case else LOWER_OF[byte])
            else:
                shaped.append(char)
        out.append("".join(shaped))
    return out


def mask_email(values: Sequence[Any], context: MaskContext) -> list[str]:
    width = min(16, (context.max_length or 254) - len(FAKE_DOMAIN) - 1)
    domain = "@" + FAKE_DOMAIN
    return [digest.hex()[:width] + domain for digest in context.digests("email", values)]


def mask_name(values: Sequence[Any], context: MaskContext) -> list[str]:
    firsts = context.picks(FIRST_NAMES, "first_name", values)
    lasts = context.picks(LAST_NAMES, "last_name", values)
    return fit([f"{first} {last}" for first, last in zip(firsts, lasts, strict=True)], context)


def mask_first_name(values: Sequence[Any], context: MaskContext) -> list[str]:
    return fit(context.picks(FIRST_NAMES, "first_name", values), context)


def mask_last_name(values: Sequence[Any], context: MaskContext) -> list[str]:
    return fit(context.picks(LAST_NAMES, "last_name", values), context)


def mask_street(values: Sequence[Any], context: MaskContext) -> list[str]:
    numbers = [int.from_bytes(digest) % 199 + 1 for digest in context.digests("street", values)]
    names = context.picks(STREET_NAMES, "street-name", values)
    kinds = context.picks(STREET_KINDS, "street-kind", values)
    streets = zip(numbers, names, kinds, strict=True)
    return fit([f"{number} {name} {kind}" for number, name, kind in streets], context)


def mask_city(values: Sequence[Any], context: MaskContext) -> list[str]:
    return fit(context.picks(CITIES, "city", values), context)


def mask_postcode(values: Sequence[Any], context: MaskContext) -> list[str]:
    return same_shape(values, context, "postcode", keep_case=False)


def mask_phone(values: Sequence[Any], context: MaskContext) -> list[str]:
    return same_shape(values, context, "phone", keep_case=True)


def mask_text(values: Sequence[Any], context: MaskContext) -> list[str]:
    return same_shape(values, context, "text", keep_case=True)


def mask_ip(values: Sequence[Any], context: MaskContext) -> list[str]:
    """A private IPv4 address (10.0.0.0/8) or a documentation IPv6 one (2001:db8::/32)."""
    protocol = context.protocol.lower()
    if context.max_length is not None and context.max_length < 39:
        fixed: int | None = 4  # an IPv6 address would not fit the column
    else:
        fixed = {"ipv4": 4, "ipv6": 6}.get(protocol)
    out: list[str] = []
    for value, digest in zip(values, context.digests("ip", values), strict=True):
        if (fixed or ip_version(str(value))) == 4:
            # 10.0.0.0/8 from the number's low 24 bits, written as str(IPv4Address) would.
            out.append(f"10.{digest[29]}.{digest[30]}.{digest[31]}")
        else:
            number = int.from_bytes(digest) % (1 << 96)
            out.append(str(ipaddress.IPv6Address((0x20010DB8 << 96) | number)))
    return out


def ip_version(text: str) -> int:
    if ":" not in text:
        return 4  # a valid IPv4 address or no address at all: 4 either way
    try:
        return ipaddress.ip_address(text).version
    except ValueError:
        return 4


def shift_date(value: Any, context: MaskContext) -> Any:
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


def mask_date_shift(values: Sequence[Any], context: MaskContext) -> list[Any]:
    return [shift_date(value, context) for value in values]


def mask_hash(values: Sequence[Any], context: MaskContext) -> list[str]:
    width = min(32, context.max_length or 32)
    return [digest.hex()[:width] for digest in context.digests("hash", values)]


def mask_null(values: Sequence[Any], context: MaskContext) -> list[None]:
    return [None] * len(values)


def mask_empty(values: Sequence[Any], context: MaskContext) -> list[Any]:
    return [type(value)() if isinstance(value, dict | list) else "" for value in values]


# Byte b -> the letter or digit at b % 62, as a translation table.
PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LETTERS = bytes(ord(PASSWORD_ALPHABET[b % len(PASSWORD_ALPHABET)]) for b in range(256))


def mask_unusable_password(values: Sequence[Any], context: MaskContext) -> list[str]:
    """What Django's set_unusable_password() stores ("!" then 40 characters), keyed
    instead of random: the letters of the first 40 bytes of two digests."""
    firsts = context.digests("unusable_password", values)
    seconds = context.digests("unusable_password+", values)
    return [
        "!" + (first + second[:8]).translate(PASSWORD_LETTERS).decode()
        for first, second in zip(firsts, seconds, strict=True)
    ]


def one_value(apply_all: Batch) -> Callable[[Any, MaskContext], Any]:
    """The rule for one value: the batch of that value alone."""

    def apply(value: Any, context: MaskContext) -> Any:
        return apply_all([value], context)[0]

    return apply


@dataclass(frozen=True)
class Rule:
    name: str
    apply: Callable[[Any, MaskContext], Any]  # one value, as a function of your own is called
    kinds: frozenset[str]
    # True when distinct inputs get distinct outputs often enough that a unique
    # column's rare collisions can be resolved by asking again.
    unique: bool = False
    min_length: int = 1
    takes_argument: bool = False
    apply_all: Batch | None = None  # a batch of values, each as apply() masks it


def _rule(name: str, apply_all: Batch, kinds: set[str], **kw: Any) -> Rule:
    return Rule(name, one_value(apply_all), frozenset(kinds), apply_all=apply_all, **kw)


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
