"""``manage.py hpo_demo``: optimise a real scikit-learn model end to end with several workers.

An SVC (RBF kernel) on scikit-learn's bundled digits data set (no download), tuned over ``C``, ``gamma`` (both
log scale) and ``class_weight`` (categorical); the loss is 1 - 3-fold cross-validated accuracy. The command
submits the study like any client, starts an embedded Celery worker unless ``--no-celery`` (use that when
workers already run), and runs ``--workers`` evaluation threads that check points out, train, and report
through the same services the REST API uses, printing progress and the best loss as it goes.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from celery.contrib.testing.worker import start_worker
from django.core.management.base import BaseCommand
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.svm import SVC

from hpo import services, study_selectors
from idds_site.celery import app
from requests_app.auth.principals import Principal
from requests_app.auth.service_user import command_owner
from requests_app.errors import NotFoundError
from requests_app.models import Request
from requests_app.models.statuses import REQUEST_TERMINAL, RequestType
from requests_app.services.requests import request_create

SPACE = {
    "C": {"type": "float", "low": 1e-2, "high": 1e3, "log": True},
    "gamma": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "class_weight": {"type": "categorical", "choices": ["balanced", None]},
}


def train(point: dict[str, Any]) -> float:
    """1 - mean 3-fold accuracy of an RBF SVC on the digits data."""
    X, y = load_digits(return_X_y=True)
    model = SVC(C=point["C"], gamma=point["gamma"], class_weight=point["class_weight"])
    return 1.0 - float(cross_val_score(model, X / 16.0, y, cv=3).mean())


class Command(BaseCommand):
    """Run the demo study and print its progress."""

    help = "Tune an SVC on scikit-learn's digits data with an HPO study and several workers."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--workers", type=int, default=3)
        parser.add_argument("--max-points", type=int, default=30)
        parser.add_argument("--per-generation", type=int, default=3)
        parser.add_argument("--method", default="bayesian")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--no-celery", action="store_true", help="Celery workers already run elsewhere")
        parser.add_argument("--owner", default="", help="username owning the study (default: the service user)")

    def handle(self, *args, **options) -> str:
        owner = command_owner(options["owner"])
        request = request_create(
            request_type=RequestType.HYPER_PARAMETER_OPT,
            owner=owner,
            requester="hpo_demo",
            metadata={
                "opt_space": SPACE,
                "method": options["method"],
                "max_points": options["max_points"],
                "num_points_per_generation": options["per_generation"],
                "min_unevaluated_points": options["workers"],
                "seed": options["seed"],
            },
        )
        self.stdout.write(f"study {request.pk}: {options['method']} over {list(SPACE)}, {options['max_points']} points")
        if options["no_celery"]:
            return self._run(request.pk, options)
        with start_worker(app, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30):
            return self._run(request.pk, options)

    def _run(self, request_id: int, options: dict[str, Any]) -> str:
        lock = threading.Lock()
        best: list[float] = []
        started = time.monotonic()
        # The demo's workers act as the study's owner, as a worker with the owner's token would.
        principal = Principal(user_id=Request.objects.values_list("owner_id", flat=True).get(pk=request_id))

        def evaluate(worker: str) -> None:
            while True:
                transform = study_selectors.study_for_request(request_id)
                if transform.status in REQUEST_TERMINAL:
                    return
                try:
                    points = services.points_checkout(transform=transform, principal=principal, worker=worker)
                except NotFoundError:
                    points = []
                if not points:
                    time.sleep(0.2)
                    continue
                point = points[0]
                loss = train(point.details["parameters"])
                services.point_report(
                    transform=transform, principal=principal, name=point.name, loss=loss, worker=worker
                )
                with lock:
                    best.append(min([loss, *best[-1:]]))
                    params = ", ".join(
                        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in point.details["parameters"].items()
                    )
                    self.stdout.write(
                        f"[{time.monotonic() - started:6.1f}s] {worker} point {point.name:>3}: loss {loss:.4f} "
                        f"({params}); best {best[-1]:.4f}"
                    )

        def wait_for_study() -> None:
            while True:
                try:
                    study_selectors.study_for_request(request_id)
                    return
                except NotFoundError:
                    time.sleep(0.2)

        wait_for_study()
        threads = [
            threading.Thread(target=evaluate, args=(f"demo-{i}",), daemon=True) for i in range(options["workers"])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        summary = study_selectors.study_summary(transform=study_selectors.study_for_request(request_id))
        best_point = summary["best"]
        return (
            f"study {request_id} {summary['status']}: {summary['points']} points, best loss {best_point['loss']:.4f} "
            f"(accuracy {1 - best_point['loss']:.4f}) at {best_point['parameters']}"
        )
