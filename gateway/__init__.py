"""Sealgate gateway."""
