"""Masking rules (dbtools.masking): deterministic, keyed, and fitting the columns they mask."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.validators import validate_email
from django.db import models
from django.db.models import TextField
from django.db.models.functions import Cast, Lower
from django.test.utils import isolate_apps

from dbtools.backup.masked import TupleMasker
from dbtools.checks import check_mask
from dbtools.conf import settings_problems
from dbtools.exceptions import ConfigurationError
from dbtools.graph import plan_tables
from dbtools.masking import BUILT_IN, Masker, MaskingError
from dbtools.masking.engine import ColumnMasker, Remembering, RowMasker, UniqueTracker
from dbtools.masking.rules import MaskContext, keyed_signer
from dbtools.masking.spec import choose_rule, unique_scope
from dbtools.masking.validate import fit_problems
from shop import models as m
from shop.seed import seed_shop
from tests.conftest import backends
from tests.edgecases.models import Place

KEY = "a-test-key-that-is-long-enough-0123456789"
OTHER_KEY = "another-test-key-long-enough-9876543210"
EMAILS = ["ada@real.org", "Grace.Hopper@navy.mil", "x@y.co", "alan.turing+shop@bletchley.uk"]


def one_hex_digit(value, context: MaskContext) -> str:
    """A project's own rule with only 16 outputs: collisions are certain."""
    return context.digest("one-hex", value).hex()[0] + "@example.com"


def shout(value, context: MaskContext) -> str:
    return f"MASKED-{context.digest(value).hex()[:6]}"


def mask_rows(masker: Masker, model, rows: list[dict]) -> list[dict]:
    row_masker = masker.for_table(model)
    assert row_masker is not None
    return [row_masker(dict(row)) for row in rows]


def masked(rules: dict, model, column: str, values: list, key: str = KEY) -> list:
    return [
        row[column] for row in mask_rows(Masker(rules, key), model, [{column: v} for v in values])
    ]


# Deterministic and keyed


def test_one_input_gives_one_output_in_every_table():
    rules = {f"shop.{model}.email": "email" for model in ("User", "Order", "NewsletterSubscriber")}
    masker = Masker(rules, KEY)
    outputs = [
        mask_rows(masker, model, [{"email": e} for e in EMAILS])
        for model in (m.User, m.Order, m.NewsletterSubscriber)
    ]
    assert outputs[0] == outputs[1] == outputs[2]
    assert not {row["email"] for row in outputs[0]} & set(EMAILS)


def test_one_input_gives_one_output_in_every_run():
    rules = {"shop.User.email": "email", "shop.User.first_name": "first_name"}
    rows = [{"email": e, "first_name": e.split("@")[0]} for e in EMAILS]
    assert mask_rows(Masker(rules, KEY), m.User, rows) == mask_rows(
        Masker(rules, KEY), m.User, rows
    )


def test_another_key_gives_other_outputs():
    rules = {"shop.User.email": "email"}
    first = masked(rules, m.User, "email", EMAILS)
    second = masked(rules, m.User, "email", EMAILS, key=OTHER_KEY)
    assert not set(first) & set(second)


def test_the_fingerprint_names_the_rules_not_the_key():
    rules = {"shop.User.email": "email", "shop.Session": "drop"}
    reordered = {"shop.Session": "drop", "shop.User.email": "email"}
    assert Masker(rules, KEY).fingerprint == Masker(reordered, OTHER_KEY).fingerprint
    assert Masker(rules, KEY).fingerprint != Masker({"shop.User.email": "hash"}, KEY).fingerprint
    assert KEY not in Masker(rules, KEY).fingerprint


def test_null_stays_null_and_unmasked_columns_are_left_alone():
    masker = Masker({"shop.User.email_verified_at": "date_shift", "sessions.Session": "drop"}, KEY)
    row = {"email_verified_at": None, "email": "ada@real.org"}
    assert masker.for_table(m.User)(dict(row)) == row
    assert masker.for_table(m.Order) is None
    assert masker.drops(m.Session) is False
    from django.contrib.sessions.models import Session

    assert masker.drops(Session) is True


# Each built-in rule fits its field on the demo shop

FITS = [
    ("shop.User.email", "email", ["ada@real.org", "a" * 60 + "@b.com"]),
    ("shop.Order.email", "email", EMAILS),
    ("shop.NewsletterSubscriber.email", "email", EMAILS),
    ("shop.Address.full_name", "name", ["Ada Lovelace", "Å"]),
    ("shop.User.first_name", "first_name", ["Ada", "Grace"]),
    ("shop.User.last_name", "last_name", ["Lovelace", "Hopper"]),
    ("shop.Address.line2", "phone", ["+44 20 7946 0958", "(555) 010-4477"]),
    ("shop.Address.line1", "street", ["1 Real Street", "Flat 2, 10 Downing St"]),
    ("shop.Address.city", "city", ["London", "Zürich"]),
    ("shop.Address.postal_code", "postcode", ["SW1A 1AA", "75008", "K1A 0B1"]),
    ("shop.UserActivity.ip_address", "ip", ["192.168.1.4", "2a00:1450:4009:81f::200e"]),
    ("shop.Order.notes", "text", ["Leave at the door, ring twice!", "x" * 3000]),
    ("shop.Subscription.started_at", "date_shift", [datetime(2025, 3, 1, 12, tzinfo=UTC)]),
    ("shop.User.username", "hash", ["ada", "grace"]),
    ("shop.Category.slug", "hash", ["shoes", "red-shoes"]),
    ("shop.ProductVariant.sku", "hash", ["SKU-1", "SKU-2"]),
    ("shop.User.email_verified_at", "null", [datetime(2025, 3, 1, tzinfo=UTC)]),
    ("shop.Account.access_token", "empty", ["ya29.secret-token"]),
    ("shop.UserActivity.payload", "empty", [{"query": "shoes"}]),
    ("shop.User.password", "unusable_password", ["pbkdf2_sha256$870000$salt$hash"]),
]


