"""Sealgate supply-chain verifier."""
