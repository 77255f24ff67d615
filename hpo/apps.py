from __future__ import annotations

from django.apps import AppConfig

from requests_app.demos import DemoStep, demo_step_register


class HpoConfig(AppConfig):
    name = "hpo"

    def ready(self) -> None:
        # The service's own workers run the generators (--no-celery): the demo runs beside them.
        demo_step_register(
            DemoStep(
                name="hpo",
                title="Hyperparameter optimisation of a scikit-learn model",
                command="hpo_demo",
                arguments=("--no-celery",),
                order=20,
            )
        )