def test_every_built_in_rule_is_exercised_on_the_shop():
    assert {rule for _, rule, _ in FITS} == set(BUILT_IN)


@pytest.mark.parametrize(
    ("label", "rule", "values"), FITS, ids=[f"{rule}-{label}" for label, rule, _ in FITS]
)
def test_each_built_in_rule_fits_its_field(settings, label, rule, values):
    settings.DBTOOLS = {"MASK": {label: rule}, "MASK_KEY": KEY}
    assert check_mask() == []
    _, model_name, field_name = label.split(".")
    model = m.__dict__[model_name]
    field = model._meta.get_field(field_name)
    outputs = masked({label: rule}, model, field.attname, values)
    for value, output in zip(values, outputs, strict=True):
        assert output != value
        if rule == "null":
            assert output is None
            continue
        field.run_validators(output)  # max_length, email and IP formats
        if isinstance(output, str) and field.max_length:
            assert len(output) <= field.max_length
    assert outputs == masked({label: rule}, model, field.attname, values)


def test_masked_emails_and_ips_are_valid():
    for email in masked({"shop.User.email": "email"}, m.User, "email", EMAILS):
        validate_email(email)
        assert email.endswith("@example.com")
    ips = masked(
        {"shop.UserActivity.ip_address": "ip"}, m.UserActivity, "ip_address", ["1.2.3.4", "::1"]
    )
    assert ipaddress.ip_address(ips[0]) in ipaddress.ip_network("10.0.0.0/8")
    assert ipaddress.ip_address(ips[1]) in ipaddress.ip_network("2001:db8::/32")


def test_text_postcode_and_phone_keep_the_shape_of_the_value():
    notes = masked({"shop.Order.notes": "text"}, m.Order, "notes", ["Ring 12 times, Bob!"])[0]
    assert len(notes) == len("Ring 12 times, Bob!")
    assert notes[0].isupper() and notes[5:7].isdigit() and notes[-1] == "!" and notes[13] == ","
    code = masked({"shop.Address.postal_code": "postcode"}, m.Address, "postal_code", ["SW1A 1AA"])[
        0
    ]
    assert [c.isdigit() for c in code] == [c.isdigit() for c in "SW1A 1AA"] and code[4] == " "


def test_date_shift_moves_within_its_range_and_never_by_nothing():
    rules = {"shop.Subscription.started_at": "date_shift:3"}
    start = datetime(2025, 1, 1, tzinfo=UTC)
    values = [start + timedelta(hours=h) for h in range(200)]
    for value, output in zip(
        values, masked(rules, m.Subscription, "started_at", values), strict=True
    ):
        assert timedelta(0) < abs(output - value) <= timedelta(days=3)
        assert output.tzinfo is UTC
    text = masked(rules, m.Subscription, "started_at", ["2025-01-01 10:00:00+00:00"])[0]
    assert datetime.fromisoformat(text) != datetime.fromisoformat("2025-01-01 10:00:00+00:00")
    shift = BUILT_IN["date_shift"].apply
    context = MaskContext(keyed_signer(KEY), argument="3")
    assert 0 < abs((shift(date(2025, 1, 1), context) - date(2025, 1, 1)).days) <= 3


# Unique columns stay unique


def test_collisions_on_a_unique_column_are_resolved_the_same_way_every_run():
    rules = {"shop.NewsletterSubscriber.email": "tests.test_masking.one_hex_digit"}
    inputs = [f"reader{i}@real.org" for i in range(12)]
    outputs = masked(rules, m.NewsletterSubscriber, "email", inputs)
    assert len(set(outputs)) == len(inputs)
    assert outputs == masked(rules, m.NewsletterSubscriber, "email", inputs)
    assert all(len(o) == len("0@example.com") for o in outputs)


def test_a_resolved_collision_masks_alike_in_the_other_tables():
    spec = "tests.test_masking.one_hex_digit"
    masker = Masker({"shop.NewsletterSubscriber.email": spec, "shop.Order.email": spec}, KEY)
    inputs = [f"reader{i}@real.org" for i in range(12)]
    subscribers = mask_rows(masker, m.NewsletterSubscriber, [{"email": e} for e in inputs])
    orders = mask_rows(masker, m.Order, [{"email": e} for e in reversed(inputs)])
    assert orders == list(reversed(subscribers))


