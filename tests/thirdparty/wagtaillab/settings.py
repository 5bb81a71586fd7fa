"""A small Wagtail site, as `wagtail start` lays one out, plus dbtools.

It runs in its own virtualenv with released Wagtail versions pinned in
requirements-*.txt beside manage.py, never in the suite's environment.
The database and the folders come from the environment:

    WAGTAILLAB_DB_ENGINE   postgresql (default) or sqlite
    WAGTAILLAB_DB_NAME     the database (a file path for sqlite)
    WAGTAILLAB_DB_HOST, WAGTAILLAB_DB_PORT, WAGTAILLAB_DB_USER, WAGTAILLAB_DB_PASSWORD
    WAGTAILLAB_DIR         where media/ and backups/ go
"""

import os

ENGINE = os.environ.get("WAGTAILLAB_DB_ENGINE", "postgresql")
LAB_DIR = os.environ["WAGTAILLAB_DIR"]

SECRET_KEY = "wagtail-lab-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "home",
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.contrib.settings",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "django_filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "dbtools",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
]

ROOT_URLCONF = "wagtaillab.urls"

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

if ENGINE == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["WAGTAILLAB_DB_NAME"],
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["WAGTAILLAB_DB_NAME"],
            "HOST": os.environ.get("WAGTAILLAB_DB_HOST", "127.0.0.1"),
            "PORT": os.environ.get("WAGTAILLAB_DB_PORT", "5432"),
            "USER": os.environ.get("WAGTAILLAB_DB_USER", "postgres"),
            "PASSWORD": os.environ.get("WAGTAILLAB_DB_PASSWORD", ""),
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = os.path.join(LAB_DIR, "static")
MEDIA_URL = "/media/"
MEDIA_ROOT = os.path.join(LAB_DIR, "media")

WAGTAIL_SITE_NAME = "Wagtail lab"
WAGTAILADMIN_BASE_URL = "http://localhost"
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}
WAGTAIL_WORKFLOW_ENABLED = True

DBTOOLS = {"BACKUP_DIR": os.path.join(LAB_DIR, "backups")}
# Workflow steps send notification emails; nothing leaves the machine.
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
