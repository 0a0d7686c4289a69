"""A device and its readings, stored in the site's sqlite database."""

from __future__ import annotations

from typing import Any

from django.db import models, transaction
from django.db.models import Avg, Count


class Device(models.Model):
    """A thermostat that has published at least one reading: its id is the ``{device_id}``
    level of ``devices/{device_id}/telemetry``."""

    name = models.CharField(max_length=64, unique=True)
    last = models.FloatField(null=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    @classmethod
    def record(cls, name: str, temperature: float) -> Device:
        """Store a reading of the device ``name`` (created on its first reading)."""
        with transaction.atomic():
            device, _ = cls.objects.get_or_create(name=name)
            device.readings.create(temperature=temperature)
            device.last = temperature
            device.save(update_fields=["last", "updated"])
        return device

    def summary(self) -> dict[str, Any]:
        """The device's last reading, its average and count, and when it last reported: what
        the page shows, and what the device consumer sends to the ``telemetry`` group."""
        stats = self.readings.aggregate(avg=Avg("temperature"), count=Count("id"))
        return {
            "device_id": self.name,
            "last": self.last,
            "avg": stats["avg"],
            "count": stats["count"],
            "updated": self.updated.isoformat(),
        }


class Reading(models.Model):
    """One temperature a device published, in degrees Celsius."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="readings")
    temperature = models.FloatField()
    received = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-received",)

    def __str__(self) -> str:
        return f"{self.device.name}: {self.temperature} °C at {self.received:%Y-%m-%d %H:%M:%S}"