def test_a_column_unique_with_others_may_repeat_a_value_but_not_collide():
    rules = {"shop.Account.provider_account_id": "tests.test_masking.one_hex_digit"}
    inputs = ["u1", "u2", "u1", "u3", "u2", *[f"v{i}" for i in range(8)]]
    outputs = masked(rules, m.Account, "provider_account_id", inputs)
    assert outputs[0] == outputs[2] and outputs[1] == outputs[4]
    assert len(set(outputs)) == len(set(inputs))


def test_a_rule_with_too_few_values_for_a_unique_column_fails_clearly():
    rules = {"shop.NewsletterSubscriber.email": "tests.test_masking.one_hex_digit"}
    with pytest.raises(MaskingError) as caught:
        masked(rules, m.NewsletterSubscriber, "email", [f"r{i}@real.org" for i in range(17)])
    assert str(caught.value) == (
        "Masking shop.NewsletterSubscriber.email gave the same value to different rows 50 times, "
        "and the column is unique; give it a rule with more possible values, such as 'hash'."
    )


# JSON paths and a project's own function


def test_json_paths_mask_only_what_they_name():
    rules = {
        "shop.UserActivity.payload": {
            "$.query": "text",
            "$.items[*].email": "email",
            "$.ids[0]": "hash",
        }
    }
    document = {
        "query": "red shoes",
        "items": [{"email": "ada@real.org", "n": 2}],
        "ids": ["a1", "b2"],
        "path": "/p/1",
    }
    original = json.loads(json.dumps(document))
    output = masked(rules, m.UserActivity, "payload", [document])[0]
    assert document == original  # the value read is not changed under the reader's feet
    assert output["path"] == "/p/1" and output["items"][0]["n"] == 2 and output["ids"][1] == "b2"
    assert len(output["query"]) == len("red shoes") and output["query"] != "red shoes"
    assert (
        output["items"][0]["email"]
        == masked({"shop.User.email": "email"}, m.User, "email", ["ada@real.org"])[0]
    )
    assert output["ids"][0] != "a1"
    assert masked(rules, m.UserActivity, "payload", [{"other": 1}, [1, 2], '"x"']) == [
        {"other": 1},
        [1, 2],
        '"x"',
    ]


def test_json_given_as_text_is_masked_and_given_back_as_text():
    rules = {"shop.UserActivity.payload": {"$.query": "text"}}
    output = masked(rules, m.UserActivity, "payload", ['{"query": "red shoes", "ms": 5}'])[0]
    assert json.loads(output)["ms"] == 5
    assert json.loads(output)["query"] != "red shoes"


def test_whole_json_columns_given_as_text_stay_json_text_or_become_null():
    empty = masked(
        {"shop.UserActivity.payload": "empty"}, m.UserActivity, "payload", ['{"q": 1}', "[1]"]
    )
    assert empty == ["{}", "[]"]
    assert masked(
        {"shop.UserActivity.payload": "null"}, m.UserActivity, "payload", ['{"q": 1}']
    ) == [None]


def test_a_function_of_your_own_masks_by_its_dotted_path():
    rules = {"shop.Order.notes": "tests.test_masking.shout"}
    first, second = masked(rules, m.Order, "notes", ["secret", "secret"])
    assert first == second and first.startswith("MASKED-") and len(first) == 13


def nothing(value, context: MaskContext) -> None:
    return None


def too_long(value, context: MaskContext) -> str:
    return "x" * 300


def test_many_nulls_on_a_unique_column_are_not_collisions():
    # No shop column is both unique and nullable: the row masker is built by hand.
    column = ColumnMasker("app.Model.code", ("nothing",), lambda value, attempt: None)
    row_masker = RowMasker(m.User, [("code", column, UniqueTracker())], {})
    assert [row_masker({"code": c})["code"] for c in "abc"] == [None, None, None]


def test_error_for_a_function_that_gives_none_on_a_not_null_column():
    with pytest.raises(MaskingError) as caught:
        masked({"shop.Order.notes": "tests.test_masking.nothing"}, m.Order, "notes", ["secret"])
    assert str(caught.value) == (
        "The masking function tests.test_masking.nothing gave None for shop.Order.notes, "
        "which is NOT NULL; make it return a value."
    )


def test_error_for_a_function_that_gives_more_than_the_column_holds():
    with pytest.raises(MaskingError) as caught:
        masked({"shop.Address.city": "tests.test_masking.too_long"}, m.Address, "city", ["Leeds"])
    assert str(caught.value) == (
        "The masking function tests.test_masking.too_long gave 300 characters for "
        "shop.Address.city, which holds 100; make it cut its output to context.max_length."
    )


# manage.py check: one test per message


def messages(settings, mask, key: object = KEY) -> list[tuple[str, str]]:
    settings.DBTOOLS = {"MASK": mask} if key is None else {"MASK": mask, "MASK_KEY": key}
    return [(message.id, message.msg) for message in check_mask()]


def test_check_is_silent_without_mask(settings):
    settings.DBTOOLS = {}
    assert check_mask() == []
    assert Masker.from_settings() is None


def test_mask_and_mask_key_are_known_settings(settings):
    settings.DBTOOLS = {"MASK": {"shop.User.email": "email"}, "MASK_KEY": KEY}
    assert settings_problems() == []
    assert check_mask() == []
    assert Masker.from_settings().drops(m.User) is False


