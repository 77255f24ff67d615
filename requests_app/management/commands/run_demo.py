"""run_demo: what `python3 tools/bootstrap.py demo` shows once the service is up.

Every demo step registered by an app (``requests_app.demos``) runs in order: the data carousel
stages a scaled-down campaign from simulated tape, then HPO tunes a scikit-learn model.
"""

from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand

from requests_app.auth.service_user import command_owner
from requests_app.demos import demo_steps


class Command(BaseCommand):
    help = "Run the demo: every demo step the installed apps registered (carousel campaign, HPO study)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--skip", action="append", default=[], metavar="NAME", help="leave out a step (repeatable)")
        parser.add_argument(
            "--owner", default="", help="username owning the demo's requests (default: the service user)"
        )
        parser.add_argument("--exit", action="store_true", help="(for bootstrap) stop the service afterwards")

    def handle(self, *args, **options) -> None:
        # Fail before anything starts when --owner names no one; the service user is made on demand.
        owner = command_owner(options["owner"])
        for step in demo_steps():
            if step.name in options["skip"]:
                continue
            self.stdout.write(self.style.MIGRATE_HEADING(step.title))
            call_command(step.command, *step.arguments, "--owner", owner.get_username(), stdout=self.stdout)
        self.stdout.write(
            self.style.SUCCESS(
                "Demo finished. Look at it in the monitor (the URL above): the dashboard, /carousel/, /hpo/, "
                "/active-learning/; or the API at /api/v1/requests/ and /admin/ with the token above."
            )
        )
