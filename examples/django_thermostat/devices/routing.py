"""The app's routes: the page's WebSocket for Channels' ``URLRouter``, and the devices'
topics for asgi-gateway's ``TopicRouter``."""

from django.urls import path

from consumers import TopicRouter, route
from devices.consumers import DeviceConsumer, DeviceFeedConsumer

websocket_urlpatterns = [
    path("ws/devices/", DeviceFeedConsumer.as_asgi()),
]

mqtt_routes = TopicRouter(
    [
        route("devices/{device_id}/telemetry", DeviceConsumer.as_asgi()),
    ]
)