def test_error_for_mask_that_is_not_a_dict(settings):
    assert messages(settings, ["shop.User.email"]) == [
        (
            "dbtools.E010",
            "DBTOOLS['MASK'] must be a dict of models and fields to rules, such as {'shop.User.email': 'email'}, not ['shop.User.email'].",
        )
    ]


def test_error_for_label_that_is_neither_model_nor_field(settings):
    assert messages(settings, {"email": "email"}) == [
        (
            "dbtools.E010",
            "DBTOOLS['MASK']['email']: 'email' must name a model or a field, such as 'shop.User' or 'shop.User.email'.",
        )
    ]


def test_error_for_unknown_rule(settings):
    assert messages(settings, {"shop.User.email": "fake_email"}) == [
        (
            "dbtools.E010",
            "DBTOOLS['MASK']['shop.User.email']: 'fake_email' is neither a built-in rule (city, date_shift, drop, email, empty, first_name, hash, ip, last_name, name, null, phone, postcode, street, text, unusable_password) nor the dotted path of a function.",
        )
    ]


def test_error_for_function_that_cannot_be_imported(settings):
    assert messages(settings, {"shop.Order.notes": "tests.test_masking.nowhere"}) == [
        (
            "dbtools.E010",
            "DBTOOLS['MASK']['shop.Order.notes']: the function 'tests.test_masking.nowhere' cannot be imported (Module \"tests.test_masking\" does not define a \"nowhere\" attribute/class).",
        )
    ]


def test_error_for_bad_date_shift_range(settings):
    assert messages(settings, {"shop.Subscription.started_at": "date_shift:soon"}) == [
        (
            "dbtools.E010",
            "DBTOOLS['MASK']['shop.Subscription.started_at']: 'date_shift:soon' needs a whole number of days of 1 or more after the colon.",
        )
    ]


def test_error_for_argument_to_a_rule_that_takes_none(settings):
    assert messages(settings, {"shop.User.email": "email:5"}) == [
        (
            "dbtools.E010",
            "DBTOOLS['MASK']['shop.User.email']: the rule 'email' takes no argument, but 'email:5' gives one.",
        )
    ]


def test_error_for_bad_json_path(settings):
    assert messages(settings, {"shop.UserActivity.payload": {"query": "text"}}) == [
        (
            "dbtools.E010",
            "DBTOOLS['MASK']['shop.UserActivity.payload']['query']: 'query' is not a JSON path dbtools reads; write $.key, $.key.inner, $.list[*].key or $.list[0].",
        )
    ]


def test_error_for_unknown_model(settings):
    assert messages(settings, {"shop.Customer.email": "email"}) == [
        (
            "dbtools.E011",
            "DBTOOLS['MASK']['shop.Customer.email']: shop.Customer is not an installed model.",
        )
    ]


def test_error_for_unknown_field(settings):
    assert messages(settings, {"shop.User.emial": "email"}) == [
        ("dbtools.E011", "DBTOOLS['MASK']['shop.User.emial']: shop.User has no field 'emial'.")
    ]


def test_error_for_rule_that_cannot_fit_the_field_type(settings):
    assert messages(settings, {"shop.Order.total": "email"}) == [
        (
            "dbtools.E012",
            "DBTOOLS['MASK']['shop.Order.total']: the rule 'email' cannot fit shop.Order.total, a DecimalField; it fits EmailField, CharField and TextField.",
        )
    ]


def test_error_for_null_on_a_not_null_field(settings):
    assert messages(settings, {"shop.Order.notes": "null"}) == [
        (
            "dbtools.E012",
            "DBTOOLS['MASK']['shop.Order.notes']: 'null' on shop.Order.notes, which is NOT NULL; use 'empty' or a rule that makes a value.",
        )
    ]


def test_error_for_rule_longer_than_the_column(settings):
    assert messages(settings, {"shop.Address.country": "hash"}) == [
        (
            "dbtools.E012",
            "DBTOOLS['MASK']['shop.Address.country']: the rule 'hash' needs 8 characters and shop.Address.country holds 2; choose a shorter rule such as 'hash' or 'text'.",
        )
    ]


def test_error_for_drop_on_a_field(settings):
    assert messages(settings, {"shop.User.email": "drop"}) == [
        (
            "dbtools.E012",
            "DBTOOLS['MASK']['shop.User.email']: 'drop' leaves out a whole table; write it on the model, 'shop.User', or give the field a rule that masks it.",
        )
    ]


def test_error_for_field_rule_on_a_model(settings):
    assert messages(settings, {"shop.User": "email"}) == [
        (
            "dbtools.E012",
            "DBTOOLS['MASK']['shop.User']: a whole model can only be dropped ('drop'); name a field, such as 'shop.User.<field>', to mask it.",
        )
    ]


def test_error_for_masking_a_key(settings):
    assert messages(settings, {"shop.Order.user": "null", "shop.SiteSettings.key": "hash"}) == [
        (
            "dbtools.E012",
            "DBTOOLS['MASK']['shop.Order.user']: shop.Order.user is a foreign key; masking it would break the rows that point at it, so leave it out of MASK.",
        ),
        (
            "dbtools.E012",
            "DBTOOLS['MASK']['shop.SiteSettings.key']: shop.SiteSettings.key is the primary key; masking it would break the rows that point at it, so leave it out of MASK.",
        ),
    ]


