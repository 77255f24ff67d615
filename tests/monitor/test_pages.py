"""Every monitor page answers, shows the data, and its JSON twin carries the same figures."""

from __future__ import annotations

import pytest
from django.test import Client

from monitor import selectors
from requests_app.models import Collection, Content, Message
from requests_app.models.statuses import CollectionRelationType, RequestStatus, RequestType

from .data import HOSTILE, campaign_request

PAGES = ["/", "/requests/", "/carousel/", "/hpo/", "/active-learning/", "/statistics/", "/health/"]


@pytest.fixture
def campaign(db, user):
    return [campaign_request(owner=user, name=f"ds.{number}") for number in range(3)]


@pytest.mark.parametrize("url", PAGES)
def test_page_and_json_twin_answer_without_login(client: Client, campaign, url):
    page = client.get(url)
    assert page.status_code == 200
    assert b"iDDS monitor" in page.content
    twin = client.get(url, {"format": "json"})
    assert twin.status_code == 200
    assert twin["Content-Type"] == "application/json"


def test_dashboard_sums_the_collection_counters(client: Client, campaign):
    data = client.get("/", {"format": "json"}).json()
    assert data["summary"]["requests"] == 3
    assert data["summary"]["input_files"] == 90
    assert data["summary"]["input_bytes"] == 90_000
    assert data["summary"]["output_processed_files"] == 30
    assert data["status_counts"] == [{"status": "Transforming", "value": RequestStatus.TRANSFORMING, "count": 3}]


def test_dashboard_filters_by_status_type_scope_requester(client: Client, campaign):
    campaign_request(name="finished.one", status=RequestStatus.FINISHED)
    finished = client.get("/", {"format": "json", "status": "Finished"}).json()
    assert finished["summary"]["requests"] == 1
    # The status links count every status whatever the status filter.
    assert {row["status"] for row in finished["status_counts"]} == {"Transforming", "Finished"}
    assert client.get("/", {"format": "json", "scope": "nope"}).json()["summary"]["requests"] == 0
    assert client.get("/", {"format": "json", "requester": "alice"}).json()["summary"]["requests"] == 4
    assert client.get("/", {"format": "json", "type": "StageIn"}).json()["summary"]["requests"] == 0


def test_request_table_has_the_original_columns(client: Client, campaign):
    data = client.get("/requests/", {"format": "json"}).json()
    assert data["total"] == 3
    row = data["rows"][0]
    assert row["request_id"] == campaign[-1].pk
    assert row["in_total_files"] == 30
    assert row["in_processed_files"] == 10
    assert row["out_total_files"] == 30
    assert row["out_processed_files"] == 10
    assert row["in_status"] == "Open"
    assert row["transform_status"] == "Transforming"


def test_request_table_sorts_searches_and_pages(client: Client, campaign):
    ascending = client.get("/requests/", {"format": "json", "sort": "name", "dir": "asc"}).json()
    assert [row["name"] for row in ascending["rows"]] == ["ds.0", "ds.1", "ds.2"]
    assert [row["name"] for row in client.get("/requests/", {"format": "json", "q": "ds.1"}).json()["rows"]] == ["ds.1"]
    first = client.get("/requests/", {"format": "json", "n": "10", "sort": "name", "dir": "asc"}).json()
    assert first["pages"] == 1
    # A bad page size or sort falls back to the defaults instead of failing.
    assert client.get("/requests/", {"format": "json", "n": "7", "sort": "x"}).json()["filters"]["n"] == 25


def test_request_table_query_count_does_not_grow_with_rows(client: Client, user, django_assert_num_queries):
    for number in range(5):
        campaign_request(owner=user, name=f"q.{number}", files=2, processed=1)
    with django_assert_num_queries(2):
        client.get("/requests/", {"format": "json"})
    for number in range(20):
        campaign_request(owner=user, name=f"r.{number}", files=2, processed=1)
    with django_assert_num_queries(2):
        client.get("/requests/", {"format": "json"})


