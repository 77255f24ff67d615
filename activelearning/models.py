"""Active-learning state beside the core tables: the loop, its tasks (trials), its decision steps, uploads.

A request of type 3 has one transform and one output collection; each parameter set the loop hands out is a
``Content`` of that collection (announced New in ``file_activelearning``) and a ``Trial`` here, which keeps
what the core tables have no place for: its iteration, results, metrics, and which decision consumed them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from requests_app.models import Content, Request, Transform


class Loop(models.Model):
    """One active-learning loop (one transform). ``iteration`` is the number of the batch handed out last."""

    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"
        FAILED = "failed"
        CANCELLED = "cancelled"

    TERMINAL = frozenset({Status.FINISHED, Status.FAILED, Status.CANCELLED})

    transform = models.OneToOneField(Transform, on_delete=models.CASCADE, primary_key=True, related_name="al_loop")
    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    iteration = models.IntegerField(default=1)
    # Failed decision steps in a row; a successful step resets it.
    failed_steps = models.IntegerField(default=0)
    stop_reason = models.TextField(blank=True, default="")
    # The last successful decision's output: the collection message's ``output``.
    last_decision = models.JSONField(null=True, blank=True)
    # When the current batch first reached its quorum fraction (the grace time runs from here).
    quorum_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"loop of request {self.request_id} ({self.status}, iteration {self.iteration})"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL


class Step(models.Model):
    """One decision run on the results of batch ``number``: the audit record of what went in and came out."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        # The loop ended (abort, stop rule) before the step could apply its output.
        SKIPPED = "skipped"

    OPEN = frozenset({Status.QUEUED, Status.RUNNING})

    class Outcome(models.TextChoices):
        NEXT = "next"
        BATCH = "batch"
        STOP = "stop"
        ERROR = "error"

    loop = models.ForeignKey(Loop, on_delete=models.CASCADE, related_name="steps")
    number = models.IntegerField()
    # Why it ran: all results in, a quorum after its grace time, a step call (mode b), a fork.
    trigger = models.CharField(max_length=16)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True, default="")
    # The decision's input document when small, else null; its checksum and size always.
    input = models.JSONField(null=True, blank=True)
    input_sha256 = models.CharField(max_length=64, blank=True, default="")
    input_bytes = models.IntegerField(default=0)
    program = models.JSONField(default=dict, blank=True)
    program_sha256 = models.CharField(max_length=64, blank=True, default="")
    output = models.JSONField(null=True, blank=True)
    output_text = models.TextField(blank=True, default="")
    returncode = models.IntegerField(null=True, blank=True)
    stopped = models.CharField(max_length=16, blank=True, default="")
    error = models.TextField(blank=True, default="")
    stdout_tail = models.TextField(blank=True, default="")
    stderr_tail = models.TextField(blank=True, default="")
    runtime = models.CharField(max_length=32, blank=True, default="")
    duration_seconds = models.FloatField(null=True, blank=True)
    # The merge step's own record (program, checksum, output, tails), when the request has one.
    merge = models.JSONField(null=True, blank=True)
    # A step copied into a fork keeps a pointer to the original.
    forked_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["loop", "id"]
        indexes = [models.Index(fields=["loop", "status"], name="al_step_open")]

    def __str__(self) -> str:
        return f"step {self.number} of request {self.loop_id} ({self.status})"


class Trial(models.Model):
    """One parameter set handed to the workload system (one content) and the results it reported."""

    content = models.OneToOneField(Content, on_delete=models.CASCADE, primary_key=True, related_name="al_trial")
    loop = models.ForeignKey(Loop, on_delete=models.CASCADE, related_name="trials")
    name = models.CharField(max_length=255)
    iteration = models.IntegerField()
    parameters = models.JSONField(default=dict)
    # sha256 of the canonical JSON of ``parameters``: memoisation looks trials up by it.
    key = models.CharField(max_length=64, db_index=True)
    reported = models.BooleanField(default=False)
    results = models.JSONField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    # Reported after its batch's decision had started: passed to the following decision.
    late = models.BooleanField(default=False)
    consumed_by = models.ForeignKey(Step, null=True, blank=True, on_delete=models.SET_NULL, related_name="trials")
    memo_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["loop", "iteration", "content"]
        indexes = [models.Index(fields=["loop", "iteration"], name="al_trial_batch")]

    def __str__(self) -> str:
        return f"trial {self.name} of request {self.loop_id} (iteration {self.iteration})"


class Upload(models.Model):
    """A sandbox tarball uploaded for decision programs; ``name`` is what ``sandbox`` in a request names."""

    name = models.CharField(max_length=255, unique=True)
    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, unique=True)
    size = models.BigIntegerField()
    members = models.IntegerField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.size} bytes)"