def test_error_for_masking_a_column_another_model_points_at_by_to_field(settings):
    assert messages(settings, {"edgecases.UniqueEmail.email": "hash"}) == [
        (
            "dbtools.E017",
            "DBTOOLS['MASK']['edgecases.UniqueEmail.email']: edgecases.UniqueEmail.email is the target of edgecases.EmailReference.owner (to_field); masking it would break the rows that point at it, which keep its original values, so leave it out of MASK.",
        )
    ]
    settings.DBTOOLS["MASK"] = {"edgecases.UniqueEmail.nickname": "text"}
    assert check_mask() == []


def test_error_for_masking_part_of_a_composite_primary_key(settings):
    assert messages(settings, {"shop.VerificationToken.token": "hash"}) == [
        (
            "dbtools.E012",
            "DBTOOLS['MASK']['shop.VerificationToken.token']: shop.VerificationToken.token is part of the composite primary key; masking it would break the rows that point at it, so leave it out of MASK.",
        )
    ]


def test_error_for_a_rule_on_a_swapped_model(settings):
    """AUTH_USER_MODEL is shop.User: auth.User has no table to mask."""
    assert messages(settings, {"auth.User.email": "email", "auth.User": "drop"}) == [
        (
            "dbtools.E016",
            "DBTOOLS['MASK']['auth.User.email']: auth.User is swapped for shop.User (settings.AUTH_USER_MODEL) and has no table; name 'shop.User' instead.",
        ),
        (
            "dbtools.E016",
            "DBTOOLS['MASK']['auth.User']: auth.User is swapped for shop.User (settings.AUTH_USER_MODEL) and has no table; name 'shop.User' instead.",
        ),
    ]


@isolate_apps("tests.edgecases")
def test_a_field_in_an_expression_unique_constraint_takes_only_unique_rules():
    class Nick(models.Model):
        nick = models.CharField(max_length=30)
        other = models.CharField(max_length=30)

        class Meta:
            app_label = "edgecases"
            constraints = [
                models.UniqueConstraint(Lower("nick"), name="nick_lower_uniq"),
                models.UniqueConstraint(Lower("other"), "nick", name="other_lower_uniq"),
            ]

    nick, other = Nick._meta.get_field("nick"), Nick._meta.get_field("other")
    assert unique_scope(nick) == unique_scope(other) == "together"
    assert fit_problems("MASK", other, "edgecases.Nick.other", choose_rule("name")) == [
        (
            "dbtools.E013",
            "MASK: the rule 'name' can give two rows the same value, and edgecases.Nick.other is part of a unique constraint; use 'hash', 'email' or 'ip', which stay unique.",
        )
    ]
    assert fit_problems("MASK", other, "edgecases.Nick.other", choose_rule("hash")) == []


def test_error_for_json_paths_on_a_field_that_is_not_json(settings):
    assert messages(settings, {"shop.Order.notes": {"$.query": "text"}}) == [
        (
            "dbtools.E012",
            "DBTOOLS['MASK']['shop.Order.notes']: JSON paths need a JSONField, and shop.Order.notes is a TextField.",
        )
    ]


def test_error_for_non_unique_rule_on_a_unique_field(settings):
    assert messages(settings, {"shop.User.username": "name"}) == [
        (
            "dbtools.E013",
            "DBTOOLS['MASK']['shop.User.username']: the rule 'name' can give two rows the same value, and shop.User.username is unique; use 'hash', 'email' or 'ip', which stay unique.",
        )
    ]


def test_error_for_non_unique_rule_on_a_field_in_a_unique_constraint(settings):
    assert messages(settings, {"shop.Account.provider_account_id": "text"}) == [
        (
            "dbtools.E013",
            "DBTOOLS['MASK']['shop.Account.provider_account_id']: the rule 'text' can give two rows the same value, and shop.Account.provider_account_id is part of a unique constraint; use 'hash', 'email' or 'ip', which stay unique.",
        )
    ]


def test_error_for_dropping_a_model_that_kept_rows_point_at(settings):
    assert messages(settings, {"shop.Product": "drop"}) == [
        (
            "dbtools.E015",
            "DBTOOLS['MASK']['shop.Product']: 'drop' leaves out shop.Product, but shop.CategoriesOnProducts.product, shop.ProductImage.product, shop.ProductVariant.product point at its rows and are kept; drop those models too, or mask shop.Product's fields instead.",
        )
    ]
    settings.DBTOOLS["EXCLUDE"] = ["shop.ProductImage"]
    settings.DBTOOLS["MASK"] = {
        "shop.Product": "drop",
        "shop.ProductVariant": "drop",
        "shop.CategoriesOnProducts": "drop",
        "shop.OrderItem": "drop",
        "shop.SubscriptionItem": "drop",
    }
    assert check_mask() == []


