"""The JSON body reader: clean bodies read as the standard library reads them, unsafe ones named by path."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from requests_app.api.json_body import MAX_DEPTH, MalformedJSON, UnsafeJSON, load_body

# Strings PostgreSQL can store: no NUL, no surrogates.
safe_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20)
safe_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | safe_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(safe_text, children, max_size=4),
    max_leaves=30,
)


@given(safe_json)
def test_a_clean_body_reads_exactly_as_the_standard_library_reads_it(value):
    raw = json.dumps(value).encode()

    assert load_body(raw) == json.loads(raw)


def test_integers_wider_than_64_bits_stay_exact():
    assert load_body(b'{"n": 123456789012345678901234567890}') == {"n": 123456789012345678901234567890}


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 5000])
def test_nesting_past_the_limit_is_refused_whatever_the_reader(depth):
    with pytest.raises(UnsafeJSON, match=f"nested deeper than {MAX_DEPTH} levels"):
        load_body(b"[" * depth + b"]" * depth)


def test_nesting_at_the_limit_is_read():
    assert load_body(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = '{"a": "' + "[" * 5000 + '\\"", "b": NaN}'

    # The NaN forces the second reader, whose depth count must skip the string.
    with pytest.raises(UnsafeJSON) as caught:
        load_body(text.encode())

    assert caught.value.path == "b"


def test_an_unprintable_key_is_escaped_in_the_path():
    with pytest.raises(UnsafeJSON) as caught:
        load_body(b'{"a\\ud800": 1}')

    assert caught.value.path == "a\\ud800"


def test_malformed_json_says_where():
    with pytest.raises(MalformedJSON, match="line 1 column 7"):
        load_body(b'{"a":1')
