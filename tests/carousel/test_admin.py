"""The simulator's admin pages render with a catalogue in place."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from carousel.tape.catalogue import DatasetSpec, TapeConfig, catalogue_create

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", ["tapelibrary", "tapedrive", "tape", "simdataset", "simrule", "throttlereservation"])
def test_it_lists_each_model_in_the_admin(client, model):
    # given
    catalogue_create([DatasetSpec("sim", "ds.admin", 3, 3 * 10**9)], config=TapeConfig(libraries=2))
    client.force_login(get_user_model().objects.create_superuser("admin", "admin@example.org", "pw-admin-123"))

    # when
    response = client.get(f"/admin/carousel/{model}/")

    # then
    assert response.status_code == 200
