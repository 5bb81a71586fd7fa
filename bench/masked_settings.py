"""The demo site with a masking rule on every personal field of the shop:
the rule set bench/copies.py times `backupdb --mask` with."""

from config.settings import *  # noqa: F403
from config.settings import DBTOOLS

DBTOOLS = {
    **DBTOOLS,
    "MASK_KEY": "bench-only-key-not-a-secret-0123456789abcdef",
    "MASK": {
        "shop.User.email": "email",
        "shop.User.username": "hash",
        "shop.User.first_name": "first_name",
        "shop.User.last_name": "last_name",
        "shop.User.password": "unusable_password",
        "shop.User.image": "empty",
        "shop.Account.provider_account_id": "hash",
        "shop.Account.refresh_token": "empty",
        "shop.Account.access_token": "empty",
        "shop.Session": "drop",
        "shop.VerificationToken": "drop",
        "shop.Address.full_name": "name",
        "shop.Address.line1": "street",
        "shop.Address.line2": "text",
        "shop.Address.city": "city",
        "shop.Address.postal_code": "postcode",
        "shop.Order.email": "email",
        "shop.Order.notes": "text",
        "shop.NewsletterSubscriber.email": "email",
        "shop.UserActivity.ip_address": "ip",
        "shop.UserActivity.payload": {"$.path": "text"},
        "sessions.Session": "drop",
        "admin.LogEntry": "drop",
    },
}