def test_error_for_a_rule_on_a_proxy_model_or_an_inherited_field(settings):
    rules = {
        "edgecases.ProxyPlace": "drop",
        "edgecases.ProxyPlace.name": "text",
        "edgecases.Restaurant.name": "text",
        "edgecases.ItalianRestaurant.address": "street",
    }
    assert messages(settings, rules) == [
        (
            "dbtools.E016",
            "DBTOOLS['MASK']['edgecases.ProxyPlace']: edgecases.ProxyPlace is a proxy model and has no table of its own; name 'edgecases.Place', whose table holds its rows, instead.",
        ),
        (
            "dbtools.E016",
            "DBTOOLS['MASK']['edgecases.ProxyPlace.name']: edgecases.ProxyPlace is a proxy model, and the column is in edgecases.Place's table; name 'edgecases.Place.name' instead (it masks the column for edgecases.ProxyPlace too).",
        ),
        (
            "dbtools.E016",
            "DBTOOLS['MASK']['edgecases.Restaurant.name']: edgecases.Restaurant inherits name from edgecases.Place, and the column is in edgecases.Place's table; name 'edgecases.Place.name' instead (it masks the column for edgecases.Restaurant too).",
        ),
        (
            "dbtools.E016",
            "DBTOOLS['MASK']['edgecases.ItalianRestaurant.address']: edgecases.ItalianRestaurant inherits address from edgecases.Place, and the column is in edgecases.Place's table; name 'edgecases.Place.address' instead (it masks the column for edgecases.ItalianRestaurant too).",
        ),
    ]
    with pytest.raises(ConfigurationError, match=r"^DBTOOLS\['MASK'\]\['edgecases.ProxyPlace'\]"):
        Masker.from_settings()  # so backupdb --mask never runs with them
    settings.DBTOOLS["MASK"] = {"edgecases.Place.name": "text"}
    assert check_mask() == []
    assert Masker.from_settings().masks(Place)


def test_error_for_missing_mask_key(settings):
    assert messages(settings, {"shop.User.email": "email"}, key=None) == [
        (
            "dbtools.E014",
            "DBTOOLS['MASK'] is set but DBTOOLS['MASK_KEY'] is not; set it to a secret of at least 32 characters kept out of the code, such as os.environ['DBTOOLS_MASK_KEY'].",
        )
    ]


def test_error_for_short_mask_key(settings):
    assert messages(settings, {"shop.User.email": "email"}, key="secret") == [
        (
            "dbtools.E014",
            "DBTOOLS['MASK_KEY'] must be a secret of at least 32 characters (python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one); the one set is too short to keep the masked values from being guessed back.",
        )
    ]


def test_from_settings_refuses_bad_rules_with_the_check_messages(settings):
    settings.DBTOOLS = {"MASK": {"shop.User.emial": "email"}, "MASK_KEY": KEY}
    with pytest.raises(ConfigurationError) as caught:
        Masker.from_settings()
    assert (
        str(caught.value) == "DBTOOLS['MASK']['shop.User.emial']: shop.User has no field 'emial'."
    )


# On a real database


SHOP_RULES = {
    "shop.User.email": "email",
    "shop.User.username": "hash",
    "shop.User.first_name": "first_name",
    "shop.User.last_name": "last_name",
    "shop.User.password": "unusable_password",
    "shop.Order.email": "email",
    "shop.NewsletterSubscriber.email": "email",
    "shop.Address.full_name": "name",
    "shop.Address.line1": "street",
    "shop.Address.city": "city",
    "shop.Address.postal_code": "postcode",
    "shop.UserActivity.ip_address": "ip",
    "shop.UserActivity.payload": {"$.path": "text"},
    "shop.Subscription.started_at": "date_shift",
}


def test_masked_rows_satisfy_every_constraint_and_join_alike(settings, alias):
    seed_shop(600, using=alias)
    for order in m.Order.objects.using(alias).select_related("user").filter(user__isnull=False):
        order.email = order.user.email  # a customer's email in two tables: the join must hold
        order.save(update_fields=["email"])
    settings.DBTOOLS = {"MASK": SHOP_RULES, "MASK_KEY": KEY}
    masker = Masker.from_settings()
    originals: dict[str, set] = {}
    for label in sorted({label.rsplit(".", 1)[0] for label in SHOP_RULES}):
        model = m.__dict__[label.split(".")[1]]
        row_masker = masker.for_table(model)
        columns = ["pk", *row_masker.masked_columns]
        for row in model._base_manager.using(alias).order_by("pk").values(*columns):
            before = dict(row)
            after = row_masker(row)
            for column in row_masker.masked_columns:
                originals.setdefault(f"{label}.{column}", set()).add(
                    json.dumps(before[column], default=str)
                )
            model._base_manager.using(alias).filter(pk=after.pop("pk")).update(**after)
    # The updates above ran under the database's own unique constraints; and to be plain:
    users = list(m.User.objects.using(alias).values_list("email", flat=True))
    assert len(set(users)) == len(users)
    assert users and not {json.dumps(u) for u in users} & originals["shop.User.email"]
    for user in m.User.objects.using(alias).all():
        user.full_clean(validate_unique=False, validate_constraints=False)  # formats and lengths
        assert not user.has_usable_password()
    orders = m.Order.objects.using(alias).select_related("user").filter(user__isnull=False)
    assert orders and all(order.email == order.user.email for order in orders)
    assert (
        not set(m.Order.objects.using(alias).values_list("email", flat=True))
        & originals["shop.Order.email"]
    )
    # Backup reads a JSON column as the database's text: each backend's text masks alike.
    as_text = m.UserActivity.objects.using(alias).annotate(text=Cast("payload", TextField()))
    document = as_text.values_list("text", flat=True).first()
    row = masker.for_table(m.UserActivity)({"payload": document})
    assert (
        json.loads(row["payload"])
        == mask_rows(masker, m.UserActivity, [{"payload": json.loads(document)}])[0]["payload"]
    )
    activity = m.UserActivity.objects.using(alias).exclude(ip_address=None).first()
    assert ipaddress.ip_address(activity.ip_address) in ipaddress.ip_network("10.0.0.0/8")


