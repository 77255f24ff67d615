"""Create synthetic datasets in the simulated tape catalogue (and print the simulated staging curve)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from carousel.tape.calibration import simulate_campaign
from carousel.tape.catalogue import (
    DEFAULT_SEED,
    TapeConfig,
    catalogue_create,
    reference_campaign,
    scaled_campaign,
    synthetic_campaign,
)


class Command(BaseCommand):
    help = (
        "Create synthetic tape datasets in the simulator: the reference campaign (--preset reference, "
        "optionally scaled down with --files) or N datasets sharing --files files. --curve prints the "
        "simulated staging curve of those datasets instead of writing them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--preset", choices=["reference"], help="the reference campaign (63 datasets)")
        parser.add_argument("--datasets", type=int, default=10, help="number of datasets (without --preset)")
        parser.add_argument("--files", type=int, help="total files (scales the preset down)")
        parser.add_argument("--prefix", default="sim", help="dataset name prefix (without --preset)")
        parser.add_argument("--scope", default="sim", help="dataset scope (without --preset)")
        parser.add_argument("--tag", default="", help="suffix for dataset names of a scaled preset")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
        parser.add_argument("--drives-per-library", type=int, default=TapeConfig.drives_per_library)
        parser.add_argument("--libraries", type=int, default=TapeConfig.libraries)
        parser.add_argument("--stuck-fraction", type=float, default=TapeConfig.stuck_fraction)
        parser.add_argument("--curve", action="store_true", help="print the simulated staging curve, write nothing")

    def handle(self, *args: Any, **options: Any) -> str:
        config = TapeConfig(
            libraries=options["libraries"],
            drives_per_library=options["drives_per_library"],
            stuck_fraction=options["stuck_fraction"],
        )
        specs = campaign_specs(
            preset=options["preset"],
            files=options["files"],
            datasets=options["datasets"],
            scope=options["scope"],
            prefix=options["prefix"],
            tag=options["tag"],
            seed=options["seed"],
        )
        if options["curve"]:
            return json.dumps(simulate_campaign(specs, config, seed=options["seed"]).summary())
        try:
            rows = catalogue_create(
                specs, config=config, campaign=options["preset"] or options["prefix"], seed=options["seed"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        files = sum(row.total_files for row in rows)
        size = sum(row.total_bytes for row in rows)
        return f"{len(rows)} datasets, {files} files, {size} bytes in the simulated catalogue"


def campaign_specs(
    *, preset: str | None, files: int | None, datasets: int, scope: str, prefix: str, tag: str, seed: int
) -> list:
    """The dataset specs a command line asks for (shared with ``carousel_campaign``)."""
    if preset == "reference":
        specs = reference_campaign(seed=seed)
        if files is not None and files != sum(spec.files for spec in specs):
            specs = scaled_campaign(specs, files=files, tag=tag or f"f{files}")
        return specs
    if files is None:
        raise CommandError("--files is required without --preset")
    if datasets < 1 or files < datasets:
        raise CommandError("--datasets must be >= 1 and --files >= --datasets")
    return synthetic_campaign(datasets=datasets, files=files, scope=scope, prefix=prefix)
