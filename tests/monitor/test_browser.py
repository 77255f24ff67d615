"""The monitor in a real browser: every page, search, sort, paging, drill-down, actions, escaping, live refresh.

Screenshots land in var/screenshots/ (test artifacts).
"""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from activelearning.models import Loop
from requests_app.models import Collection, Content, Request
from requests_app.models.statuses import RequestStatus

from .browser import browser_page, in_thread, log_in, shot
from .data import HOSTILE, al_iteration, al_loop, as_stagein, campaign_request, hpo_study

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = {
    "dashboard": "/",
    "requests": "/requests/",
    "carousel": "/carousel/",
    "hpo": "/hpo/",
    "active_learning": "/active-learning/",
    "statistics": "/statistics/",
    "health": "/health/",
}


@pytest.fixture
def campaign(user):
    requests = [
        campaign_request(owner=user, name=f"set.{number:02d}", files=60, processed=number) for number in range(30)
    ]
    hostile = campaign_request(owner=user, name=HOSTILE, files=5, processed=2)
    al_loop(owner=user, iterations=4, batch=3, name="cut scan")
    # Six of them stage from two tapes, their files landing over the last minutes (the carousel's curves).
    for number, request in enumerate(requests[20:26]):
        as_stagein(request, source="TAPE_A" if number % 2 else "TAPE_B", landed=[3 + number, 5, 8, 4 + number, 6])
    return requests, hostile


def test_hpo_study_page_plots_and_highlights_the_best_point(live_server, user):
    study = hpo_study(owner=user)
    with browser_page() as page:
        alerts = _no_alerts(page)
        page.goto(f"{live_server.url}/hpo/")
        page.click(f"a[href='/hpo/{study.pk}/']")
        expect(page.locator("tr.best td").nth(1)).to_have_text("point-3")
        expect(page.locator("svg.plot")).to_have_count(2)
        expect(page.locator("svg.plot circle.best")).to_have_count(2)
        expect(page.locator("h1 .name")).to_have_text(f"study {HOSTILE}")
        shot(page, "hpo_study")
    assert alerts == []


def test_active_learning_loop_updates_while_running_and_drills_into_an_iteration(live_server, user, settings):
    settings.IDDS_MONITOR_REFRESH_SECONDS = 1
    request = al_loop(owner=user, iterations=2, batch=2, finished=False)
    base = live_server.url

    def next_iteration_then_stop() -> None:
        loop = Loop.objects.get(request=request)
        al_iteration(loop, Collection.objects.get(request=request), 3, batch=2, last=True)
        Loop.objects.filter(pk=loop.pk).update(
            status=Loop.Status.FINISHED,
            iteration=3,
            stop_reason="the decision returned {}",
            last_decision={},
            finished_at=timezone.now(),
        )
        Request.objects.filter(pk=request.pk).update(status=RequestStatus.FINISHED)

    with browser_page() as page:
        alerts = _no_alerts(page)
        page.goto(f"{base}/active-learning/")
        page.click(f"#loop-table a[href='/active-learning/{request.pk}/']")
        expect(page.locator("#iteration-table tbody tr")).to_have_count(2)
        expect(page.locator("body")).to_have_attribute("data-live", "1")
        expect(page.locator("#loop-status")).to_have_attribute("data-status", "Running")
        shot(page, "al_loop_running")
        in_thread(next_iteration_then_stop)
        # The page refreshes itself: the third iteration and the stop reason appear, then refreshing stops.
        expect(page.locator("#iteration-table tbody tr")).to_have_count(3, timeout=20_000)
        expect(page.locator("#loop-status")).to_have_attribute("data-status", "Finished")
        expect(page.locator("#stop-reason")).to_contain_text("the decision returned {}")
        expect(page.locator("body")).to_have_attribute("data-live", "0")
        page.click("#iteration-table tr[data-iteration='3'] a")
        expect(page.locator("#trial-table tbody tr")).to_have_count(2)
        expect(page.locator("table.audit")).to_have_count(1)
        expect(page.locator("table.audit pre")).to_contain_text(f"warning {HOSTILE}")
        shot(page, "al_loop_iteration")
    assert alerts == []


def _no_alerts(page) -> list[str]:
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    return alerts


def test_every_page_opens_and_shows_hostile_names_as_text(live_server, campaign):
    _, hostile = campaign
    base = live_server.url
    with browser_page() as page:
        alerts = _no_alerts(page)
        for name, url in PAGES.items():
            response = page.goto(base + url)
            assert response.status == 200, url
            expect(page.locator("header.top .brand")).to_have_text("iDDS monitor")
            shot(page, f"page_{name}")
            # Nothing runs off the 1,400 px window (every column of every table visible).
            # (<main> scrolls sideways rather than the page, so measure it.)
            scroll, client = page.evaluate("(m => [m.scrollWidth, m.clientWidth])(document.querySelector('main'))")
            assert scroll <= client, (url, scroll, client)
        page.goto(f"{base}/requests/{hostile.pk}/")
        expect(page.locator("h1 .name")).to_have_text(f"mc23:{HOSTILE}")
        shot(page, "escaping_request_detail")
        page.goto(f"{base}/requests/?q=script")
        expect(page.locator("#request-table tbody tr")).to_have_count(1)
        expect(page.locator("#request-table tbody tr td").nth(2)).to_have_text(HOSTILE)
        shot(page, "escaping_request_table")
    assert alerts == []


