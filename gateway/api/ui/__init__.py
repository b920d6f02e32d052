"""The admin dashboard at /ui: server-rendered pages over the admin API (``through.py``), signed
in with the admin credential, an admin token or OpenID Connect (``signin.py``), with the web
security a review asks for (``security.py``). Off unless ``ui.enabled`` (gateway/config/ui.py).
"""

from __future__ import annotations


def is_ui(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")
