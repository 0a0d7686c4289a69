"""Settings of the thermostat site, a small Django project served by asgi-gateway.

Everything that differs between a laptop and a deployment comes from the environment:
``THERMOSTAT_DB`` (the sqlite file), ``DJANGO_SECRET_KEY``, ``DJANGO_DEBUG`` and
``DJANGO_ALLOWED_HOSTS`` (comma-separated).
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# A development key: set DJANGO_SECRET_KEY anywhere else.
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "django-insecure-thermostat-example-only-not-for-production"
)
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "devices",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "thermostat_site.urls"
# What `daphne thermostat_site.asgi:application` and Channels' runserver serve.
ASGI_APPLICATION = "thermostat_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("THERMOSTAT_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

# Under `asgi-gateway run`, the `http` gateway hands Channels the daemon's channel layer, the
# one the MQTT consumers use; this one serves only when the site runs alone (daphne, uvicorn).
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

#: Degrees above which a reading is also sent to the page as an alert (examples/thermostat's
#: THERMOSTAT_ALERT_ABOVE).
THERMOSTAT_ALERT_ABOVE = float(os.environ.get("THERMOSTAT_ALERT_ABOVE", "30"))
