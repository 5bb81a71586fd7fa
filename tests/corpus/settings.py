"""A project made of Django's contrib apps and widely used third-party apps, for
the corpus test of safemigrate's checks (tests/test_corpus.py): their real
migrations, checked one step at a time. The database comes from CORPUS_DATABASE_URL."""

import os

import environ

SECRET_KEY = "corpus"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.sites",
    "django.contrib.flatpages",
    "django.contrib.redirects",
    "taggit",
    "reversion",
    "simple_history",
    "guardian",
    "waffle",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "dbtools",
]
MIDDLEWARE = ["allauth.account.middleware.AccountMiddleware"]
DATABASES = {"default": environ.Env.db_url_config(os.environ["CORPUS_DATABASE_URL"])}
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
DBTOOLS = {"BACKUP_DIR": os.environ.get("CORPUS_BACKUP_DIR", "/nonexistent")}
