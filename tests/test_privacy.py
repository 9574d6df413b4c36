"""PII masking: each kind of personal data, in Swedish and Italian sentences, and what stays."""

import re

import pytest

from socialcare.core import paths
from socialcare.core.privacy import mask_pii
from socialcare.core.records import load_posts


@pytest.mark.parametrize(
    "text, masked",
    [
        # e-mail
        ("Skriv till anna.svensson+forsakring@example.se tack", "Skriv till [email] tack"),
        ("scrivetemi a m.rossi@libero.it.", "scrivetemi a [email]."),
        # Swedish phone numbers
        ("Ring mig på 070-123 45 67 efter lunch", "Ring mig på [phone] efter lunch"),
        ("Ring mig på 0701234567!", "Ring mig på [phone]!"),
        ("nås på +46 70 123 45 67 eller 08-123 456 78", "nås på [phone] eller [phone]"),
        ("tel: +46701234567", "tel: [phone]"),
        ("+46 (0)70-123 45 67 hela dagen", "[phone] hela dagen"),
        ("0046 8 123 456 78", "[phone]"),
        # Italian phone numbers
        ("chiamatemi al 333 123 4567 grazie", "chiamatemi al [phone] grazie"),
        ("cell. 347-1234567, fisso 02 1234 5678", "cell. [phone], fisso [phone]"),
        ("dall'estero +39 333 1234567 o 0039 06 12345678", "dall'estero [phone] o [phone]"),
        # Swedish personnummer (and samordningsnummer)
        ("Mitt personnummer är 850709-1234.", "Mitt personnummer är [personnummer]."),
        ("pnr 19850709-1234 / 198507091234", "pnr [personnummer] / [personnummer]"),
        ("farfar 121212+1212 är över hundra", "farfar [personnummer] är över hundra"),
        ("samordningsnummer 850769-1234", "samordningsnummer [personnummer]"),
        # Italian codice fiscale, upper or lower case
        ("Il mio codice fiscale è RSSMRA85T10A562S", "Il mio codice fiscale è [codice_fiscale]"),
        ("cf: rssmra85t10a562s.", "cf: [codice_fiscale]."),
        # IBAN, printed or compact, Swedish, Italian and others
        ("IBAN IT60 X054 2811 1010 0000 0123 456 per il rimborso", "IBAN [iban] per il rimborso"),
        ("betala till SE4550000000058398257466", "betala till [iban]"),
        ("konto SE45 5000 0000 0583 9825 7466.", "konto [iban]."),
        ("DE89 3704 0044 0532 0130 00", "[iban]"),
        # policy, claim and case numbers after their name
        ("skadenummer 12345678, vad händer?", "skadenummer [policy_number], vad händer?"),
        ("Skadenummer: 12-66091", "Skadenummer: [policy_number]"),
        ("mitt polisnummer är AB-123456", "mitt polisnummer är [policy_number]"),
        ("Ärende 30-11854. Ingen svarar", "Ärende [policy_number]. Ingen svarar"),
        ("il numero di polizza è 123456789", "il numero di polizza è [policy_number]"),
        ("sinistro n. 2024/123456 aperto", "sinistro n. [policy_number] aperto"),
        ("Polizza n. 88-40215", "Polizza n. [policy_number]"),
        ("la pratica 2023/77310 è ferma", "la pratica [policy_number] è ferma"),
        ("infortuni (n. INF-2024-0913)", "infortuni (n. [policy_number])"),
        # ... and without a name: year/sequence, the insurers' shape, long digit runs
        ("per il 2023/88412 nessuna risposta", "per il [policy_number] nessuna risposta"),
        ("om det spelar nån roll: 71-30452", "om det spelar nån roll: [policy_number]"),
        ("kund 4455667788123", "kund [policy_number]"),
    ],
)
def test_each_kind_is_masked(text, masked):
    assert mask_pii(text) == masked


def test_several_kinds_in_one_post():
    text = (
        "Hej! Skadenummer 38-2207, pappa nås på 070-987 65 43 eller "
        "pappa.berg@example.com, personnummer 440312-1234. Tack 🙏"
    )
    assert mask_pii(text) == (
        "Hej! Skadenummer [policy_number], pappa nås på [phone] eller "
        "[email], personnummer [personnummer]. Tack 🙏"
    )


@pytest.mark.parametrize(
    "text",
    [
        "Möte 2026-11-20 kl 14:30, och sen 08.30 i morgon",
        "sinistro del 18/10, documenti inviati il 03/02/2024 alle 9:15",
        # a date or a span of years after a claim/policy keyword is still a date
        "sinistro 03/02/2024, polizza 2024/2025, pratica 2026-11-20, ärende 12/10",
        "Premien gick upp med 1 250 kr, nu 12 800 kr om året, 350 000 kr i försäkringsbelopp",
        "Pagati € 300 e poi 1.150 euro, 2.000€ di danni, 13.500€ di invalidità",
        "Ringde 5 gånger, väntade 45 minuter, 3 veckor, 10/10 service 🙃😅👏",
        "Postnummer 123 45, gomme 205/55 R16, classe 1, polizza 2024, 2024/2025",
        "Skadenummer: ∞ och ärendet handläggs fortfarande",
        "PRECIPITEVOLISSIMEVOLMENTE ABCDEFGHIJKLMNOP och SEKUNDÄRA VILLKOR",
        "Hej @user, tack för hjälpen med vattenskadan! Grazie mille @SerenaAssicura",
    ],
)
def test_ordinary_text_dates_prices_times_and_emoji_stay(text):
    assert mask_pii(text) == text


def test_masking_is_idempotent():
    text = "pratica 2023/77310, tel +39 333 1234567, m.rossi@libero.it, RSSMRA85T10A562S"
    once = mask_pii(text)
    assert mask_pii(once) == once
    assert not re.search(r"\d{4}", once)


def test_seed_posts_without_digits_or_at_signs_are_unchanged():
    # Only digits and '@' can start personal data, bar a codice fiscale's letters (which
    # need digits too): so a post without them must come back exactly as it was.
    posts = load_posts([paths.seed_split("validation")])
    plain = [p.text for p in posts if not re.search(r"[\d@]", p.text)]
    assert len(plain) > 100
    assert [mask_pii(text) for text in plain] == plain
