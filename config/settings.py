"""Settings for the dbtools demo site.

Values come from the environment first, then `.env.local`, then `.env`
(the reference workflow keeps DATABASE_URL in `.env.local`). With no
DATABASE_URL at all the site uses an embedded SQLite file, so a fresh clone
runs with nothing to configure.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# read_env never overrides a variable that is already set, so reading the
# more specific file first gives: environment > .env.local > .env.
for name in (".env.local", ".env"):
    if (BASE_DIR / name).is_file():
        env.read_env(BASE_DIR / name)

SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-change-me")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "shop",
    "dbtools",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if env.bool("DISABLE_SERVER_SIDE_CURSORS", default=False):
    # Needed behind a transaction-mode pooler such as Neon's -pooler endpoint.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True

AUTH_USER_MODEL = "shop.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

# dbtools reads all of its settings from this one dict; see README "Settings".
DBTOOLS = {
    "BACKUP_DIR": env.path("DBTOOLS_BACKUP_DIR", default=BASE_DIR / "backups"),
    # age public keys to encrypt every backup to, comma-separated (README "Encryption").
    "ENCRYPT_TO": env.list("DBTOOLS_ENCRYPT_TO", default=[]),
    # The age identity file that opens them; keep it off the server that makes the backups.
    "IDENTITY": env.str("DBTOOLS_IDENTITY", default="") or None,
}

# Masking rules for `backupdb --mask` (docs/masking.md): every personal field of
# the shop. They apply where the key is set, the server that makes the copies; a
# laptop that only restores one needs neither.
if mask_key := env.str("DBTOOLS_MASK_KEY", default=""):
    DBTOOLS["MASK_KEY"] = mask_key
    DBTOOLS["MASK"] = {
        "shop.User.username": "hash",
        "shop.User.email": "email",
        "shop.User.first_name": "first_name",
        "shop.User.last_name": "last_name",
        "shop.User.password": "unusable_password",
        "shop.User.image": "empty",
        "shop.Account.provider_account_id": "hash",
        "shop.Account.access_token": "empty",
        "shop.Account.refresh_token": "empty",
        "shop.Address.full_name": "name",
        "shop.Address.line1": "street",
        "shop.Address.line2": "text",
        "shop.Address.city": "city",
        "shop.Address.postal_code": "postcode",
        "shop.Order.email": "email",
        "shop.Order.notes": "text",
        "shop.NewsletterSubscriber.email": "email",
        "shop.UserActivity.ip_address": "ip",
        "shop.Session": "drop",
        "shop.VerificationToken": "drop",
        "sessions.Session": "drop",
        # The admin's history names the objects it changed ("Ada Lovelace").
        "admin.LogEntry": "drop",
    }

# Backups in an S3 bucket instead of backups/ (README "Storing backups elsewhere"):
# django-storages' S3Storage, under the alias DBTOOLS['STORAGE'] names. Credentials
# come from boto3's usual places (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws).
if env.str("DBTOOLS_S3_BUCKET", default=""):
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        "backups": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": env.str("DBTOOLS_S3_BUCKET"),
                "location": env.str("DBTOOLS_S3_PREFIX", default="backups"),
                # An S3-compatible server (MinIO, Cloudflare R2, …); empty: AWS.
                "endpoint_url": env.str("DBTOOLS_S3_ENDPOINT_URL", default="") or None,
                "region_name": env.str("DBTOOLS_S3_REGION", default="") or None,
            },
        },
    }
    DBTOOLS["STORAGE"] = "backups"
