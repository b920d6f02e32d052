"""Routing: a public model name to a deployment, with retries, fallbacks and cooldowns."""
