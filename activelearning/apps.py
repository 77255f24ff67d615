from __future__ import annotations

from django.apps import AppConfig

from requests_app.demos import DemoStep, demo_step_register


class ActivelearningConfig(AppConfig):
    name = "activelearning"
    verbose_name = "Active learning"

    def ready(self) -> None:
        # The service's own workers run the decisions (--no-celery): the demo runs beside them.
        demo_step_register(
            DemoStep(
                name="activelearning",
                title="Active learning: moving a cut until a simulated Monte Carlo meets a target",
                command="al_demo",
                arguments=("--no-celery",),
                order=30,
            )
        )
