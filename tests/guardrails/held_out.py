"""A held-out corpus: positives the detectors were not written against, from public test data.

Provenance and licence:
- Payment cards: the test card numbers Stripe publishes for integration testing
  (https://docs.stripe.com/testing, "Cards by brand" and "Declined payments"). They are numbers
  published so that anyone may use them in tests; they charge nothing.
- IBANs: the example IBAN of each country in SWIFT's IBAN Registry (the registry's "IBAN
  electronic format example" field, https://www.swift.com/standards/data-standards/iban),
  published as the reference for validating implementations.
- Phone numbers: the example number of every region in libphonenumber's metadata (Google,
  Apache License 2.0), read at test time from the installed ``phonenumbers`` package with
  ``phonenumbers.example_number``, formatted the three ways people write them.
"""

from __future__ import annotations

import phonenumbers

STRIPE_TEST_CARDS = (
    "4242424242424242", "4000056655665556", "5555555555554444", "2223003122003222",
    "5200828282828210", "5105105105105100", "378282246310005", "371449635398431",
    "6011111111111117", "6011000990139424", "6011981111111113", "3056930009020004",
    "36227206271667", "3566002020360505", "6200000000000005", "6205500000000000004",
    "4000002500003155", "4000000000003220", "4000000000009995", "4000000000000002",
    "4000002760003184", "4000008260003178", "4000000000003063",
)  # fmt: skip

SWIFT_EXAMPLE_IBANS = (
    "AD1200012030200359100100", "AE070331234567890123456", "AL47212110090000000235698741",
    "AT611904300234573201", "AZ21NABZ00000000137010001944", "BA391290079401028494",
    "BE68539007547034", "BG80BNBG96611020345678", "BH67BMAG00001299123456",
    "BR1800360305000010009795493C1", "CH9300762011623852957", "CR05015202001026284066",
    "CY17002001280000001200527600", "CZ6508000000192000145399", "DE89370400440532013000",
    "DK5000400440116243", "DO28BAGR00000001212453611324", "EE382200221020145685",
    "ES9121000418450200051332", "FI2112345600000785", "FR1420041010050500013M02606",
    "GB29NWBK60161331926819", "GE29NB0000000101904917", "GI75NWBK000000007099453",
    "GR1601101250000000012300695", "GT82TRAJ01020000001210029690", "HR1210010051863000160",
    "HU42117730161111101800000000", "IE29AIBK93115212345678", "IL620108000000099999999",
    "IS140159260076545510730339", "IT60X0542811101000000123456", "JO94CBJO0010000000000131000302",
    "KW81CBKU0000000000001234560101", "KZ86125KZT5004100100", "LB62099900000001001901229114",
    "LI21088100002324013AA", "LT121000011101001000", "LU280019400644750000",
    "LV80BANK0000435195001", "MC5811222000010123456789030", "MD24AG000225100013104168",
    "ME25505000012345678951", "MK07250120000058984", "MT84MALT011000012345MTLCAST001S",
    "MU17BOMM0101101030300200000MUR", "NL91ABNA0417164300", "NO9386011117947",
    "PK36SCBL0000001123456702", "PL61109010140000071219812874", "PS92PALS000000000400123456702",
    "PT50000201231234567890154", "QA58DOHB00001234567890ABCDEFG", "RO49AAAA1B31007593840000",
    "RS35260005601001611379", "SA0380000000608010167519", "SE4550000000058398257466",
    "SI56263300012039086", "SK3112000000198742637541", "SM86U0322509800000000270100",
    "TL380080012345678910157", "TN5910006035183598478831", "TR330006100519786457841326",
    "UA213223130000026007233566001", "VG96VPVG0000012345678901", "XK051212012345678906",
)  # fmt: skip

FORMATS = (
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.E164,
)


def samples() -> list[tuple[str, str]]:
    """(text, the one detector that should fire)."""
    out: list[tuple[str, str]] = []
    for card in STRIPE_TEST_CARDS:
        grouped = " ".join(card[i : i + 4] for i in range(0, len(card), 4))
        out += [(f"please charge card {card} today", "card"), (f"card: {grouped}.", "card")]
    for iban in SWIFT_EXAMPLE_IBANS:
        grouped = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
        out += [(f"send it to {iban} please", "iban"), (f"IBAN: {grouped}.", "iban")]
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        number = phonenumbers.example_number(region)
        if number is None:
            continue
        for form in FORMATS:
            written = phonenumbers.format_number(number, form)
            out.append((f"You can reach the office on {written} during the week.", "phone"))
    return out
