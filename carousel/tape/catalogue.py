"""Synthetic catalogues: datasets, their files, and where each copy sits on tape.

``reference_campaign()`` reproduces the campaign of docs/idds-reference.md §5 exactly (63 datasets,
426,331 files, 932,290,670,456,064 bytes, ten named ``data15_13tev`` datasets); the rest is drawn
from a seeded ``random.Random`` so the same seed always gives the same catalogue. ``lay_out``
places files on cartridges the way tape is written in production: datasets arrive in chunks that
interleave with other datasets, so a dataset spans a few cartridges that it shares with others.
``catalogue_create`` writes the result to the database.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction

from carousel.models import SimDataset, SimFile, Tape, TapeDrive, TapeLibrary
from requests_app.services.bulk import insert_rows

REFERENCE_FILES = 426_331
REFERENCE_BYTES = 932_290_670_456_064
REFERENCE_DATASETS = 63
# (run, files) of the ten data15_13tev datasets named in the campaign record.
REFERENCE_NAMED = (
    ("00276262", 5573),
    ("00276954", 192),
    ("00279259", 1524),
    ("00279984", 12200),
    ("00280464", 8990),
    ("00283780", 16679),
    ("00284427", 4132),
    ("00276790", 408),
    ("00280614", 3769),
    ("00282992", 13100),
)
DEFAULT_SEED = 20200


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset to create: its DID, number of files and total bytes."""

    scope: str
    name: str
    files: int
    bytes: int


@dataclass(frozen=True)
class TapeConfig:
    """The simulated hardware. Defaults calibrated on the reference campaign (see the issue note):

    8 drives at 350 MB/s (four libraries of two) give about 2.7 GB/s after mounts and positioning,
    so 99 % of the reference campaign is on disk after about four simulated days.
    """

    libraries: int = 4
    drives_per_library: int = 2
    mount_seconds: float = 90.0
    max_seek_seconds: float = 120.0
    throughput_bps: float = 350e6
    stuck_fraction: float = 0.003
    tape_capacity: int = 12_000_000_000_000  # LTO-8
    # Files a dataset writes to tape in one go, before another dataset's files follow.
    chunk_files: tuple[int, int] = (200, 1500)

    def library_names(self) -> list[str]:
        return [f"SIM-{index + 1}_TAPE" for index in range(self.libraries)]


@dataclass
class LaidOutFile:
    dataset: int
    name: str
    bytes: int
    tape: int = -1
    position: int = 0
    copy_tape: int = -1
    copy_position: int = 0
    stuck: bool = False


@dataclass
class Layout:
    """A catalogue before it is written: tapes as (library index, label) and every file."""

    dataset_library: list[int]
    dataset_copy_library: list[int]
    tapes: list[tuple[int, str]] = field(default_factory=list)
    files: list[LaidOutFile] = field(default_factory=list)


def _split_exact(total: int, weights: Sequence[float]) -> list[int]:
    """Integers proportional to ``weights`` summing exactly to ``total`` (remainder to the first)."""
    weight_sum = sum(weights)
    parts = [int(total * weight / weight_sum) for weight in weights]
    parts[0] += total - sum(parts)
    return parts


def reference_campaign(*, seed: int = DEFAULT_SEED) -> list[DatasetSpec]:
    """The 63 datasets of the reference campaign, totals exact, the 53 unnamed ones drawn from ``seed``."""
    rng = random.Random(seed)
    named_files = sum(files for _, files in REFERENCE_NAMED)
    others = REFERENCE_DATASETS - len(REFERENCE_NAMED)
    # Dataset sizes vary by an order of magnitude in practice: log-normal weights.
    other_files = _split_exact(REFERENCE_FILES - named_files, [rng.lognormvariate(0, 0.8) for _ in range(others)])
    runs = sorted(rng.sample(range(297_000, 364_000), others))
    entries = [("data15_13tev", f"data15_13tev.{run}.physics_main.daq.raw", files) for run, files in REFERENCE_NAMED]
    for run, files in zip(runs, other_files, strict=True):
        year = 16 if run < 312_000 else 17 if run < 341_000 else 18
        entries.append((f"data{year}_13tev", f"data{year}_13tev.00{run}.physics_main.daq.raw", max(files, 1)))
    # Mean file size per dataset around the campaign mean (raw files of one run are alike).
    totals = _split_exact(REFERENCE_BYTES, [files * rng.uniform(0.85, 1.15) for _, _, files in entries])
    return [
        DatasetSpec(scope=scope, name=name, files=files, bytes=total)
        for (scope, name, files), total in zip(entries, totals, strict=True)
    ]


