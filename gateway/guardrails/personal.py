"""Personal data: email addresses, phone numbers, payment cards, IBANs, US social security numbers
and IP addresses.

Each pattern finds candidates; the checks that make a candidate a finding are the ones the data
itself carries: the Luhn digit and an issuer prefix for a card, the ISO 13616 length and mod-97
checksum for an IBAN, the SSA's assignment rules for an SSN, the numbering plan (through the
``phonenumbers`` library, Google's libphonenumber metadata) for a phone number, and the address
grammar (``ipaddress``) for an IP.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass

import phonenumbers

from gateway.guardrails.detectors import PatternDetector, digit_runs

_DOMAIN = re.compile(
    r"@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}"
    r"(?![\w-]|:[\w/~])"  # not an SSH remote, git@host:path
)
_LOCAL = frozenset(string.ascii_letters + string.digits + "._%+-")


@dataclass(frozen=True, slots=True)
class EmailDetector:
    """An address: its domain found from the ``@`` (a pattern with a literal first character
    costs one fast search over a text without one), its local part walked back from there."""

    name: str = "email"
    placeholder: str = "[EMAIL]"
    confidence: float = 0.95
    gate: str | None = r"@[A-Za-z0-9-]"

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        if "@" not in text:
            return
        for found in _DOMAIN.finditer(text):
            at = found.start()
            start = at
            while start > 0 and at - start < 65 and text[start - 1] in _LOCAL:
                start -= 1
            if start < at and at - start <= 64 and not (start > 0 and text[start - 1].isalnum()):
                yield start, found.end()


EMAIL = EmailDetector()

# Issuer prefixes (IIN ranges) of the card schemes in use, with the lengths each issues.
_CARD_BRANDS: tuple[tuple[tuple[int, int], int, frozenset[int]], ...] = (
    ((4, 4), 1, frozenset({13, 16, 19})),  # Visa
    ((51, 55), 2, frozenset({16})),  # Mastercard
    ((2221, 2720), 4, frozenset({16})),  # Mastercard 2-series
    ((34, 34), 2, frozenset({15})),  # American Express
    ((37, 37), 2, frozenset({15})),
    ((6011, 6011), 4, frozenset({16, 19})),  # Discover
    ((644, 649), 3, frozenset({16, 19})),
    ((65, 65), 2, frozenset({16, 19})),
    ((3528, 3589), 4, frozenset({16, 17, 18, 19})),  # JCB
    ((300, 305), 3, frozenset({14, 16, 19})),  # Diners Club
    ((36, 36), 2, frozenset({14, 16, 19})),
    ((38, 39), 2, frozenset({16, 19})),
    ((62, 62), 2, frozenset({16, 17, 18, 19})),  # UnionPay
)
# Maestro's own ranges (50, 56-58, 67, 12 to 19 digits) are left out: they cover so much of the
# number space that order and account numbers pass them one time in ten.


def luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_number(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    length = len(digits)
    for (low, high), width, lengths in _CARD_BRANDS:
        if length in lengths and low <= int(digits[:width]) <= high:
            return luhn(digits)
    return False


CARD = PatternDetector(
    "card",
    "[CARD]",
    0.95,
    # where a run of digit groups starts (not inside an IBAN's groups or a longer number)
    re.compile(r"\d(?<![\w.-]\d)(?<!\d[ -]\d)(?:[ -]?\d){12,18}(?!\w|[.-]\d)"),
    check=card_number,
    regions=digit_runs,
    gate=r"(?:^|[^0-9A-Za-z_.-])\p{Nd}(?:[ -]?\p{Nd}){12}",
    shortest=13,
)

# ISO 13616 lengths of the countries that issue IBANs (SWIFT's IBAN registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_checksum(compact: str) -> bool:
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")


@dataclass(frozen=True, slots=True)
class IbanDetector:
    """An IBAN, compact or in groups of four, of its country's length with a valid checksum. A
    candidate longer than its country's IBAN (the grouped form runs into the next word written in
    capitals) is cut at the country's length when the cut falls between groups."""

    name: str = "iban"
    placeholder: str = "[IBAN]"
    confidence: float = 0.98
    gate: str | None = r"[A-Z]{2}\p{Nd}{2}"

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        for found in _IBAN.finditer(text):
            candidate = found.group()
            length = IBAN_LENGTHS.get(candidate[:2])
            if length is None:
                continue
            end = _end_of(candidate, length)
            if end is None:
                continue
            compact = candidate[:end].replace(" ", "")
            if iban_checksum(compact):
                yield found.start(), found.start() + end


