"""The devices app: thermostats' readings stored through the ORM and pushed to the page."""
