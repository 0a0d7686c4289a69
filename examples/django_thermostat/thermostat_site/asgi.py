"""The ASGI application: Django for ``http``, Channels for ``websocket``, and the device
consumer for ``mqtt`` scopes, in one Channels ``ProtocolTypeRouter``.

``asgi-gateway run gateway.yaml`` serves all three; ``daphne thermostat_site.asgi:application``
serves the web part alone.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "thermostat_site.settings")
# Django first: it sets up the apps that the consumers' models need.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from devices.routing import mqtt_routes, websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
        "mqtt": mqtt_routes,
    }
)
