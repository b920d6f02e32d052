"""Upstream providers: one module per provider (``registry.py`` lists them), the HTTP client
pool, the egress guard, and the error mapping every HTTP provider shares."""
