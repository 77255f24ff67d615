"""run_demo: what `python3 tools/bootstrap.py demo` shows once the service is up.

A scaled-down data-carousel campaign on the simulated tape system, watched live until done, then
(when the HPO app provides it) a short hyperparameter optimisation with several workers, and (when the
active-learning app provides it) a closed loop against a simulated Monte Carlo.
"""

from __future__ import annotations

from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand

from requests_app.auth.service_user import command_owner


class Command(BaseCommand):
    help = "Run the demo: a scaled-down carousel campaign, a short HPO study, an active-learning loop."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--scale", default="0.01", help="fraction of the reference campaign (0.01 = 4,263 files)")
        parser.add_argument("--max-waiting-time", default="1800", help="simulated seconds before re-staging")
        parser.add_argument("--skip-hpo", action="store_true")
        parser.add_argument("--skip-al", action="store_true")
        parser.add_argument(
            "--owner", default="", help="username owning the demo's requests (default: the service user)"
        )
        parser.add_argument("--exit", action="store_true", help="(for bootstrap) stop the service afterwards")

    def handle(self, *args, **options) -> None:
        # Fail before anything starts when --owner names no one; the service user is made on demand.
        owner = command_owner(options["owner"])
        self.stdout.write(self.style.MIGRATE_HEADING("Data carousel: staging a synthetic campaign from simulated tape"))
        call_command(
            "carousel_campaign",
            "--preset",
            "reference",
            "--scale",
            options["scale"],
            "--max-waiting-time",
            options["max_waiting_time"],
            "--owner",
            owner.get_username(),
            stdout=self.stdout,
        )
        if not options["skip_hpo"] and "hpo_demo" in get_commands():
            self.stdout.write(self.style.MIGRATE_HEADING("Hyperparameter optimisation of a scikit-learn model"))
            call_command("hpo_demo", "--no-celery", "--owner", owner.get_username(), stdout=self.stdout)
        if not options["skip_al"] and "al_demo" in get_commands():
            self.stdout.write(
                self.style.MIGRATE_HEADING("Active learning: moving a cut until a Monte Carlo meets a target")
            )
            call_command("al_demo", "--no-celery", "--owner", owner.get_username(), stdout=self.stdout)
        self.stdout.write(
            self.style.SUCCESS("Demo finished. Browse /api/v1/requests/ or /admin/ with the token above.")
        )
