"""Masking personal data in post texts before anything stores them (the review queue, logs).

``mask_pii`` replaces e-mail addresses, phone numbers, Swedish personnummer, Italian
codici fiscali, IBANs and policy/claim numbers with placeholders such as ``[email]``.
It must leave ordinary text alone: dates, times, prices, emoji and short numbers stay.

The patterns run in a fixed order, most specific first, so that (for instance) the
digits inside an IBAN are not taken for a phone number.
"""

import re
from collections.abc import Callable

EMAIL = "[email]"
PHONE = "[phone]"
PERSONNUMMER = "[personnummer]"
CODICE_FISCALE = "[codice_fiscale]"
IBAN = "[iban]"
POLICY_NUMBER = "[policy_number]"

# Not inside another token: no letter, digit or joining punctuation right before.
_START = r"(?<![\w+/.,-])"
# Not followed by more of a token, and not a price ("070 123 45 kr" would be odd, but
# "350 000 000 euro" is a price whatever its digits look like).
_END = r"(?![\w/]|[.,-]\d)(?!\s*(?:€|(?:kr|sek|eur|euro|euros)\b))"

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b", re.IGNORECASE)

# Country code, two check digits, then 11 to 30 letters/digits, optionally in groups of
# four (the printed form). Upper case only, so that ordinary words are never taken.
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")

# Surname (3) + name (3) + year (2) + month letter + day (2) + place (4) + check letter.
# Digits can be replaced by the letters LMNPQRSTUV (omocodia); requiring two real digits
# keeps 16-letter words out.
_CF_DIGIT = "[0-9LMNPQRSTUV]"
_CODICE_FISCALE = re.compile(
    rf"\b(?=(?:[A-Z]*\d){{2}})[A-Z]{{6}}{_CF_DIGIT}{{2}}[ABCDEHLMPRST]{_CF_DIGIT}{{2}}"
    rf"[A-Z]{_CF_DIGIT}{{3}}[A-Z]\b",
    re.IGNORECASE,
)

# YYMMDD-XXXX, YYMMDD+XXXX (over 100 years old), YYYYMMDDXXXX, YYYYMMDD-XXXX.
# Day 61-91 is a samordningsnummer (same format, same privacy).
_PERSONNUMMER = re.compile(
    r"(?<![\w+-])(?P<century>19|20)?\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]|[6-8]\d|9[01])"
    r"(?P<sep>[-+]?)\d{4}(?![\w-])"
)

# A keyword that announces a policy, claim or case number, then the number itself.
_NUMBER_KEYWORDS = (
    r"skadenummer|skadenr|skade-nr|ärendenummer|ärendenr|ärende|polisnummer|polisnr|"
    r"försäkringsnummer|avtalsnummer|kundnummer|referensnummer|"
    r"numero\s+(?:di\s+|della\s+|del\s+)?(?:polizza|sinistro|pratica|contratto)|"
    r"polizza|sinistro|pratica|contratto|codice\s+cliente|"
    r"claim(?:\s+number)?|policy(?:\s+number)?|"
    # a bare "n." / "nr" is "numero"/"nummer" on its own: "(n. INF-2024-0913)"
    r"n\.|nr\.?"
)
_KEYED_NUMBER = re.compile(
    rf"(?P<keep>\b(?:{_NUMBER_KEYWORDS})(?!\w)\s*(?:[:#]\s*)?(?:(?:är|è|is)\s+)?"
    r"(?:(?:n\.?|nr\.?|no\.?|num\.?|numero|nummer)\s*[:#]?\s*)?)"
    r"(?P<number>[A-Z]{0,3}-?\d[\d/.-]*\d)(?![\w/])",
    re.IGNORECASE,
)
# A number needs this many digits to count as a policy/claim number ("polizza 2024" is a year).
_MIN_KEYED_DIGITS = 5
# ...and must not be a date or a span of years ("sinistro 03/02/2024", "polizza 2024/2025").
_DATE_LIKE = re.compile(
    r"\d{1,2}[/.-]\d{1,2}(?:[/.-]\d{2,4})?"  # 18/10, 03/02/2024, 3.2.24
    r"|\d{4}[/.-]\d{1,2}[/.-]\d{1,2}"  # 2026-11-20
    r"|(?:19|20)\d{2}[/-](?:19|20)?\d{2}"  # 2024/2025, 2024-25
)

_PHONE = re.compile(
    _START
    + r"(?>"
    # +46 70 123 45 67, 0046 8 123 456 78, +39 333 123 4567, +46 (0)70-123 45 67
    + r"(?:\+|00)(?:46|39)[ -]?(?:\(0\)[ -]?)?\d(?:[ -]?\d){6,10}"
    # with the trunk 0: 070-123 45 67, 08-123 456 78, 02 1234 5678, 06 12345678
    + r"|0\d(?:[ -]?\d){6,9}"
    # Italian mobiles: 333 123 4567, 347-1234567
    + r"|3\d{2}(?:[ -]?\d){6,7}"
    + r")"
    + _END
)

# Claim/case numbers without a keyword: "2023/88412", "2024-123456" (a year and a
# sequence; dates never have a five-digit part), "71-30452" (the insurers' usual
# shape, which no date, time, price or score has) and long digit runs.
_BARE_NUMBER = re.compile(_START + r"(?>(?:19|20)\d{2}[/-]\d{5,}|\d{2,3}[/-]\d{4,5}|\d{7,})" + _END)


def _keep_if(test: Callable[[re.Match[str]], bool], placeholder: str):
    """A substitution that replaces a match by ``placeholder`` only when ``test`` says so."""

    def replace(match: re.Match[str]) -> str:
        return placeholder if test(match) else match.group(0)

    return replace


def _is_personnummer(match: re.Match[str]) -> bool:
    # Ten bare digits starting with 0 or 3 are far more often a Swedish or Italian
    # phone number (0701234567, 3310123456); the phone pattern masks those.
    bare_short = not match["century"] and not match["sep"]
    return not (bare_short and match.group(0)[0] in "03")


def _is_iban(match: re.Match[str]) -> bool:
    # Real IBANs are mostly digits; this keeps "ABCD EFGH..." headings out.
    return sum(char.isdigit() for char in match.group(0)) >= 10


def _mask_keyed_number(match: re.Match[str]) -> str:
    number = match["number"]
    if sum(char.isdigit() for char in number) < _MIN_KEYED_DIGITS or _DATE_LIKE.fullmatch(number):
        return match.group(0)
    return match["keep"] + POLICY_NUMBER


def _is_phone(match: re.Match[str]) -> bool:
    # Eight digits at least (a Swedish landline, "08-123 45 67"); fifteen at most (0039 + 11).
    digits = sum(char.isdigit() for char in match.group(0))
    return 8 <= digits <= 15


_STEPS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (_EMAIL, EMAIL),
    (_IBAN, _keep_if(_is_iban, IBAN)),
    (_CODICE_FISCALE, CODICE_FISCALE),
    (_PERSONNUMMER, _keep_if(_is_personnummer, PERSONNUMMER)),
    (_KEYED_NUMBER, _mask_keyed_number),
    (_PHONE, _keep_if(_is_phone, PHONE)),
    (_BARE_NUMBER, POLICY_NUMBER),
)


def mask_pii(text: str) -> str:
    """Replace personal data in ``text`` with placeholders; everything else is kept as is.

    >>> mask_pii("Ring mig på 070-123 45 67, skadenummer 12345678")
    'Ring mig på [phone], skadenummer [policy_number]'
    """
    for pattern, replacement in _STEPS:
        text = pattern.sub(replacement, text)
    return text
