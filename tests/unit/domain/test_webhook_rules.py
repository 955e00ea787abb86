"""Pure rules of webhooks: the signature recipe, the backoff schedule and which URLs may receive events."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from openhorde.config import Settings
from openhorde.domain import webhooks


def settings(**values: object) -> Settings:
    return Settings(port=7001, public_url="https://horde.example.org", _env_file=None, **values)  # type: ignore[call-arg]


@given(st.text(min_size=1), st.integers(min_value=0, max_value=2**40), st.text())
def test_signature_is_the_documented_hmac(secret: str, timestamp: int, body: str) -> None:
    expected = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    assert webhooks.sign(secret, str(timestamp), body) == f"sha256={expected}"
    assert webhooks.sign(secret, str(timestamp + 1), body) != f"sha256={expected}"


def test_the_default_secret_is_derived_from_the_server_secret_and_the_setting_overrides_it() -> None:
    derived = webhooks.signing_secret(settings(), "server-secret")
    assert derived == webhooks.signing_secret(settings(), "server-secret") != "server-secret"
    assert derived != webhooks.signing_secret(settings(), "other-server-secret")
    assert webhooks.signing_secret(settings(webhook_secret="mine"), "server-secret") == "mine"


@given(
    st.integers(min_value=1, max_value=200),
    st.floats(min_value=0.001, max_value=100),
    st.floats(min_value=0.001, max_value=10_000),
    st.floats(min_value=0, max_value=0.999),
)
def test_backoff_doubles_up_to_the_cap_less_at_most_the_jitter_share(
    failed: int, base: float, cap: float, draw: float
) -> None:
    delay = webhooks.backoff_seconds(failed, base, cap, 0.5, draw)
    ceiling = min(cap, base * 2.0 ** min(failed - 1, 60))
    assert ceiling * 0.5 - 1e-9 <= delay <= ceiling + 1e-9
    assert webhooks.backoff_seconds(failed, base, cap, 0.5, 0.0) <= webhooks.backoff_seconds(
        failed + 1, base, cap, 0.5, 0.0
    )


def test_backoff_schedule_without_jitter() -> None:
    assert [webhooks.backoff_seconds(n, 10, 60, 0.5, 0.0) for n in range(1, 6)] == [10, 20, 40, 60, 60]


def test_urls_that_may_receive_webhooks() -> None:
    plain = settings()
    assert webhooks.url_problem(plain, "https://hooks.example.com/x") is None
    assert webhooks.url_problem(plain, "http://127.0.0.1:8000/x") is None
    assert "http" in (webhooks.url_problem(plain, "ftp://example.com/x") or "")
    assert "itself" in (webhooks.url_problem(plain, "https://horde.example.org/api/v2/generate/async") or "")
    assert "itself" in (webhooks.url_problem(plain, "http://127.0.0.1:7001/x") or "")
    assert "itself" in (webhooks.url_problem(plain, "http://[::1]:7001/x") or "")
    limited = settings(webhook_allowed_hosts="*.example.com, hooks.other.org")
    assert webhooks.url_problem(limited, "https://a.example.com/x") is None
    assert webhooks.url_problem(limited, "https://hooks.other.org/x") is None
    assert "not allowed" in (webhooks.url_problem(limited, "https://example.com.evil.net/x") or "")
    assert "not allowed" in (webhooks.url_problem(limited, "https://other.org/x") or "")
