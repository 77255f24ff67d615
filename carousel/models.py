"""State of the simulated tape system, kept in the database so that a restart loses nothing.

The simulator never runs a timer per file: when a rule is created it schedules every file on the
drives at once (``carousel.tape.scheduler``) and stores each lock's event time in *simulated*
time; a lock is OK (or STUCK) once that time has passed on the simulated clock (``SimClock``).

Catalogue: ``TapeLibrary`` (one tape RSE, with its drives) -> ``Tape`` (cartridges) and
``SimDataset`` -> ``SimFile`` (each file has a primary copy and a second copy on another library).
Staging: ``SimRule`` (Rucio's replication rule) -> ``SimLock`` (one per file of the rule).
"""

from __future__ import annotations

from django.db import models


class SimClock(models.Model):
    """The simulated clock: ``sim = sim_origin + (real - real_origin) * scale``.

    One row. When the configured time scale changes, the clock is re-anchored at the current
    simulated time, so simulated time never jumps backwards across restarts.
    """

    real_origin = models.DateTimeField()
    sim_origin = models.DateTimeField()
    scale = models.FloatField()

    def __str__(self) -> str:
        return f"sim clock x{self.scale} from {self.sim_origin:%Y-%m-%d %H:%M:%S}"


class TapeLibrary(models.Model):
    """A tape RSE: cartridges, drives and the timing of its hardware."""

    name = models.CharField(max_length=255, unique=True)
    mount_seconds = models.FloatField(help_text="unmount the previous cartridge, load and thread the next")
    max_seek_seconds = models.FloatField(help_text="positioning across the whole tape length")
    throughput_bps = models.FloatField(help_text="bytes per second streamed by one drive")
    # Fraction of files whose primary copy on this library cannot be read (they need their second copy).
    stuck_fraction = models.FloatField(default=0.0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TapeDrive(models.Model):
    """One drive: busy until ``free_at`` (simulated), with ``mounted_tape`` at ``head_position``."""

    library = models.ForeignKey(TapeLibrary, on_delete=models.CASCADE, related_name="drives")
    number = models.IntegerField()
    free_at = models.DateTimeField(null=True, blank=True)
    mounted_tape = models.ForeignKey("Tape", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    head_position = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["library", "number"]
        constraints = [models.UniqueConstraint(fields=["library", "number"], name="tapedrive_unique_number")]

    def __str__(self) -> str:
        return f"{self.library.name} drive {self.number}"


class Tape(models.Model):
    """A cartridge; files sit on it at byte positions and are read fastest in position order."""

    library = models.ForeignKey(TapeLibrary, on_delete=models.CASCADE, related_name="tapes")
    label = models.CharField(max_length=32, unique=True)
    capacity_bytes = models.BigIntegerField()

    class Meta:
        ordering = ["label"]

    def __str__(self) -> str:
        return self.label


class SimDataset(models.Model):
    """A dataset in the catalogue; its files' primary copies are on ``library``."""

    scope = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    library = models.ForeignKey(TapeLibrary, on_delete=models.PROTECT, related_name="datasets")
    copy_library = models.ForeignKey(TapeLibrary, on_delete=models.PROTECT, related_name="copy_datasets")
    total_files = models.IntegerField(default=0)
    total_bytes = models.BigIntegerField(default=0)
    campaign = models.CharField(max_length=64, blank=True, default="", db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["scope", "name"], name="simdataset_unique_did")]

    def __str__(self) -> str:
        return f"{self.scope}:{self.name}"


class SimFile(models.Model):
    """A file with its primary copy (``tape``/``position``) and its second copy (``copy_*``)."""

    # Looked up by the (dataset, id) index below.
    dataset = models.ForeignKey(SimDataset, on_delete=models.CASCADE, related_name="files", db_index=False)
    scope = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    bytes = models.BigIntegerField()
    adler32 = models.CharField(max_length=8)
    # Nothing looks files up by cartridge: no index to maintain for 400k rows.
    tape = models.ForeignKey(Tape, on_delete=models.PROTECT, related_name="+", db_index=False)
    position = models.BigIntegerField()
    copy_tape = models.ForeignKey(Tape, on_delete=models.PROTECT, related_name="+", db_index=False)
    copy_position = models.BigIntegerField()
    # Drawn once from the catalogue seed: reading the primary copy fails, the second copy works.
    stuck_on_primary = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["scope", "name"], name="simfile_unique_did")]
        indexes = [models.Index(fields=["dataset", "id"], name="simfile_dataset")]

    def __str__(self) -> str:
        return f"{self.scope}:{self.name}"