def scaled_campaign(datasets: Sequence[DatasetSpec], *, files: int, tag: str) -> list[DatasetSpec]:
    """The same campaign shrunk to about ``files`` files (at least one per dataset), names tagged."""
    total = sum(spec.files for spec in datasets)
    scaled = []
    for spec in datasets:
        count = max(1, round(spec.files * files / total))
        scaled.append(
            DatasetSpec(
                scope=spec.scope, name=f"{spec.name}.{tag}", files=count, bytes=spec.bytes * count // spec.files
            )
        )
    return scaled


def synthetic_campaign(
    *, datasets: int, files: int, mean_file_bytes: int = 2_186_776_637, scope: str = "sim", prefix: str = "sim"
) -> list[DatasetSpec]:
    """``datasets`` datasets sharing ``files`` files evenly, named ``<prefix>.<n>``."""
    counts = _split_exact(files, [1.0] * datasets)
    return [
        DatasetSpec(
            scope=scope, name=f"{prefix}.{index:04d}", files=max(count, 1), bytes=max(count, 1) * mean_file_bytes
        )
        for index, count in enumerate(counts)
    ]


def _file_sizes(spec: DatasetSpec, rng: random.Random) -> list[int]:
    return _split_exact(spec.bytes, [rng.uniform(0.9, 1.1) for _ in range(spec.files)])


def _write_tapes(
    layout: Layout, library: int, members: list[list[LaidOutFile]], config: TapeConfig, rng: random.Random
) -> list[tuple[LaidOutFile, int, int]]:
    """Chunk each dataset's files, shuffle the chunks and fill cartridges; return (file, tape, position)."""
    chunks: list[list[LaidOutFile]] = []
    for files in members:
        index = 0
        while index < len(files):
            size = rng.randint(*config.chunk_files)
            chunks.append(files[index : index + size])
            index += size
    rng.shuffle(chunks)
    placed: list[tuple[LaidOutFile, int, int]] = []
    tape, used = -1, config.tape_capacity
    for chunk in chunks:
        for laid in chunk:
            if used + laid.bytes > config.tape_capacity:
                layout.tapes.append((library, f"S{library + 1}"))
                tape, used = len(layout.tapes) - 1, 0
            placed.append((laid, tape, used))
            used += laid.bytes
    return placed


def lay_out(datasets: Sequence[DatasetSpec], config: TapeConfig, *, seed: int = DEFAULT_SEED) -> Layout:
    """Assign datasets to libraries (balanced by bytes), files to cartridges, and draw stuck files."""
    rng = random.Random(seed + 1)
    load = [0] * config.libraries
    dataset_library = [0] * len(datasets)
    # Largest first onto the least loaded library: every library gets about the same work.
    for index in sorted(range(len(datasets)), key=lambda i: -datasets[i].bytes):
        library = min(range(config.libraries), key=lambda lib: (load[lib], lib))
        dataset_library[index] = library
        load[library] += datasets[index].bytes
    copy_library = [(library + 1) % config.libraries for library in dataset_library]
    layout = Layout(dataset_library=dataset_library, dataset_copy_library=copy_library)
    per_dataset: list[list[LaidOutFile]] = []
    for index, spec in enumerate(datasets):
        files = [
            LaidOutFile(dataset=index, name=f"{spec.name}._{number:06d}.1", bytes=size)
            for number, size in enumerate(_file_sizes(spec, rng), start=1)
        ]
        for laid in files:
            laid.stuck = config.libraries > 1 and rng.random() < config.stuck_fraction
        per_dataset.append(files)
        layout.files.extend(files)
    for library in range(config.libraries):
        primary = [files for i, files in enumerate(per_dataset) if dataset_library[i] == library]
        for laid, tape, position in _write_tapes(layout, library, primary, config, rng):
            laid.tape, laid.position = tape, position
        copies = [files for i, files in enumerate(per_dataset) if copy_library[i] == library]
        for laid, tape, position in _write_tapes(layout, library, copies, config, rng):
            laid.copy_tape, laid.copy_position = tape, position
    return layout


