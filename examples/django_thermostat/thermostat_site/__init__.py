"""The Django project of the thermostat site: settings, URLs and the ASGI application."""
