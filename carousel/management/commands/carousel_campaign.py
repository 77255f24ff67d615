"""carousel_campaign: create a synthetic campaign in the simulator, submit it, and watch it stage.

    ./manage.py carousel_campaign --preset reference                 # 63 datasets, 426,331 files
    ./manage.py carousel_campaign --preset reference --files 5000    # the same, scaled down
    ./manage.py carousel_campaign --datasets 5 --files 1000 --no-wait

The simulated clock runs ``IDDS_TAPE_TIME_SCALE`` times faster than real time in the service's
processes (set it in their environment: e.g. 5000 turns four simulated days into ~70 s).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from carousel.campaign import CampaignProgress, campaign_progress, campaign_submit
from carousel.management.commands.carousel_catalogue import campaign_specs
from carousel.tape.catalogue import DEFAULT_SEED, TapeConfig, catalogue_create
from carousel.tape.clock import configured_scale
from requests_app.auth.service_user import command_owner


class Command(BaseCommand):
    help = (
        "Create a synthetic campaign in the simulated tape system, submit one stage-in request per "
        "dataset, and show files staged / released / stuck with an ETA until every request ended "
        "(or return at once with --no-wait)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--preset", choices=["reference"], help="the reference campaign (63 datasets)")
        parser.add_argument("--files", type=int, help="total files (scales the preset down)")
        parser.add_argument("--scale", type=float, help="fraction of the preset's files, e.g. 0.01")
        parser.add_argument("--datasets", type=int, default=10, help="number of datasets without --preset")
        parser.add_argument("--campaign", default="", help="campaign label (default: a timestamp)")
        parser.add_argument("--workload-id", type=int, default=1_000_000, help="first workload id")
        parser.add_argument("--dest-rse", default="SIM_DATADISK")
        parser.add_argument("--max-waiting-time", type=float, help="seconds (simulated) before re-staging")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
        parser.add_argument("--no-wait", action="store_true", help="submit and return at once")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between progress updates")
        parser.add_argument("--owner", default="", help="username owning the requests (default: the service user)")

    def handle(self, *args: Any, **options: Any) -> str:
        owner = command_owner(options["owner"])
        files = options["files"]
        if options["scale"] is not None:
            if not 0 < options["scale"] <= 1:
                raise CommandError("--scale must be in (0, 1]")
            if options["preset"] != "reference":
                raise CommandError("--scale scales the reference preset: add --preset reference")
            files = max(63, round(426_331 * options["scale"]))
        label = options["campaign"] or datetime.now(tz=UTC).strftime("c%Y%m%d%H%M%S")
        specs = campaign_specs(
            preset=options["preset"],
            files=files,
            datasets=options["datasets"],
            scope="sim",
            prefix=f"sim.{label}",
            tag="",
            seed=options["seed"],
        )
        try:
            datasets = catalogue_create(specs, config=TapeConfig(), campaign=label, seed=options["seed"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        requests = campaign_submit(
            datasets=datasets,
            campaign=label,
            workload_id=options["workload_id"],
            dest_rse=options["dest_rse"],
            max_waiting_time=options["max_waiting_time"],
            owner=owner,
        )
        total = sum(row.total_files for row in datasets)
        summary = (
            f"campaign {label}: {len(requests)} requests, {total} files "
            f"(requests {requests[0].pk}..{requests[-1].pk}), tape time scale x{configured_scale():g}"
        )
        if options["no_wait"]:
            return summary
        self.stdout.write(summary)
        final = self._watch(label, total, [row.pk for row in datasets], options["interval"])
        return (
            f"campaign {label} done: {final.released} of {final.total_files} files released, "
            f"{final.failed} failed, {final.requests_done} requests ended"
        )

    def _watch(self, label: str, total: int, dataset_ids: list[int], interval: float) -> CampaignProgress:
        """A live progress bar until every request of the campaign ended."""
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("staged {task.fields[staged]}  stuck {task.fields[stuck]}  failed {task.fields[failed]}"),
            TextColumn("requests {task.fields[requests]}  ETA {task.fields[eta]}"),
            TimeElapsedColumn(),
        )
        started = time.monotonic()
        with Progress(*columns, console=None, transient=False) as progress:
            task = progress.add_task("released", total=total, staged=0, stuck=0, failed=0, requests="", eta="-")
            while True:
                state = campaign_progress(campaign=label, total_files=total, dataset_ids=dataset_ids)
                progress.update(
                    task,
                    completed=state.released,
                    staged=state.staged,
                    stuck=state.stuck,
                    failed=state.failed,
                    requests=f"{state.requests_done}/{state.requests} done, {state.throttled} throttled",
                    eta=_eta(state, time.monotonic() - started),
                )
                if state.done:
                    return state
                time.sleep(interval)


def _eta(state: CampaignProgress, elapsed: float) -> str:
    """Linear extrapolation of the release rate so far."""
    done = state.released + state.failed
    if done == 0 or elapsed <= 0:
        return "-"
    seconds = (state.total_files - done) * elapsed / done
    return f"{seconds:.0f}s"
