"""Tenancy, rate limits, budgets, pricing and spend (docs/governance.md)."""