def _end_of(candidate: str, length: int) -> int | None:
    """Where the first ``length`` non-space characters of ``candidate`` end, if that is its end
    or a space."""
    seen = 0
    for index, char in enumerate(candidate):
        if char != " ":
            seen += 1
            if seen == length:
                end = index + 1
                if end == len(candidate) or candidate[end] == " ":
                    return end
                return None
    return None


IBAN = IbanDetector()


def ssn(candidate: str) -> bool:
    """The SSA's rules: no area 000, 666 or 900-999, no group 00, no serial 0000, and not the
    numbers published in advertising."""
    digits = candidate.replace("-", "").replace(" ", "")
    area, group, serial = int(digits[:3]), digits[3:5], digits[5:]
    if area == 0 or area == 666 or area >= 900 or group == "00" or serial == "0000":
        return False
    return digits not in {"078051120", "219099999", "123456789"}


SSN = PatternDetector(
    "ssn",
    "[SSN]",
    0.85,
    # not after a "+" or inside a longer run of digit groups (a phone number: +992 372 12 3456)
    re.compile(r"\d(?<![\d+-]\d)(?<!\d[ -]\d)\d\d([- ])\d{2}\1\d{4}(?![\d]|-\d)"),
    check=ssn,
    regions=digit_runs,
    gate=r"(?:^|[^\p{Nd}-])\p{Nd}{3}[- ]\p{Nd}{2}[- ]\p{Nd}{4}",
    shortest=11,
)

_IPV4 = re.compile(r"\d(?<![\d.]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\d|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")


@dataclass(frozen=True, slots=True)
class IpDetector:
    name: str = "ip"
    placeholder: str = "[IP]"
    confidence: float = 0.8
    gate: str | None = r"\p{Nd}\.\p{Nd}{1,3}\.\p{Nd}{1,3}\.\p{Nd}|:[0-9A-Fa-f]{0,4}:"

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        if "." in text:
            for start, end in digit_runs(text):
                if end - start < 7:
                    continue
                for found in _IPV4.finditer(text, start, end):
                    if all(int(octet) <= 255 for octet in found.group().split(".")):
                        yield found.span()
        if _IPV6_HINT.search(text):
            for found in _IPV6.finditer(text):
                candidate = found.group()
                if candidate.count(":") < 2 or candidate in ("::", ":::"):
                    continue
                try:
                    ipaddress.IPv6Address(candidate)
                except ValueError:
                    continue
                yield found.span()


IP = IpDetector()

_PHONE = re.compile(r"[+(\d](?<![\w+.-][+(\d])[\d ().-]{5,18}\d(?![\w-]|\.\d)")


@dataclass(frozen=True, slots=True)
class PhoneDetector:
    """A phone number valid in the numbering plan and grouped the way that plan writes it (the
    library's strict grouping, so a run of digit groups from something else is not a number):
    international (``+``) in any plan, national in one of ``regions``."""

    regions: tuple[str, ...] = ("US",)
    name: str = "phone"
    placeholder: str = "[PHONE]"
    confidence: float = 0.85
    gate: str | None = r"(?:^|[^0-9A-Za-z_+.-])[+(\p{Nd}][\p{Nd} ().-]{5,18}\p{Nd}"

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        for start, end in digit_runs(text):
            if end - start < 7:
                continue
            for found in _PHONE.finditer(text, start, end):
                span = _phone_in(found.group(), self.regions)
                if span is not None:
                    yield found.start() + span[0], found.start() + span[1]


@functools.cache
def _shortest_national(regions: tuple[str, ...]) -> int:
    """The fewest digits a valid national number of any of ``regions`` has (its numbering
    plan's possible lengths; a number only dialled locally is not valid without its area)."""
    lengths = [7]
    for region in regions:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is not None and metadata.general_desc is not None:
            lengths += metadata.general_desc.possible_length or ()
    return max(7, min(lengths[1:] or lengths))


# A conversation sends its history again with every turn, so the same candidates come back:
# the library's parse (about 100 µs) is paid once per distinct candidate, not per request.
@functools.lru_cache(maxsize=4096)
def _phone_in(candidate: str, regions: tuple[str, ...]) -> tuple[int, int] | None:
    digits = len(candidate) - sum(candidate.count(c) for c in " ().-+")
    international = candidate.startswith("+")
    if digits > 15 or digits < (7 if international else _shortest_national(regions)):
        return None
    for region in (None,) if international else regions:
        for number in phonenumbers.PhoneNumberMatcher(candidate, region, leniency=_STRICT):
            return number.start, number.end
    return None


_STRICT = phonenumbers.Leniency.STRICT_GROUPING