def test_request_detail_pages_files_by_keyset(client: Client, campaign):
    request = campaign[0]
    data = client.get(f"/requests/{request.pk}/", {"format": "json", "fn": "10"}).json()
    assert [row["count"] for row in data["histogram"]] == [20, 10]
    assert len(data["files"]) == 10
    after = data["files_next_after"]
    second = client.get(f"/requests/{request.pk}/", {"format": "json", "fn": "10", "after": after}).json()
    assert second["files"][0]["content_id"] > after
    back = client.get(
        f"/requests/{request.pk}/", {"format": "json", "fn": "10", "before": second["files"][0]["content_id"]}
    ).json()
    assert [row["content_id"] for row in back["files"]] == [row["content_id"] for row in data["files"]]
    new_only = client.get(f"/requests/{request.pk}/", {"format": "json", "fstatus": "New", "fn": "100"}).json()
    assert len(new_only["files"]) == 20
    assert {row["status"] for row in new_only["files"]} == {"New"}
    named = client.get(f"/requests/{request.pk}/", {"format": "json", "fq": "file00003"}).json()
    assert [row["name"] for row in named["files"]] == ["ds.0.file00003"]


def test_request_detail_query_count_is_fixed(client: Client, campaign, django_assert_num_queries):
    with django_assert_num_queries(8):
        client.get(f"/requests/{campaign[0].pk}/", {"format": "json"})


def test_unknown_ids_are_404(client: Client, db):
    assert client.get("/requests/999999/").status_code == 404
    assert client.get("/requests/abc/", {"format": "json"}).status_code == 404
    assert client.get("/files/99999999999999999999999/").status_code == 404


def test_file_detail_links_back(client: Client, campaign):
    content = Content.objects.filter(collection__request=campaign[0]).first()
    page = client.get(f"/files/{content.pk}/")
    assert page.status_code == 200
    assert content.name.encode() in page.content


@pytest.mark.parametrize("url", ["/", "/requests/", "/requests/{id}/", "/files/{file}/", "/statistics/"])
def test_hostile_names_are_shown_as_text(client: Client, user, url):
    request = campaign_request(owner=user, name=HOSTILE)
    content = Content.objects.filter(collection__request=request).first()
    body = client.get(url.format(id=request.pk, file=content.pk)).content.decode()
    assert "<script>alert(1)</script>" not in body
    if url != "/statistics/":
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_login_required_setting(client: Client, campaign, settings):
    settings.IDDS_MONITOR_REQUIRE_LOGIN = True
    assert client.get("/").status_code == 302
    assert client.get("/", {"format": "json"}).status_code == 401


def test_stagein_figures_come_from_the_collection_holding_the_files(client: Client, user):
    """A stage-in keeps its dataset's files on the output collection; the input one has no counters."""
    request = campaign_request(owner=user, name="tape.set", files=40, processed=15)
    request.request_type = RequestType.STAGE_IN
    request.save(update_fields=["request_type"])
    request.transforms.update(transform_type=RequestType.STAGE_IN, transform_metadata={"source": "TAPE_A"})
    Collection.objects.filter(request=request, relation_type=CollectionRelationType.INPUT).update(
        total_files=0, processed_files=0, bytes=0, processed_bytes=0
    )
    Collection.objects.filter(request=request, relation_type=CollectionRelationType.OUTPUT).update(bytes=40_000)
    summary = client.get("/", {"format": "json"}).json()["summary"]
    assert summary["input_files"] == 40
    assert summary["input_bytes"] == 40_000
    assert summary["output_processed_files"] == 15
    sources = client.get("/carousel/", {"format": "json"}).json()["sources"]
    assert sources == [
        {
            "source": "TAPE_A",
            "datasets_queued": 0,
            "datasets_active": 1,
            "datasets_done": 0,
            "files_queued": 0,
            "files_active": 25,
            "files_done": 15,
            "bytes_done": 0,
            "bytes_total": 40_000,
            "remaining_files": 25,
            "rate_files_per_s": sources[0]["rate_files_per_s"],
            "eta_seconds": sources[0]["eta_seconds"],
        }
    ]
    assert sources[0]["rate_files_per_s"] > 0


