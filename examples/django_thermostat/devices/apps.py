"""The devices app's configuration."""

from django.apps import AppConfig


class DevicesConfig(AppConfig):
    """The thermostats and their readings."""

    name = "devices"
    default_auto_field = "django.db.models.BigAutoField"
