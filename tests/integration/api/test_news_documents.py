"""``/status/news`` (with our admin routes to publish and withdraw) and ``/documents/*``, through HTTP."""

from __future__ import annotations

import pytest

from tests.live_server import Horde

NEWS = "/api/v2/status/news"


@pytest.mark.both_databases  # JSON lists and the returned row are each engine's own
async def test_admins_publish_and_withdraw_news_newest_first(horde: Horde) -> None:
    assert (await horde.client.get(NEWS)).json() == []
    admin = await horde.register("root")
    await horde.make_admin(admin)
    older = await horde.client.post(
        NEWS,
        json={
            "title": "Welcome",
            "newspiece": "The horde is open.",
            "date_published": "2026-01-02",
            "tags": ["general"],
            "more_info_urls": ["https://example.org/welcome"],
        },
        headers=admin.headers,
    )
    assert older.status_code == 201, older.text
    newer = await horde.client.post(
        NEWS, json={"title": "Maintenance", "newspiece": "Down tonight.", "importance": "Crisis"}, headers=admin.headers
    )
    assert newer.status_code == 201, newer.text
    assert newer.json()["tags"] == [] and len(newer.json()["date_published"]) == len("2026-01-02")

    listed = (await horde.client.get(NEWS)).json()
    assert [piece["title"] for piece in listed] == ["Maintenance", "Welcome"]
    assert listed[1] == {
        "id": older.json()["id"],
        "date_published": "2026-01-02",
        "newspiece": "The horde is open.",
        "importance": "Information",
        "tags": ["general"],
        "title": "Welcome",
        "more_info_urls": ["https://example.org/welcome"],
    }

    removed = await horde.client.delete(f"{NEWS}/{older.json()['id']}", headers=admin.headers)
    assert removed.status_code == 200 and removed.json() == {"message": "OK"}
    assert [piece["title"] for piece in (await horde.client.get(NEWS)).json()] == ["Maintenance"]
    again = await horde.client.delete(f"{NEWS}/{older.json()['id']}", headers=admin.headers)
    assert again.status_code == 404 and again.json()["rc"] == "NewsNotFound"

    audit = (await horde.client.get("/api/v2/audit", headers=admin.headers)).json()
    entries = audit["entries"] if isinstance(audit, dict) else audit
    assert {"news.publish", "news.withdraw"} <= {entry["action"] for entry in entries}


async def test_only_admins_edit_news(horde: Horde) -> None:
    moderator = await horde.register("mod")
    await horde.set_user(moderator, is_moderator=True)
    body = {"title": "Hi", "newspiece": "Hello"}
    refused = await horde.client.post(NEWS, json=body, headers=moderator.headers)
    assert refused.status_code == 403 and refused.json()["rc"] == "NotAdmin"
    anonymous = await horde.client.post(NEWS, json=body)
    assert anonymous.status_code == 401
    admin = await horde.register("root")
    await horde.make_admin(admin)
    piece = (await horde.client.post(NEWS, json=body, headers=admin.headers)).json()
    refused_delete = await horde.client.delete(f"{NEWS}/{piece['id']}", headers=moderator.headers)
    assert refused_delete.status_code == 403 and refused_delete.json()["rc"] == "NotAdmin"
    assert len((await horde.client.get(NEWS)).json()) == 1


async def test_bad_news_is_refused(horde: Horde) -> None:
    admin = await horde.register("root")
    await horde.make_admin(admin)
    for body in (
        {"title": "", "newspiece": "x"},
        {"title": "x"},
        {"title": "x", "newspiece": "y", "date_published": "yesterday"},
        {"title": "x", "newspiece": "y", "tags": ["t"] * 21},
        {"title": "x" * 201, "newspiece": "y"},
    ):
        response = await horde.client.post(NEWS, json=body, headers=admin.headers)
        assert response.status_code == 400 and response.json()["rc"] == "ValidationError", body
    bad_id = await horde.client.delete(f"{NEWS}/abc", headers=admin.headers)
    assert bad_id.status_code == 400 and bad_id.json()["rc"] == "ValidationError"
    assert (await horde.client.get(NEWS)).json() == []


async def test_documents_default_as_html_or_markdown(horde: Horde) -> None:
    for name in ("terms", "privacy", "sponsors"):
        html = await horde.client.get(f"/api/v2/documents/{name}")
        assert html.status_code == 200 and set(html.json()) == {"html"}
        assert html.json()["html"].startswith("<h1>")
        markdown = await horde.client.get(f"/api/v2/documents/{name}", params={"format": "markdown"})
        assert set(markdown.json()) == {"markdown"} and markdown.json()["markdown"].startswith("# ")
    bad = await horde.client.get("/api/v2/documents/terms", params={"format": "pdf"})
    assert bad.status_code == 400 and bad.json()["rc"] == "ValidationError"


async def test_the_operators_document_overrides_the_default_and_is_rendered_safely(horde: Horde) -> None:
    folder = horde.settings.data_dir / "documents"
    folder.mkdir(exist_ok=True)
    (folder / "terms.md").write_text(
        "# Our rules\n\nBe *kind*. <script>alert(1)</script>\n\n- [home](https://example.org)\n"
        "- [trap](javascript:alert(1))\n",
        encoding="utf-8",
    )
    markdown = (await horde.client.get("/api/v2/documents/terms", params={"format": "markdown"})).json()
    assert markdown["markdown"].startswith("# Our rules")
    html = (await horde.client.get("/api/v2/documents/terms")).json()["html"]
    assert "<h1>Our rules</h1>" in html and "<em>kind</em>" in html
    assert '<a href="https://example.org">home</a>' in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    # The other documents keep their defaults.
    privacy = (await horde.client.get("/api/v2/documents/privacy", params={"format": "markdown"})).json()
    assert privacy["markdown"].startswith("# Privacy")
