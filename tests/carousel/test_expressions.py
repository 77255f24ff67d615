"""The RSE expressions the simulator understands."""

from __future__ import annotations

import pytest

from carousel.tape.expressions import rse_matches


@pytest.mark.parametrize(
    ("expression", "rse", "matches"),
    [
        (None, "A_TAPE", True),
        ("A_TAPE", "A_TAPE", True),
        ("A_TAPE", "B_TAPE", False),
        ("A_TAPE|B_TAPE", "B_TAPE", True),
        ("*", "C_TAPE", True),
        ("*\\A_TAPE", "A_TAPE", False),
        ("*\\A_TAPE", "B_TAPE", True),
        ("(A_TAPE|B_TAPE)\\(B_TAPE)", "B_TAPE", False),
    ],
)
def test_it_matches_names_unions_and_complements(expression, rse, matches):
    assert rse_matches(expression, rse) is matches
