"""The default simulated hardware reproduces the reference campaign's staging curve."""

from __future__ import annotations

from carousel.tape.calibration import simulate_campaign
from carousel.tape.catalogue import TapeConfig, reference_campaign


def test_it_stages_99_percent_of_the_reference_campaign_in_about_four_days_with_a_stuck_tail():
    # when
    summary = simulate_campaign(reference_campaign(), TapeConfig()).summary()

    # then: production saw 99 % within 4 days and a few stuck files finishing days later
    assert 3.5 <= summary["days_to_99pct"] <= 4.5
    assert summary["days_to_100pct"] >= summary["days_to_99pct"] + 2
    assert summary["fraction_after_day_1"] > 0.2
