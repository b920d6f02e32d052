"""The detectors against a corpus they were not written against (tests/guardrails/held_out.py:
Stripe's test cards, SWIFT's example IBANs, libphonenumber's example numbers for every region):
recall of each, and precision across them (a sample sets off its own detector and no other)."""

from __future__ import annotations

from collections import Counter

from tests.guardrails import held_out
from tests.guardrails.test_detectors import EVERYTHING


def test_held_out_cards_ibans_and_phone_numbers_are_found_by_their_detector_and_no_other() -> None:
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    strays: list[tuple[str, set[str]]] = []
    for text, expected in held_out.samples():
        totals[expected] += 1
        found = {m.detector for m in EVERYTHING.inspect(text)}
        hits[expected] += expected in found
        if found - {expected}:
            strays.append((text, found))
    recall = {name: hits[name] / totals[name] for name in totals}
    assert totals["card"] >= 40 and totals["iban"] >= 120 and totals["phone"] >= 400
    assert recall["card"] == 1.0 and recall["iban"] == 1.0, recall
    assert recall["phone"] >= 0.98, recall
    assert strays == []