class SimRule(models.Model):
    """A replication rule on one DID (a dataset or a file), as Rucio keeps one rule per DID."""

    id = models.CharField(max_length=32, primary_key=True)
    scope = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    rse_expression = models.CharField(max_length=255)
    source_replica_expression = models.CharField(max_length=255, blank=True, default="")
    copies = models.IntegerField(default=1)
    lifetime = models.IntegerField(null=True, blank=True)
    grouping = models.CharField(max_length=16, default="DATASET")
    activity = models.CharField(max_length=64, default="Staging")
    comment = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(help_text="simulated time")
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="simulated time")

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # Adoption of an existing rule by its comment tag (idempotent submit).
            models.Index(fields=["comment"], name="simrule_comment"),
        ]

    def __str__(self) -> str:
        return f"rule {self.id} {self.scope}:{self.name} -> {self.rse_expression}"


class SimLock(models.Model):
    """A file of a rule: REPLICATING until ``event_at`` (simulated), then OK, or STUCK if ``fails``."""

    # The (rule, event_at) index below serves lookups by rule; a second one on rule alone would only
    # slow down creating 400k locks. No database constraint either: locks are only written by
    # rule_create, in the transaction that creates their rule, and the deferred check of each row at
    # commit cost PostgreSQL 4.9 s for the reference campaign (bench/carousel.py).
    rule = models.ForeignKey(
        SimRule, on_delete=models.CASCADE, related_name="locks", db_index=False, db_constraint=False
    )
    # No constraints nor indexes on the catalogue references: the catalogue is never deleted under
    # live rules, nothing looks locks up by file or tape, and each of them doubled the insert cost.
    file = models.ForeignKey(
        SimFile, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False, db_index=False
    )
    source_tape = models.ForeignKey(
        Tape, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False, db_index=False
    )
    event_at = models.DateTimeField()
    fails = models.BooleanField(default=False)

    class Meta:
        ordering = ["event_at", "id"]
        indexes = [
            # list_locks(rule, since=...): the locks of a rule that changed in a time window.
            models.Index(fields=["rule", "event_at"], name="simlock_rule_event"),
        ]

    def __str__(self) -> str:
        return f"lock {self.rule_id}/{self.file_id}"


class ThrottleBucket(models.Model):
    """A source or destination RSE; its row lock serialises admissions to it (``carousel.throttle``)."""

    key = models.CharField(max_length=300, unique=True)

    def __str__(self) -> str:
        return self.key


class ThrottleReservation(models.Model):
    """A stage-in request in the throttle's queue (``admitted`` False) or past it (True).

    The queue is first come, first served per source: a request waits while an older one for the
    same source waits, so a large dataset is not overtaken forever by small ones.
    """

    request_id = models.BigIntegerField(unique=True)
    source = models.CharField(max_length=255)
    destination = models.CharField(max_length=255)
    files = models.IntegerField()
    admitted = models.BooleanField(default=False)
    # What the request last waited on ("queue", "source", "destination"): when room opens at a
    # source or destination, only the requests that can use it are offered again.
    waiting_on = models.CharField(max_length=16, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    admitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["source"], name="throttle_source"),
            models.Index(fields=["destination"], name="throttle_destination"),
        ]

    def __str__(self) -> str:
        return f"request {self.request_id}: {self.files} files {self.source} -> {self.destination}"


class RucioTransferEvent(models.Model):
    """A transfer Rucio announced as done or failed (Hermes' ``transfer-done`` / ``transfer-failed``),
    recorded by ``carousel_rucio_events``: the fast path of staging through Rucio, read by the polls
    instead of listing every lock of every rule (docs/rucio.md)."""

    id = models.BigAutoField(primary_key=True)
    scope = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    # The destination RSE (the event's dst-rse) and the source it was read from (src-rse).
    rse = models.CharField(max_length=255)
    source = models.CharField(max_length=255, blank=True, default="")
    state = models.CharField(max_length=8)  # OK or FAILED
    # When Rucio created the message (its clock) and when it was recorded here.
    created_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        # A poll looks up the events of its pending files by name after its cursor (the id).
        indexes = [
            models.Index(fields=["name"], name="rucioevent_name"),
            models.Index(fields=["received_at"], name="rucioevent_received"),
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.name} {self.state} at {self.rse}"
