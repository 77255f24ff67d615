from __future__ import annotations

from django.apps import AppConfig

from requests_app.demos import DemoStep, demo_step_register


class CarouselConfig(AppConfig):
    name = "carousel"

    def ready(self) -> None:
        # 1 % of the reference campaign: 4,263 files in 63 datasets, staged in about a minute at the
        # demo's tape speed-up; stuck files are re-staged after 1,800 simulated seconds.
        demo_step_register(
            DemoStep(
                name="carousel",
                title="Data carousel: staging a synthetic campaign from simulated tape",
                command="carousel_campaign",
                arguments=("--preset", "reference", "--scale", "0.01", "--max-waiting-time", "1800"),
                order=10,
            )
        )
