"""The HTTP surface: every route the gateway serves is defined in this package, and nowhere
else. ``app.py`` assembles it; ``errors.py`` answers every failure; ``inference.py`` is the hot
path; ``admin/`` has one router per resource."""