def test_a_finished_source_has_no_rate_and_young_curves_start_from_zero(client: Client, user):
    # given: a stage-in whose files all landed a moment ago, then the request finished
    request = campaign_request(owner=user, name="tape.done", files=40, processed=40, status=RequestStatus.FINISHED)
    request.request_type = RequestType.STAGE_IN
    request.save(update_fields=["request_type"])
    request.transforms.update(transform_type=RequestType.STAGE_IN, transform_metadata={"source": "TAPE_B"})
    Message.objects.filter(request=request).update(num_contents=40)

    # when
    data = client.get("/carousel/", {"format": "json"}).json()

    # then: no current rate (not its last files averaged over the window), nothing left
    (source,) = data["sources"]
    assert (source["source"], source["remaining_files"]) == ("TAPE_B", 0)
    assert source["rate_files_per_s"] is None
    assert source["eta_seconds"] is None
    # A campaign seconds old is bucketed per second, and each curve rises from 0.
    assert data["staged_over_time"]["bucket"] == "second"
    curve = data["staged_over_time"]["requests"][str(request.pk)]
    assert [files for _, files in curve] == [0, 40]
    assert data["staged_over_time"]["campaign"][0][1] == 0


def test_a_name_search_reads_bounded_windows_and_continues_further(client: Client, campaign, monkeypatch):
    # given: windows of 12 names over ds.0.file00000 .. ds.0.file00029
    monkeypatch.setattr(selectors, "SEARCH_WINDOW", 12)
    url = f"/requests/{campaign[0].pk}/"

    # when / then: the first window holds two matches and is full, so the search goes on after it
    first = client.get(url, {"format": "json", "fq": "file0001"}).json()
    assert [row["name"] for row in first["files"]] == ["ds.0.file00010", "ds.0.file00011"]
    assert first["files_next_name"] == first["files_searched_to"] == "ds.0.file00011"
    second = client.get(url, {"format": "json", "fq": "file0001", "fafter": first["files_next_name"]}).json()
    assert [row["name"] for row in second["files"]] == [f"ds.0.file000{n}" for n in range(12, 20)]
    third = client.get(url, {"format": "json", "fq": "file0001", "fafter": second["files_next_name"]}).json()
    assert third["files"] == []
    assert third["files_next_name"] is None
    page = client.get(url, {"fq": "file0001"}).content.decode()
    assert "search further" in page


def test_a_name_search_pages_by_name_and_takes_wildcards_literally(client: Client, campaign):
    url = f"/requests/{campaign[0].pk}/"
    page = client.get(url, {"format": "json", "fq": "file000", "fn": "10"}).json()
    assert [row["name"] for row in page["files"]] == [f"ds.0.file0000{n}" for n in range(10)]
    following = client.get(url, {"format": "json", "fq": "file000", "fn": "10", "fafter": page["files_next_name"]})
    assert [row["name"] for row in following.json()["files"]] == [f"ds.0.file000{n}" for n in range(10, 20)]
    assert client.get(url, {"format": "json", "fq": "file%1"}).json()["files"] == []
    assert client.get(url, {"format": "json", "fq": "file_0001"}).json()["files"] == []
    available = client.get(url, {"format": "json", "fq": "file0", "fstatus": "Available"}).json()
    assert len(available["files"]) == 10


def test_the_file_list_merges_statuses_in_id_order(client: Client, campaign):
    """Files of every status, in id order, across pages (one index range per status merged)."""
    request = campaign[1]
    ids = sorted(Content.objects.filter(collection__request=request).values_list("id", flat=True))
    Content.objects.filter(id__in=ids[::3]).update(status=3)
    seen: list[int] = []
    after = 0
    while True:
        data = client.get(f"/requests/{request.pk}/", {"format": "json", "fn": "10", "after": after}).json()
        seen += [row["content_id"] for row in data["files"]]
        if not data["files_next_after"]:
            break
        after = data["files_next_after"]
    assert seen == ids
