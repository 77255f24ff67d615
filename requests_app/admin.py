"""Django admin for every model: filters, search, read-only statuses, abort/retry/re-queue actions.

Statuses are read-only here on purpose: a status moves only through the services (the transition
table and the event log), which the admin actions call.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from requests_app.auth.tokens import token_revoke
from requests_app.errors import ApplicationError
from requests_app.models import (
    AgentLease,
    ApiToken,
    Collection,
    Content,
    Event,
    Message,
    Processing,
    Request,
    Transform,
    X509Identity,
)
from requests_app.models.statuses import STATUS_COLOURS
from requests_app.services import requests as request_services
from requests_app.services.conductor import messages_requeue
from requests_app.services.identities import x509_identity_map


def status_badge(obj) -> str:
    label = obj.get_status_display()
    return format_html(
        '<span style="background:{};color:#fff;padding:1px 6px;border-radius:3px">{}</span>',
        STATUS_COLOURS.get(label, "#6c757d"),
        label,
    )


status_badge.short_description = "status"


def _run_request_action(modeladmin, http_request, queryset, service, verb: str) -> None:
    done, refused = 0, []
    for obj in queryset:
        try:
            service(request=obj, actor=http_request.user.get_username())
            done += 1
        except ApplicationError as exc:
            refused.append(f"{obj.pk}: {exc.message}")
    if done:
        modeladmin.message_user(http_request, f"{verb}: {done} request(s)", messages.SUCCESS)
    if refused:
        modeladmin.message_user(http_request, "refused: " + "; ".join(refused), messages.WARNING)


@admin.action(description="Abort selected requests")
def abort_requests(modeladmin, http_request, queryset) -> None:
    _run_request_action(modeladmin, http_request, queryset, request_services.request_abort, "abort requested")


@admin.action(description="Retry selected requests")
def retry_requests(modeladmin, http_request, queryset) -> None:
    _run_request_action(modeladmin, http_request, queryset, request_services.request_retry, "retry started")


@admin.action(description="Suspend selected requests")
def suspend_requests(modeladmin, http_request, queryset) -> None:
    _run_request_action(modeladmin, http_request, queryset, request_services.request_suspend, "suspended")


@admin.action(description="Resume selected requests")
def resume_requests(modeladmin, http_request, queryset) -> None:
    _run_request_action(modeladmin, http_request, queryset, request_services.request_resume, "resumed")


class ReadOnlyStatusAdmin(admin.ModelAdmin):
    """Common shape: newest first, statuses read-only, no bulk deletion of live work."""

    list_per_page = 100
    show_full_result_count = False  # COUNT(*) over millions of contents would make pages slow
    readonly_fields = ("status", "created_at", "updated_at")


class TransformInline(admin.TabularInline):
    model = Transform
    fields = ("id", "transform_type", "status", "workload_id", "retries", "updated_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False


@admin.register(Request)
class RequestAdmin(ReadOnlyStatusAdmin):
    list_display = ("id", "request_type", "scope", "name", "requester", "workload_id", status_badge, "updated_at")
    list_filter = ("status", "request_type", "created_at")
    search_fields = ("=id", "name", "scope", "requester", "=workload_id")
    readonly_fields = ("status", "errors", "created_at", "updated_at", "owner")
    list_select_related = ("owner",)
    actions = [abort_requests, retry_requests, suspend_requests, resume_requests]
    inlines = [TransformInline]


@admin.register(Transform)
class TransformAdmin(ReadOnlyStatusAdmin):
    list_display = ("id", "request_id", "transform_type", "workload_id", status_badge, "retries", "updated_at")
    list_filter = ("status", "transform_type")
    search_fields = ("=id", "=request__id", "=workload_id", "dedup_key")
    readonly_fields = ("status", "errors", "retries", "created_at", "updated_at", "finished_at")
    raw_id_fields = ("request", "joined_requests")


@admin.register(Processing)
class ProcessingAdmin(ReadOnlyStatusAdmin):
    list_display = (
        "id",
        "transform_id",
        "request_id",
        status_badge,
        "external_id",
        "claimed_by",
        "next_poll_at",
        "retries",
    )
    list_filter = ("status",)
    search_fields = ("=id", "=transform__id", "=request__id", "external_id")
    readonly_fields = (
        "status",
        "claimed_by",
        "claimed_until",
        "retries",
        "errors",
        "poll_count",
        "submitted_at",
        "finished_at",
        "created_at",
        "updated_at",
    )
    raw_id_fields = ("transform", "request")


@admin.register(Collection)
class CollectionAdmin(ReadOnlyStatusAdmin):
    list_display = (
        "id",
        "scope",
        "name",
        "relation_type",
        status_badge,
        "total_files",
        "processed_files",
        "failed_files",
        "bytes",
    )
    list_filter = ("status", "relation_type")
    search_fields = ("name", "scope", "=transform__id", "=request__id")
    readonly_fields = (
        "status",
        "total_files",
        "processed_files",
        "failed_files",
        "bytes",
        "processed_bytes",
        "created_at",
        "updated_at",
    )
    raw_id_fields = ("transform", "request")


@admin.register(Content)
class ContentAdmin(ReadOnlyStatusAdmin):
    list_display = ("id", "scope", "name", "collection_id", status_badge, "bytes", "status_changed_at")
    list_filter = ("status",)
    # Exact matches only: a LIKE '%...%' scan over 10^6 contents would time the page out.
    search_fields = ("=name", "=collection__id")
    readonly_fields = ("status", "status_changed_at", "created_at", "updated_at")
    raw_id_fields = ("collection",)


@admin.action(description="Re-queue selected failed messages")
def requeue_messages(modeladmin, http_request, queryset) -> None:
    count = messages_requeue(queryset=queryset)
    modeladmin.message_user(http_request, f"re-queued {count} failed message(s)", messages.SUCCESS)


@admin.register(Message)
class MessageAdmin(ReadOnlyStatusAdmin):
    list_display = (
        "id",
        "msg_type",
        status_badge,
        "request_id",
        "workload_id",
        "num_contents",
        "attempts",
        "created_at",
    )
    list_filter = ("status", "msg_type")
    search_fields = ("=id", "msg_id", "=request__id", "=workload_id")
    readonly_fields = (
        "status",
        "msg_id",
        "attempts",
        "next_attempt_at",
        "last_error",
        "delivered_to",
        "delivered_at",
        "created_at",
        "updated_at",
    )
    raw_id_fields = ("request", "transform", "processing", "collection")
    actions = [requeue_messages]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("id", "entity", "entity_id", "request_id", "old_status", "new_status", "actor", "created_at")
    list_filter = ("entity",)
    search_fields = ("=entity_id", "=request__id", "reason")
    readonly_fields = [f.name for f in Event._meta.fields]
    show_full_result_count = False


@admin.register(AgentLease)
class AgentLeaseAdmin(admin.ModelAdmin):
    list_display = ("name", "holder", "expires_at")
    readonly_fields = ("name", "holder", "expires_at")


@admin.action(description="Revoke selected tokens")
def revoke_tokens(modeladmin, request, queryset) -> None:
    for token in queryset.filter(revoked_at__isnull=True):
        token_revoke(token=token)
    modeladmin.message_user(request, "revoked", messages.SUCCESS)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens by their display prefix; the hash is never shown. Issue with ``issue_token`` or the study's
    worker-tokens endpoint (the key is shown there once), revoke here."""

    list_display = ("id", "prefix", "name", "user", "study", "token_state", "created_at", "expires_at", "last_used_at")
    list_filter = ("revoked_at", "expires_at")
    list_select_related = ("user",)
    search_fields = ("prefix", "name", "user__username")
    fields = ("prefix", "name", "user", "study", "created_at", "expires_at", "revoked_at", "last_used_at")
    readonly_fields = fields
    actions = [revoke_tokens]

    @admin.display(description="state")
    def token_state(self, obj: ApiToken) -> str:
        return obj.state()

    def has_add_permission(self, request) -> bool:
        # A key must be shown to its holder once; the admin has no place for that.
        return False


@admin.register(X509Identity)
class X509IdentityAdmin(admin.ModelAdmin):
    """Which user a certificate DN acts as on /idds/ (x509_proxy); saved normalised through the service."""

    list_display = ("dn", "user", "created_at")
    list_select_related = ("user",)
    search_fields = ("dn", "user__username")
    autocomplete_fields = ("user",)

    def get_readonly_fields(self, request, obj=None) -> tuple[str, ...]:
        # A mapping's DN is its identity: to change it, add the new DN and delete the old mapping.
        return ("dn",) if obj is not None else ()

    def save_model(self, request, obj: X509Identity, form, change: bool) -> None:
        saved = x509_identity_map(dn=obj.dn, user=obj.user)
        obj.pk, obj.dn = saved.pk, saved.dn