def test_the_demo_sites_rules_pass_check(settings, monkeypatch):
    """config/settings.py sets its rules only where DBTOOLS_MASK_KEY is set,
    so no plain `check` sees them: they are checked here, against the shop."""
    import importlib

    import config.settings as demo

    monkeypatch.setenv("DBTOOLS_MASK_KEY", KEY)
    try:
        rules = importlib.reload(demo).DBTOOLS["MASK"]
    finally:
        monkeypatch.delenv("DBTOOLS_MASK_KEY")
        importlib.reload(demo)
    assert "shop.User.email" in rules and "admin.LogEntry" in rules
    settings.DBTOOLS = {"MASK": rules, "MASK_KEY": KEY}
    assert check_mask(None) == []


# Outputs pinned: a faster rule must give the same values, or bump RULES_VERSION


@pytest.mark.parametrize(
    ("key", "pinned"),
    [
        ("a-test-key-that-is-long-enough-0123456789", "6e5089c5bf8b2e80"),
        ("k" * 100, "761b3b5196149fb5"),
    ],
)
def test_the_keyed_signer_is_hmac_sha256_for_short_and_long_keys(key, pinned):
    sign = keyed_signer(key)
    for i in range(50):
        assert sign(b"x%d" % i) == hmac.digest(key.encode(), b"x%d" % i, "sha256")
    assert hashlib.sha256(b"".join(sign(b"x%d" % i) for i in range(50))).hexdigest()[:16] == pinned


@pytest.mark.parametrize(
    ("value", "either", "ipv6", "narrow"),
    [
        ("10.1.2.3", "10.184.106.208", "2001:db8:21a9:4561:d7b5:d114:e0b8:6ad0", "10.184.106.208"),
        (
            "::1",
            "2001:db8:1658:b824:49c7:3aa6:e2d3:508c",
            "2001:db8:1658:b824:49c7:3aa6:e2d3:508c",
            "10.211.80.140",
        ),
        ("not an ip", "10.92.56.79", "2001:db8:ec48:46d1:2063:4cb2:b05c:384f", "10.92.56.79"),
        ("1:2", "10.26.209.110", "2001:db8:319b:c8f0:3ff6:6937:701a:d16e", "10.26.209.110"),
        ("192.168.0.1", "10.47.82.243", "2001:db8:4e5c:79bf:80ce:6dad:312f:52f3", "10.47.82.243"),
    ],
)
def test_ip_outputs_are_pinned(value, either, ipv6, narrow):
    sign = keyed_signer(KEY)
    ip = BUILT_IN["ip"].apply
    assert ip(value, MaskContext(sign)) == either
    assert ip(value, MaskContext(sign, protocol="IPv6")) == ipv6
    assert ip(value, MaskContext(sign, max_length=15)) == narrow


def test_every_built_in_rules_outputs_are_pinned():
    """Every rule, at two attempts and two column sizes: the same values as
    RULES_VERSION 1 gave (a faster rule may not change one silently)."""
    sign = keyed_signer(KEY)
    values = ["ada@real.org", "Ada Lovelace", "+44 20 7946 0018", "SW1A 1AA", "12 High Street"]
    values += ["", "é🚀 x"]
    dates = [date(2024, 2, 29), datetime(2024, 1, 1, 12, tzinfo=UTC), "2024-05-01"]
    out = []
    for name, rule in sorted(BUILT_IN.items()):
        for attempt in (0, 2):
            for max_length in (None, 20):
                context = MaskContext(sign, max_length=max_length, attempt=attempt)
                out += [
                    repr(rule.apply(v, context))
                    for v in (dates if name == "date_shift" else values)
                ]
    assert len(out) == 404
    assert hashlib.sha256("\n".join(out).encode()).hexdigest()[:16] == "f6ca724086238dbc"


@backends("sqlite")
@pytest.mark.parametrize(
    "other",
    [
        "tests.test_masking.one_hex_digit",  # username's rule too: masked row by row
        "hash",  # another rule: column by column, looking up what username remapped
    ],
)
def test_masking_a_batch_column_by_column_gives_what_row_by_row_does(alias, other):
    rules = {
        "shop.User.username": "tests.test_masking.one_hex_digit",
        "shop.User.first_name": other,
    }
    table = next(t for t in plan_tables(alias).tables if t.label == "shop.User")

    def masker() -> TupleMasker:
        return TupleMasker(table, Masker(rules, KEY).for_table(m.User))

    assert [table.fields[i].attname for i in masker().columns] == ["username", "first_name"]
    rows = [[f"user{i}", f"user{11 - i}"] for i in range(12)] + [[None, "user1"], ["user3", None]]
    one, two = masker(), masker()
    by_row = [one.values(list(row)) for row in rows]
    assert two.row_masker.by_column == (other == "hash")
    by_column = two.columns_of([[row[0] for row in rows], [row[1] for row in rows]])
    assert [list(row) for row in zip(*by_column, strict=True)] == by_row
    assert one.row_masker.remapped  # collisions were resolved, and looked up