def test_search_sort_page_and_drill_down_to_a_file(live_server, campaign):
    requests, _ = campaign
    base = live_server.url
    target = requests[7]
    first_file = in_thread(
        lambda: Content.objects.filter(collection__request=target).order_by("id").values_list("id", "name").first()
    )
    with browser_page() as page:
        page.goto(f"{base}/requests/")
        # Show 10 entries: 31 requests make 4 pages.
        page.select_option("select[name=n]", "10")
        page.click("form.filters button[type=submit]")
        expect(page.locator("#request-table tbody tr")).to_have_count(10)
        expect(page.locator("p.muted").first).to_contain_text("page 1 of 4")
        # A first click on a text column sorts ascending, a second descending.
        page.click("a.sort[data-sort=name]")
        expect(page.locator("#request-table tbody tr").first.locator("td").nth(2)).to_have_text(HOSTILE)
        page.click("a.sort[data-sort=name]")
        expect(page.locator("#request-table tbody tr").first.locator("td").nth(2)).to_have_text("set.29")
        assert "sort=name" in page.url
        page.click("a[rel=next]")
        expect(page.locator("p.muted").first).to_contain_text("page 2 of 4")
        expect(page.locator("#request-table tbody tr").first.locator("td").nth(2)).to_have_text("set.19")
        shot(page, "requests_sorted_page2")
        # Search, then drill down: table -> request -> file.
        page.fill("input[name=q]", "set.07")
        page.click("form.filters button[type=submit]")
        expect(page.locator("#request-table tbody tr")).to_have_count(1)
        page.click(f"#request-table a[href='/requests/{target.pk}/']")
        expect(page.locator("h1")).to_contain_text(f"Request {target.pk}")
        expect(page.locator("#file-table tbody tr")).to_have_count(25)
        page.click("#file-list a[rel=next]")
        expect(page.locator("#file-table tbody tr")).to_have_count(25)
        page.fill("input[name=fq]", first_file[1].rsplit(".", 1)[1])
        page.click("#files ~ form button[type=submit]")
        expect(page.locator("#file-table tbody tr")).to_have_count(1)
        shot(page, "request_detail_files")
        page.click(f"#file-table a[href='/files/{first_file[0]}/']")
        expect(page.locator("h1 .name")).to_have_text(f"mc23:{first_file[1]}")
        shot(page, "file_detail")


def test_owner_acts_and_another_user_is_refused(live_server, campaign, other_user):
    requests, _ = campaign
    target = requests[3]
    base = live_server.url
    with browser_page() as page:
        log_in(page, base, "alice", "pw-alice-123")
        page.goto(f"{base}/requests/{target.pk}/")
        page.click("button[data-action=suspend]")
        expect(page.locator("ul.flash")).to_contain_text(f"suspend requested for request {target.pk}")
        expect(page.locator("#request-status")).to_have_attribute("data-status", "Suspended")
        shot(page, "action_owner_suspended")
    with browser_page() as page:
        log_in(page, base, "bob", "pw-bob-123")
        page.goto(f"{base}/requests/{target.pk}/")
        expect(page.locator("button[data-action=abort]")).to_have_count(0)
        token = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "csrftoken")
        refused = page.request.post(
            f"{base}/requests/{target.pk}/abort/",
            form={"csrfmiddlewaretoken": token},
            headers={"Referer": f"{base}/requests/{target.pk}/", "X-CSRFToken": token},
        )
        assert refused.status == 403
        assert "only the owner" in refused.text()
        shot(page, "action_other_user_no_buttons")
    assert in_thread(lambda: Request.objects.get(pk=target.pk).status) == RequestStatus.SUSPENDED


def test_a_running_request_page_updates_by_itself_and_stops_when_done(live_server, campaign, settings):
    settings.IDDS_MONITOR_REFRESH_SECONDS = 1
    requests, _ = campaign
    target = requests[5]
    base = live_server.url
    with browser_page() as page:
        page.goto(f"{base}/requests/{target.pk}/")
        expect(page.locator("body")).to_have_attribute("data-live", "1")
        expect(page.locator("#request-status")).to_have_attribute("data-status", "Transforming")
        in_thread(lambda: Request.objects.filter(pk=target.pk).update(status=RequestStatus.FINISHED))
        expect(page.locator("#request-status")).to_have_attribute("data-status", "Finished", timeout=20_000)
        expect(page.locator("body")).to_have_attribute("data-live", "0")
        expect(page.locator("#live-state")).to_contain_text("not refreshing")
        refreshed = int(page.locator("body").get_attribute("data-refreshed"))
        page.wait_for_timeout(2500)
        # Terminal: no refresh happened since.
        assert int(page.locator("body").get_attribute("data-refreshed")) == refreshed
        assert re.search(r"/requests/\d+/$", page.url)
        shot(page, "live_refresh_finished")
