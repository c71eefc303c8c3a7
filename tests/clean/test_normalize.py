"""Normalization steps and PII masking, each on a hand-made text, each switch on and off."""
from __future__ import annotations

import dataclasses

from pipeline.clean.normalize import NormalizeOptions, normalize

ON = NormalizeOptions()


def norm(text: str, **switches) -> tuple[str, int, int]:
    return normalize(text, dataclasses.replace(ON, **switches))


def test_line_endings_unified():
    assert norm("a\r\nb\rc\u2028d\u2029e")[0] == "a\nb\nc\nd\ne"
    assert norm("a\r\nb", unify_newlines=False, remove_control_chars=False)[0] == "a\r\nb"


def test_control_characters_removed_but_tab_and_newline_kept():
    text = "a\x00b\x07c\td\ne\x1bf\x7fg\x85h\x9fi"
    assert norm(text)[0] == "abc\td\nefghi"
    assert norm(text, remove_control_chars=False)[0] == text


def test_nfc():
    decomposed = "Cafe\u0301 \u212b"  # e + combining acute; the Angstrom sign
    assert norm(decomposed)[0] == "Caf\u00e9 \u00c5"
    assert norm(decomposed, nfc=False)[0] == decomposed


def test_trailing_whitespace_and_blank_runs():
    text = "\n\n  first  \t\nsecond\u00a0\n\n\n\n\nthird   \n\n\n"
    assert norm(text)[0] == "  first\nsecond\n\nthird"
    assert norm(text, strip_trailing_whitespace=False, collapse_blank_lines=False)[0] == text
    # Whitespace-only lines become empty, so they collapse with their neighbours.
    assert norm("a\n \n\t\n  \nb")[0] == "a\n\nb"


def test_clean_ascii_text_is_unchanged():
    text = "Line one.\n\n\tIndented line two."
    assert norm(text) == (text, 0, 0)


def test_emails_masked_and_counted():
    text, emails, ips = norm("Write to jane.doe+lists@mail.example.org or bob@uni.edu.")
    assert (text, emails, ips) == ("Write to <EMAIL> or <EMAIL>.", 2, 0)
    assert norm("Write to bob@uni.edu", mask_emails=False)[0] == "Write to bob@uni.edu"
    # Decorators, WikiText's @-@ and user@host are no addresses.
    for text in ("@property\ndef x(self):", "a @-@ b @,@ c", "ssh user@host"):
        assert norm(text) == (text, 0, 0)
    assert norm("mail a@b.io", email_placeholder="[email]")[0] == "mail [email]"


def test_public_ips_masked_private_and_documentation_ones_kept():
    text = "dns 8.8.8.8 and 1.1.1.1, lan 192.168.0.1, doc 192.0.2.7, v6 2606:4700:4700::1111 or 2001:db8::1"
    out, emails, ips = norm(text)
    assert out == "dns <IP> and <IP>, lan 192.168.0.1, doc 192.0.2.7, v6 <IP> or 2001:db8::1"
    assert (emails, ips) == (0, 3)
    all_out, _, all_ips = norm(text, mask_public_ips_only=False)
    assert all_ips == 6 and "192.168.0.1" not in all_out
    assert norm(text, mask_ips=False) == (text, 0, 0)


def test_ip_look_alikes_are_left_alone():
    for text in ("version 1.2.3.4.5 and 3.14.15", "x[1::2] and a[::3]", "at 12:30:45 sharp", "999.1.1.1",
                 "id10.1.1.1", "full 2607:f8b0:4005:80a:0:0:0:200e"[:14]):
        assert norm(text) == (text, 0, 0), text
    assert norm("host 8.8.8.8.")[0] == "host <IP>."  # a sentence's full stop is no octet
    assert norm("full 2607:f8b0:4005:80a:0:0:0:200e end")[0] == "full <IP> end"
