"""The site's URLs: the devices page at ``/``."""

from devices import views
from django.urls import path

urlpatterns = [
    path("", views.index, name="index"),
]
