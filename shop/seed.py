"""Deterministic demo data for the shop, from a few hundred rows to millions.

Every table gets rows in fixed proportions of `rows`; the same seed gives the
same rows (apart from auto_now timestamps, which take the time of seeding).
Primary keys are assigned here, so no insert has to wait for returned ids.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.core.management.color import no_style
from django.db import connections, transaction
from django.db.models import Model

from . import models as m

Progress = Callable[[str, int, int], None]

FIRST_NAMES = [
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Guido",
]
LAST_NAMES = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
]
CITIES = ["London", "Leeds", "Bristol", "Glasgow", "Cardiff", "Belfast", "York", "Bath"]
WORDS = ["oak", "linen", "copper", "wool", "stone", "maple", "glass", "cotton", "slate", "ash"]
THINGS = ["mug", "lamp", "chair", "scarf", "bowl", "shelf", "rug", "vase", "desk", "throw"]
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def shop_models() -> list[type[Model]]:
    return [
        m.User, m.Account, m.Session, m.VerificationToken, m.Address, m.Category, m.Product,
        m.ProductImage, m.ProductVariant, m.CategoriesOnProducts, m.Order, m.OrderItem,
        m.Subscription, m.SubscriptionItem, m.NewsletterSubscriber, m.SiteSettings,
        m.SocialLink, m.UserActivity,
    ]  # fmt: skip


class Seeder:
    def __init__(self, rows: int, seed: int, using: str, progress: Progress | None) -> None:
        self.rng = random.Random(seed)
        self.using = using
        self.progress = progress
        self.users = max(5, rows // 50)
        self.products = max(5, rows // 50)
        self.orders = max(5, rows // 10)
        self.subscriptions = max(2, rows // 250)
        self.newsletter = max(5, rows // 50)
        self.activities = max(10, rows * 37 // 100)
        self.categories = min(120, max(6, rows // 500))
        self.counts: dict[str, int] = {}

    # helpers
    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def when(self, days: int = 700) -> datetime:
        return EPOCH + timedelta(
            seconds=self.rng.randrange(days * 86_400), microseconds=self.rng.randrange(1_000_000)
        )

    def money(self, low: int, high: int) -> Decimal:
        return Decimal(self.rng.randrange(low * 100, high * 100)) / 100

    def save(self, model: type[Model], objects: Iterator[Model], total: int) -> None:
        batch: list[Model] = []
        done = 0
        for obj in objects:
            batch.append(obj)
            if len(batch) == 2000:
                model._default_manager.using(self.using).bulk_create(batch)
                done += len(batch)
                batch = []
                if self.progress:
                    self.progress(model._meta.label, done, total)
        if batch:
            model._default_manager.using(self.using).bulk_create(batch)
            done += len(batch)
        if self.progress:
            self.progress(model._meta.label, done, total)
        self.counts[model._meta.label] = self.counts.get(model._meta.label, 0) + done

    def run(self) -> dict[str, int]:
        with transaction.atomic(using=self.using):
            self.seed_users()
            self.seed_catalogue()
            self.seed_orders()
            self.seed_subscriptions()
            self.seed_site()
            self.seed_activity()
            connection = connections[self.using]
            with connection.cursor() as cursor:
                for sql in connection.ops.sequence_reset_sql(no_style(), shop_models()):
                    cursor.execute(sql)
        return self.counts

    def seed_users(self) -> None:
        rng = self.rng

        def users() -> Iterator[m.User]:
            for i in range(1, self.users + 1):
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                yield m.User(
                    id=i,
                    username=f"user{i}",
                    email=f"{first}.{last}.{i}@example.com".lower(),
                    first_name=first,
                    last_name=last,
                    password="!",
                    date_joined=self.when(),
                    email_verified_at=self.when() if rng.random() < 0.7 else None,
                )

        self.save(m.User, users(), self.users)
        self.save(m.Account, (
            m.Account(id=i, user_id=i * 2 - 1, provider=rng.choice(["google", "github"]),
                      provider_account_id=str(rng.getrandbits(60)), expires_at=rng.getrandbits(31))
            for i in range(1, self.users // 2 + 1)
        ), self.users // 2)  # fmt: skip
        self.save(m.Session, (
            m.Session(id=i, session_token=f"{rng.getrandbits(128):032x}", user_id=(i - 1) % self.users + 1,
                      expires=self.when() + timedelta(days=30))
            for i in range(1, self.users + 1)
        ), self.users)  # fmt: skip
        tokens = max(1, self.users // 10)
        self.save(m.VerificationToken, (
            m.VerificationToken(identifier=f"user{i}@example.com", token=f"{rng.getrandbits(96):024x}",
                                expires=self.when())
            for i in range(1, tokens + 1)
        ), tokens)  # fmt: skip
        self.address_ids: list[uuid.UUID] = []

        def addresses() -> Iterator[m.Address]:
            for i in range(1, self.users * 3 // 2 + 1):
                address_id = self.uuid()
                self.address_ids.append(address_id)
                yield m.Address(
                    id=address_id,
                    user_id=(i - 1) % self.users + 1,
                    full_name=f"Customer {i}",
                    line1=f"{rng.randrange(1, 300)} {rng.choice(WORDS).title()} Street",
                    city=rng.choice(CITIES),
                    postal_code=f"AB{rng.randrange(10, 99)} {rng.randrange(1, 9)}CD",
                    is_default=i <= self.users,
                )

        self.save(m.Address, addresses(), self.users * 3 // 2)

    def seed_catalogue(self) -> None:
        rng = self.rng
        self.save(m.Category, (
            m.Category(id=i, name=f"{WORDS[i % len(WORDS)].title()} {i}", slug=f"category-{i}",
                       parent_id=None if i <= 6 else rng.randrange(1, i), position=i % 10)
            for i in range(1, self.categories + 1)
        ), self.categories)  # fmt: skip
        self.product_ids = [self.uuid() for _ in range(self.products)]
        self.save(m.Product, (
            m.Product(id=pid, name=f"{rng.choice(WORDS).title()} {rng.choice(THINGS)} {i}",
                      slug=f"product-{i}", description="Made to last. " * rng.randrange(1, 6),
                      price=self.money(5, 400), is_active=rng.random() < 0.95,
                      featured=rng.random() < 0.1)
            for i, pid in enumerate(self.product_ids, 1)
        ), self.products)  # fmt: skip
        self.save(m.ProductImage, (
            m.ProductImage(id=i, product_id=self.product_ids[(i - 1) // 2],
                           url=f"https://cdn.example.com/p/{i}.jpg", alt_text=f"Photo {i}", position=i % 2)
            for i in range(1, self.products * 2 + 1)
        ), self.products * 2)  # fmt: skip
        self.variants = self.products * 3
        self.save(m.ProductVariant, (
            m.ProductVariant(id=i, product_id=self.product_ids[(i - 1) // 3], sku=f"SKU-{i:08d}",
                             name=rng.choice(["Small", "Medium", "Large"]), price=self.money(5, 400),
                             stock=rng.randrange(0, 500),
                             attributes={"colour": rng.choice(WORDS), "weight_g": rng.randrange(50, 5000)})
            for i in range(1, self.variants + 1)
        ), self.variants)  # fmt: skip

        def links() -> Iterator[m.CategoriesOnProducts]:
            n = 0
            for pid in self.product_ids:
                for category in rng.sample(range(1, self.categories + 1), 2):
                    n += 1
                    yield m.CategoriesOnProducts(id=n, product_id=pid, category_id=category)

        self.save(m.CategoriesOnProducts, links(), self.products * 2)

    def seed_orders(self) -> None:
        rng = self.rng
        statuses = [s.value for s in m.Order.Status]

        def orders() -> Iterator[m.Order]:
            for i in range(1, self.orders + 1):
                subtotal = self.money(10, 900)
                user = rng.randrange(1, self.users + 1) if rng.random() < 0.9 else None
                yield m.Order(
                    id=i,
                    number=f"ORD-{i:09d}",
                    user_id=user,
                    email=f"buyer{i}@example.com",
                    status=rng.choice(statuses),
                    shipping_address_id=rng.choice(self.address_ids) if user else None,
                    subtotal=subtotal,
                    shipping=Decimal("4.99"),
                    total=subtotal + Decimal("4.99"),
                    placed_at=self.when(),
                )

        self.save(m.Order, orders(), self.orders)
        total_items = self.orders * 5 // 2

        def order_items() -> Iterator[m.OrderItem]:
            for i in range(1, total_items + 1):
                yield m.OrderItem(
                    id=i,
                    order_id=(i - 1) * 2 // 5 + 1,
                    variant_id=rng.randrange(1, self.variants + 1),
                    product_name=f"Item {i}",
                    quantity=rng.randrange(1, 4),
                    unit_price=self.money(5, 400),
                )

        self.save(m.OrderItem, order_items(), total_items)

    def seed_subscriptions(self) -> None:
        rng = self.rng
        self.save(m.Subscription, (
            m.Subscription(id=i, user_id=rng.randrange(1, self.users + 1),
                           status=rng.choice(["active", "paused", "cancelled"]),
                           billing_interval=timedelta(weeks=rng.choice([1, 2, 4])),
                           started_at=self.when(), next_billing_at=self.when(800))
            for i in range(1, self.subscriptions + 1)
        ), self.subscriptions)  # fmt: skip
        items = self.subscriptions * 3 // 2
        self.save(m.SubscriptionItem, (
            m.SubscriptionItem(id=i, subscription_id=(i - 1) * 2 // 3 + 1,
                               variant_id=rng.randrange(1, self.variants + 1), quantity=rng.randrange(1, 3))
            for i in range(1, items + 1)
        ), items)  # fmt: skip
        self.save(m.NewsletterSubscriber, (
            m.NewsletterSubscriber(id=i, email=f"reader{i}@example.com", is_active=rng.random() < 0.9,
                                   confirmed_at=self.when() if rng.random() < 0.6 else None)
            for i in range(1, self.newsletter + 1)
        ), self.newsletter)  # fmt: skip

    def seed_site(self) -> None:
        settings = {
            "site_name": "Oak & Linen",
            "currency": "GBP",
            "free_shipping_over": "50.00",
            "maintenance": False,
            "banner": {
                "text": "Winter sale",
                "until": "2026-01-31",
                "colours": ["#222", "#fafafa"],
            },
            "tax_rate_basis_points": 2000,
        }
        self.save(
            m.SiteSettings,
            (m.SiteSettings(key=k, value=v) for k, v in settings.items()),
            len(settings),
        )
        self.save(m.SocialLink, (
            m.SocialLink(id=i, platform=p.value, url=f"https://{p.value}.example.com/oakandlinen", position=i)
            for i, p in enumerate(m.SocialLink.Platform, 1)
        ), len(m.SocialLink.Platform))  # fmt: skip

    def seed_activity(self) -> None:
        rng = self.rng
        actions = [a.value for a in m.UserActivity.Action]
        self.save(m.UserActivity, (
            m.UserActivity(id=i, user_id=rng.randrange(1, self.users + 1) if rng.random() < 0.8 else None,
                           action=rng.choice(actions),
                           payload={"path": f"/p/{rng.randrange(1, self.products + 1)}", "ms": rng.randrange(5, 900)},
                           ip_address=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}")
            for i in range(1, self.activities + 1)
        ), self.activities)  # fmt: skip


def seed_shop(
    rows: int, seed: int = 42, using: str = "default", progress: Progress | None = None
) -> dict[str, int]:
    """Fill the (empty) shop tables with about `rows` rows; return rows per table."""
    return Seeder(rows, seed, using, progress).run()


def shop_is_empty(using: str = "default") -> bool:
    return not any(model._default_manager.using(using).exists() for model in shop_models())


def flush_shop(using: str = "default") -> None:
    connection = connections[using]
    with transaction.atomic(using=using), connection.constraint_checks_disabled():
        m.Category._base_manager.using(using).update(parent=None)
        for model in reversed(shop_models()):
            model._base_manager.using(using).all()._raw_delete(using)
