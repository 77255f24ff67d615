"""Template helpers of the monitor: status badges, progress bars, byte sizes."""

from __future__ import annotations

import json
from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html

from requests_app.models.statuses import STATUS_COLOURS

register = template.Library()

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
#: Badges of statuses the core has no colour for (active-learning loops and steps, the health verdict).
_MORE_COLOURS = {
    "Done": "#198754",
    "Queued": "#6c757d",
    "Skipped": "#343a40",
    "Healthy": "#198754",
    "Unhealthy": "#dc3545",
}


@register.simple_tag
def badge(label: str | None):
    """A coloured status badge (the label is escaped by format_html)."""
    if not label:
        return ""
    colour = STATUS_COLOURS.get(label) or _MORE_COLOURS.get(label, "#6c757d")
    return format_html('<span class="badge" style="background:{}">{}</span>', colour, label)


@register.simple_tag
def progress(done: int | None, total: int | None):
    done, total = done or 0, total or 0
    percent = 100.0 * done / total if total else 0.0
    return format_html(
        '<div class="progress" title="{} / {}"><div class="bar" style="width:{}%"></div>'
        "<span>{} / {} ({}%)</span></div>",
        done,
        total,
        f"{percent:.1f}",
        done,
        total,
        f"{percent:.1f}",
    )


@register.filter
def human_bytes(value: int | None) -> str:
    size = float(value or 0)
    for unit in _UNITS:
        if abs(size) < 1000 or unit == _UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} EB"


@register.simple_tag(takes_context=True)
def sort_link(context, column: str, title: str):
    """A column header that sorts by ``column`` (a second click reverses), keeping every other filter."""
    filters = context["filters"]
    descending = not filters.descending if filters.sort == column else column in ("request_id", "created", "updated")
    arrow = ("▼" if filters.descending else "▲") if filters.sort == column else ""
    return format_html(
        '<a class="sort" data-sort="{}" href="?{}">{} {}</a>',
        column,
        filters.query(sort=column, descending=descending, page=1),
        title,
        arrow,
    )


@register.filter
def sig(value: object) -> object:
    """A float to six significant digits (0.027267668336115825 -> 0.0272677); anything else as it is."""
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else value


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


@register.filter
def compact_json(value: object, limit: int = 160) -> str:
    """JSON on one line, floats to six significant digits, cut at ``limit`` characters (escaped by the
    template like any string; the JSON twin keeps the full values)."""
    if value is None:
        return ""
    text = json.dumps(_rounded(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@register.filter
def seconds(value: float | None) -> str:
    """A duration for humans: 0.42 s, 12.3 s, 4 min 05 s, 2 h 03 min."""
    if value is None:
        return ""
    if value < 10:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.simple_tag
def scoped_name(scope: str, name: str):
    """``scope:name``, or a muted "(no name)" for a request made without them (escaped by format_html)."""
    if not scope and not name:
        return format_html('<span class="muted">{}</span>', "(no name)")
    return format_html("{}:{}", scope, name)


@register.filter
def short_date(value: datetime | None) -> str:
    """ "11-30 13:28" this year, "2025-11-30" before (the full time is in the cell's title): keeps the
    request table's two date columns narrow."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    return local.strftime("%m-%d %H:%M" if local.year == timezone.localtime().year else "%Y-%m-%d")
