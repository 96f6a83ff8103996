"""SecretMask: a secret is masked verbatim and in the forms programs commonly print it in."""

import base64
import json
import urllib.parse

import pytest

from opsconductor.activities.steps import MASK, MIN_DERIVED_CHARACTERS, SecretMask

SECRET = 'pa55:w0rd/&"ü+x'


def masked(*secrets: str, text: str) -> str:
    mask = SecretMask()
    for secret in secrets:
        mask.remember(secret)
    return mask.apply(text)


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        base64.b64encode(SECRET.encode()).decode(),
        base64.b64encode(SECRET.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
        urllib.parse.quote(SECRET, safe=""),
        urllib.parse.quote_plus(SECRET),
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        SECRET.encode().hex(),
        SECRET.encode().hex().upper(),
    ],
    ids=[
        "verbatim",
        "base64",
        "base64-unpadded",
        "base64-urlsafe",
        "url",
        "url-plus",
        "json",
        "json-unicode",
        "hex",
        "HEX",
    ],
)
def test_each_derived_form_is_masked(form: str) -> None:
    assert masked(SECRET, text=f"before {form} after") == f"before {MASK} after"


def test_the_basic_header_of_user_and_password_is_masked() -> None:
    # What Revealed.values() hands the mask for an http_basic credential.
    header = "Basic " + base64.b64encode(b"deploy:hunter22").decode()
    assert masked("hunter22", "deploy:hunter22", text=header) == f"Basic {MASK}"


def test_each_line_of_a_multi_line_secret_is_masked_from_four_characters() -> None:
    secret = "first-line\r\nab\nthird line"
    text = "first-line\nthird line\nab and cab"
    assert masked(secret, text=text) == f"{MASK}\n{MASK}\nab and cab"


def test_wrapped_base64_output_of_a_long_secret_is_masked_line_by_line() -> None:
    secret = "x" * 100 + "-long-secret"
    wrapped = base64.encodebytes(secret.encode()).decode()  # 76-character lines, like base64(1)
    assert all(line in (MASK, "") for line in masked(secret, text=wrapped).split("\n"))


def test_short_secrets_are_masked_verbatim_but_not_their_derived_forms() -> None:
    assert MIN_DERIVED_CHARACTERS == 4
    short = "abc"
    # Its base64 ("YWJj") and hex ("616263") are ordinary text in other output.
    text = f"{short} YWJj 616263"
    assert masked(short, text=text) == f"{MASK} YWJj 616263"


def test_a_secret_inside_a_longer_one_is_masked_whole() -> None:
    assert masked("abcd", "abcdefgh", text="abcdefgh abcd") == f"{MASK} {MASK}"
