"""The activation / reset letter: plain text and printable HTML (escaped), expiry date in Luxembourg time."""

from __future__ import annotations

from esante.security.accounts.letters import ActivationLetter, LetterPurpose, render_html, render_text

LETTER = ActivationLetter(
    account_id="a-1",
    name="Zoé <b>Muller</b> & Co",
    username="zoe.muller",
    code="K7QM-3XWD-R9TB-HF2N",
    expires_at=1_800_000_000,  # 2027-01-15 08:00 UTC
    password_min_length=14,
)


def test_text_letter() -> None:
    text = render_text(LETTER)
    assert text.startswith("Activate your eSanté account\n")
    assert "Dear Zoé <b>Muller</b> & Co," in text
    assert "Username:     zoe.muller" in text and "Code:         K7QM-3XWD-R9TB-HF2N" in text
    assert "Valid until:  2027-01-15 (included)" in text
    assert "1. Open the eSanté portal" in text and "at least 14 characters" in text


def test_html_letter_is_printable_and_escaped() -> None:
    html = render_html(LETTER)
    assert html.startswith("<!DOCTYPE html>") and "@page" in html
    assert "Zoé &lt;b&gt;Muller&lt;/b&gt; &amp; Co" in html and "<b>Muller" not in html
    assert '<td class="code">K7QM-3XWD-R9TB-HF2N</td>' in html and "2027-01-15" in html
    assert html.count("<li>") == len(LETTER.instructions)


def test_reset_letter_says_what_it_is_for() -> None:
    reset = ActivationLetter("a-1", "Zoé", "zoe", "AAAA-BBBB-CCCC-DDDD", 1_800_000_000, LetterPurpose.RESET)
    assert render_text(reset).startswith("Your eSanté password reset code")
    assert "Forgot password" in render_html(reset) and "did not ask" in render_text(reset)


def test_expiry_date_late_evening_utc_is_the_next_day_in_luxembourg() -> None:
    late = ActivationLetter("a-1", "x", "x", "AAAA-BBBB-CCCC-DDDD", 1_799_967_600)  # 2027-01-14 23:00 UTC
    assert late.expiry_date == "2027-01-15"