def libraries_ensure(config: TapeConfig) -> list[TapeLibrary]:
    """Create the configured libraries and their drives if missing; existing ones keep their settings."""
    libraries = []
    for name in config.library_names():
        library, created = TapeLibrary.objects.get_or_create(
            name=name,
            defaults={
                "mount_seconds": config.mount_seconds,
                "max_seek_seconds": config.max_seek_seconds,
                "throughput_bps": config.throughput_bps,
                "stuck_fraction": config.stuck_fraction,
            },
        )
        if created:
            TapeDrive.objects.bulk_create(
                [TapeDrive(library=library, number=n) for n in range(config.drives_per_library)]
            )
        libraries.append(library)
    return libraries


@transaction.atomic
def catalogue_create(
    datasets: Sequence[DatasetSpec], *, config: TapeConfig | None = None, campaign: str = "", seed: int = DEFAULT_SEED
) -> list[SimDataset]:
    """Write ``datasets`` to the catalogue; datasets that already exist with the same file count are kept.

    Raises ``ValueError`` when a dataset exists with a different number of files.
    """
    config = config or TapeConfig()
    libraries = libraries_ensure(config)
    existing = {
        (row.scope, row.name): row
        for row in SimDataset.objects.filter(name__in=[spec.name for spec in datasets])
        if (row.scope, row.name) in {(spec.scope, spec.name) for spec in datasets}
    }
    for spec in datasets:
        row = existing.get((spec.scope, spec.name))
        if row is not None and row.total_files != spec.files:
            raise ValueError(f"dataset {spec.scope}:{spec.name} exists with {row.total_files} files, not {spec.files}")
    new_specs = [spec for spec in datasets if (spec.scope, spec.name) not in existing]
    if new_specs:
        _write_layout(new_specs, lay_out(new_specs, config, seed=seed), libraries, campaign, config)
    rows = {(row.scope, row.name): row for row in SimDataset.objects.filter(name__in=[s.name for s in datasets])}
    return [rows[(spec.scope, spec.name)] for spec in datasets]


def _write_layout(
    specs: Sequence[DatasetSpec], layout: Layout, libraries: list[TapeLibrary], campaign: str, config: TapeConfig
) -> None:
    # Labels must be unique across campaigns: number them after the cartridges that exist.
    offset = Tape.objects.count()
    tapes = Tape.objects.bulk_create(
        [
            Tape(library=libraries[library], label=f"{prefix}{offset + n:06d}", capacity_bytes=config.tape_capacity)
            for n, (library, prefix) in enumerate(layout.tapes)
        ]
    )
    rows = SimDataset.objects.bulk_create(
        [
            SimDataset(
                scope=spec.scope,
                name=spec.name,
                library=libraries[layout.dataset_library[i]],
                copy_library=libraries[layout.dataset_copy_library[i]],
                total_files=spec.files,
                total_bytes=spec.bytes,
                campaign=campaign,
            )
            for i, spec in enumerate(specs)
        ]
    )
    columns = (
        "dataset_id",
        "scope",
        "name",
        "bytes",
        "adler32",
        "tape_id",
        "position",
        "copy_tape_id",
        "copy_position",
        "stuck_on_primary",
    )
    insert_rows(
        SimFile,
        columns,
        (
            (
                rows[laid.dataset].pk,
                specs[laid.dataset].scope,
                laid.name,
                laid.bytes,
                f"{zlib.adler32(laid.name.encode()):08x}",
                tapes[laid.tape].pk,
                laid.position,
                tapes[laid.copy_tape].pk,
                laid.copy_position,
                laid.stuck,
            )
            for laid in layout.files
        ),
    )