BATCH_VALUES = ["ada@real.org", "", "Ada Lovelace", "", "+44 20 7946 0018", "SW1A 1AA"]
BATCH_VALUES += ["é🚀 x", "x" * 70 + "7", "192.168.0.1", "::1", "2a00:1450:4009:81f::200e", "1:2"]


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_a_rule_masks_a_batch_as_it_masks_each_value_alone(name):
    rule = BUILT_IN[name]
    values = [date(2024, 2, 29), "2024-05-01", "2024-05-01 10:00:00"] * 2
    values = values if name == "date_shift" else [*BATCH_VALUES, 42, b"raw", date(2024, 1, 1)]
    for attempt in (0, 3):
        for max_length in (None, 20, 45):
            for protocol in ("both", "IPv4", "IPv6"):
                context = MaskContext(
                    keyed_signer(KEY), max_length=max_length, attempt=attempt, protocol=protocol
                )
                assert rule.apply_all is not None
                assert rule.apply_all(values, context) == [rule.apply(v, context) for v in values]
                assert rule.apply_all(values[::-1], context) == [
                    rule.apply(v, context) for v in values[::-1]
                ]


def narrow_columns(remapped: dict) -> list[RowMasker]:
    """Two tables' columns masked alike by one_hex_digit (16 outputs): a unique
    one, whose collisions are remapped, and a plain one that must follow them."""
    context = MaskContext(keyed_signer(KEY))

    def mask(value, attempt):
        return one_hex_digit(value, replace(context, attempt=attempt))

    def mask_all(values):
        return [mask(v, 0) for v in values]

    column = ColumnMasker("shop.NewsletterSubscriber.email", ("one-hex",), mask, mask_all)
    unique = RowMasker(m.NewsletterSubscriber, [("email", column, UniqueTracker())], remapped)
    plain = RowMasker(m.Order, [("email", column, None)], remapped)
    return [unique, plain]


def test_a_batch_masked_column_by_column_follows_every_collision_resolved_before():
    values = [f"reader{i}@real.org" for i in range(12)]
    column = [None, *values[::-1], None, values[3]]
    by_value_unique, by_value_plain = narrow_columns({})
    by_value = [by_value_unique.mask_value(0, v) for v in values]
    by_value_plain_out = [None if v is None else by_value_plain.mask_value(0, v) for v in column]
    remapped: dict = {}
    unique, plain = narrow_columns(remapped)
    assert unique.mask_column(0, list(values)) == by_value
    assert remapped  # collisions were resolved, and are looked up below
    assert plain.mask_column(0, list(column)) == by_value_plain_out
    assert len(set(by_value)) == len(values)


def test_a_remembering_rule_gives_what_the_rule_gives_and_stops_when_values_rarely_repeat(
    monkeypatch,
):
    monkeypatch.setattr(Remembering, "REMEMBERED", 50)
    context = MaskContext(keyed_signer(KEY))
    rule = BUILT_IN["first_name"].apply_all
    calls: list[list] = []

    def counted(values: list) -> list:
        calls.append(list(values))
        return rule(values, context)

    repeating = Remembering(counted)
    batches = [[f"name{i % 7}" for i in range(40)], [f"name{i % 60}" for i in range(90)]]
    batches += [["name1", 1, True, 1.0, date(2024, 1, 1)], ["", "", "name1"]]
    for batch in batches:
        assert repeating(list(batch)) == rule(batch, context)
    assert [len(call) for call in calls] == [7, 60, 5, 2]  # past 50 known: forgotten, then afresh
    fresh = Remembering(counted)
    distinct = [f"x{i}" for i in range(Remembering.JUDGED_AFTER)]
    assert fresh(distinct) == rule(distinct, context)
    assert fresh.known is None  # no repeats: no longer remembered
    assert fresh(["x1", "x1"]) == rule(["x1", "x1"], context)
    assert calls[-1] == ["x1", "x1"]


def test_a_digest_is_the_hmac_of_its_parts_and_attempt_as_it_always_was():
    """A custom rule's outputs must not change between versions: digest() with
    no parts hashes the attempt's digits alone (b"0", not b"\\x1f0")."""

    def hmac_of(message: bytes) -> bytes:
        return hmac.new(KEY.encode(), message, hashlib.sha256).digest()

    context = MaskContext(keyed_signer(KEY))
    assert context.digest() == hmac_of(b"0")
    assert MaskContext(keyed_signer(KEY), attempt=2).digest() == hmac_of(b"2")
    assert context.digest("a", 1) == hmac_of(b"a\x1f1\x1f0")
    assert MaskContext(keyed_signer(KEY), attempt=3).digest("a") == hmac_of(b"a\x1f3")
