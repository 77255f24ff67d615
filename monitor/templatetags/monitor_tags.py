"""Template helpers of the monitor: status badges, progress bars, byte sizes."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from requests_app.models.statuses import STATUS_COLOURS

register = template.Library()

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


@register.simple_tag
def badge(label: str | None):
    """A coloured status badge (the label is escaped by format_html)."""
    if not label:
        return ""
    return format_html(
        '<span class="badge" style="background:{}">{}</span>', STATUS_COLOURS.get(label, "#6c757d"), label
    )


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
