"""The devices page."""

from __future__ import annotations

from django.db.models import Avg, Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from devices.models import Device


def index(request: HttpRequest) -> HttpResponse:
    """Every device with its last reading, average and count; the page's script then keeps
    them live over the WebSocket."""
    devices = Device.objects.annotate(avg=Avg("readings__temperature"), count=Count("readings"))
    return render(request, "devices/index.html", {"devices": devices})
