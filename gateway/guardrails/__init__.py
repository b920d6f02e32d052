"""Guardrails and data-loss prevention: built-in detectors (personal data, secrets, prompt
injection), the operator's own patterns and keyword lists (RE2), and policies that block, mask or
only record what they find, before the call, after it and while an answer streams.

Nothing here executes anything a configuration names: no ``eval``, ``exec``, ``pickle``, dynamic
import or shell (tests/guardrails/test_no_code_execution.py reads the whole package for them).
"""
