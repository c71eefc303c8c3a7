"""Text normalization and PII masking, applied before any attribute is computed.

Each step is a cheap whole-string operation (str methods, one compiled regex) guarded by a fast
test, so a clean ASCII document costs a few microseconds. The steps, in order: line endings to
``\\n``; control characters (Unicode Cc except ``\\t`` and ``\\n``) removed; Unicode NFC; e-mail and IP
addresses masked with fixed placeholders; trailing whitespace of every line stripped; runs of 3+
newlines collapsed to one blank line (and blank lines at both ends of the document removed).
"""
from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

_NEWLINES = re.compile("\r\n?|\u2028|\u2029")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # \r is the newline step's business
_C1 = re.compile(b"\xc2[\x80-\x9f]")  # U+0080..U+009F in UTF-8
_ASCII_CONTROL = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_DIGITS_TO_0 = bytes.maketrans(b"123456789", b"000000000")
_HEX_TO_0 = bytes.maketrans(b"123456789abcdefABCDEF", b"0" * 21)
_BLANK_RUNS = re.compile(r"\n{3,}")
_EMAIL_HINT = re.compile(r"@[A-Za-z0-9-]+\.[A-Za-z0-9-]")  # literal prefix: a fast scan to each "@"
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
# Candidates only: ``ipaddress`` decides whether a candidate really is an address. The IPv4 pattern
# starts with a digit class so that the regex engine can skip ahead; its boundaries are checked in code.
_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")


@dataclass(frozen=True)
class NormalizeOptions:
    """The normalization switches of ``CleanConfig`` (they are part of the attribute cache key)."""
    unify_newlines: bool = True
    remove_control_chars: bool = True
    nfc: bool = True
    mask_emails: bool = True
    mask_ips: bool = True
    mask_public_ips_only: bool = True
    email_placeholder: str = "<EMAIL>"
    ip_placeholder: str = "<IP>"
    strip_trailing_whitespace: bool = True
    collapse_blank_lines: bool = True


def normalize(text: str, opt: NormalizeOptions) -> tuple[str, int, int]:
    """Return (normalized text, e-mails masked, IP addresses masked)."""
    if opt.unify_newlines and ("\r" in text or "\u2028" in text or "\u2029" in text):
        text = _NEWLINES.sub("\n", text)
    if opt.remove_control_chars and _may_have_controls(text):
        text = _CONTROL.sub("", text)
    if opt.nfc and not text.isascii():
        text = unicodedata.normalize("NFC", text)
    emails = ips = 0
    if opt.mask_emails and "@" in text and _EMAIL_HINT.search(text):
        text, emails = _EMAIL.subn(opt.email_placeholder, text)
    if opt.mask_ips:
        text, ips = _mask_ips(text, opt)
    if opt.strip_trailing_whitespace and _may_have_trailing_space(text):
        text = "\n".join([line.rstrip() for line in text.split("\n")])
    if opt.collapse_blank_lines:
        if "\n\n\n" in text:
            text = _BLANK_RUNS.sub("\n\n", text)
        text = text.strip("\n")
    return text, emails, ips


def _may_have_controls(text: str) -> bool:
    """A cheap test with no false negatives: ASCII controls via ``bytes.translate``, C1 via their
    UTF-8 lead byte."""
    raw = text.encode("utf-8", "surrogatepass")
    return len(raw.translate(None, _ASCII_CONTROL)) != len(raw) or (b"\xc2" in raw and bool(_C1.search(raw)))


def _may_have_trailing_space(text: str) -> bool:
    if not text.isascii():
        return True  # Unicode spaces: let str.rstrip decide
    return " \n" in text or "\t\n" in text or text.endswith((" ", "\t"))


def _mask_ips(text: str, opt: NormalizeOptions) -> tuple[str, int]:
    raw = text.encode("utf-8", "surrogatepass")
    v4 = b"0.0" in raw.translate(_DIGITS_TO_0)
    v6 = b"::" in raw or (raw.count(b":") >= 7 and b"0:0" in raw.translate(_HEX_TO_0))
    if not (v4 or v6):
        return text, 0
    count = 0

    def replace(match: re.Match) -> str:
        nonlocal count
        found = match.group(0)
        if ":" in found and found.count(":") < 3:  # "1::2" is a valid address, but in text a slice
            return found
        try:
            addr = ipaddress.ip_address(found)
        except ValueError:  # "999.1.1.1", or an IPv6 look-alike such as a slice "a::b"
            return found
        # Private, loopback and documentation ranges (192.168.0.1, 192.0.2.1, 2001:db8::) are examples
        # in technical text, not personal data.
        if opt.mask_public_ips_only and not addr.is_global:
            return found
        count += 1
        return opt.ip_placeholder

    def replace_v4(match: re.Match) -> str:
        s, e = match.span()
        before, after = text[s - 1:s], text[e:e + 2]
        if (before and (before.isalnum() or before in "._")) or (after[:1].isalnum() or after[:1] == "_")\
                or (after[:1] == "." and after[1:2].isdigit()):
            return match.group(0)  # part of a longer token such as a version "1.2.3.4.5"
        return replace(match)

    if v4:
        text = _IPV4.sub(replace_v4, text)
    if v6:
        text = _IPV6.sub(replace, text)
    return text, count
