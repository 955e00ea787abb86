"""Rate limits (fixed windows per client IP or per API key) and the free tier's per-IP queue limit.

The rules follow the AI Horde's (reference §4.1): every ``/api/v2`` route is limited per IP (90 a minute)
unless it has rules of its own; ``/status/heartbeat`` and the Stripe webhook are exempt. Each limit is a
setting written like ``"90/minute, 2/second"`` (a window may have a length: ``"5/10s"``); an empty one means
no limit, and ``rate_limits="off"`` turns every limit off. Windows are counted in a ``Counters`` store: Redis when
configured (shared by all server processes), this process's memory otherwise.

Counter keys hold a keyed hash of the API key, never the key itself.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum

from openhorde.config import Settings
from openhorde.domain import ip_timeouts
from openhorde.domain.accounts import ANONYMOUS_API_KEY, ANONYMOUS_USER_ID
from openhorde.errors import RateLimited, TooManyPrompts
from openhorde.storage.counters import Counters, seconds_left
from openhorde.storage.store import Store

API_PREFIX = "/api/v2"
ANONYMOUS_QUEUE_RETRY_SECONDS = 10
"""``Retry-After`` for an anonymous caller whose address has too many images queued."""
_UNITS = {"s": 1, "second": 1, "m": 60, "minute": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}
_SPEC = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d*)\s*([a-z]+?)s?\s*$")


@dataclass(frozen=True)
class Limit:
    """At most ``count`` hits in each window of ``seconds``."""

    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count} per {self.seconds} s"


def parse_limits(spec: str) -> tuple[Limit, ...]:
    """``"90/minute, 2/second"`` → limits; ``""`` → none. Raises ``ValueError`` on anything else."""
    limits = []
    for part in (p for p in spec.split(",") if p.strip()):
        match = _SPEC.match(part.lower())
        if not match or match.group(3) not in _UNITS:
            raise ValueError(f"invalid rate limit {part.strip()!r}; write it like '90/minute' or '5/10s'")
        count, length = int(match.group(1)), int(match.group(2) or 1)
        if length < 1:
            raise ValueError(f"invalid rate limit {part.strip()!r}: the window must be at least 1")
        limits.append(Limit(count, length * _UNITS[match.group(3)]))
    return tuple(limits)


class Scope(StrEnum):
    """Who a rule counts: the caller's IP address, the IP address and the exact path (one request's checks, as
    the AI Horde counts them, so a client following several requests is not slowed by their number), or the
    caller's API key."""

    IP = "ip"
    IP_AND_PATH = "ip+path"
    KEY = "key"


@dataclass(frozen=True)
class Rule:
    """Limits on one route (or group of routes) for one scope; ``anonymous`` replaces ``limits`` for the
    shared anonymous key, which everyone without an account uses."""

    name: str
    scope: Scope
    limits: tuple[Limit, ...]
    anonymous: tuple[Limit, ...] | None = None


@dataclass(frozen=True)
class RoutePolicy:
    """What applies to one route: its rules, and whether timed-out IPs are turned away."""

    rules: tuple[Rule, ...]
    checks_ip_timeout: bool = False


NO_POLICY = RoutePolicy(rules=())
EXEMPT_ROUTES = frozenset(
    {
        ("GET", f"{API_PREFIX}/status/heartbeat"),
        # Stripe retries what we refuse, from a few addresses, and each event is verified by its signature.
        ("POST", f"{API_PREFIX}/stripe/webhook"),
    }
)


def build_policies(settings: Settings) -> tuple[dict[tuple[str, str], RoutePolicy], RoutePolicy]:
    """The per-route policies (keyed by method and path template) and the default one, from the settings."""
    if settings.limits.rate_limits == "off":  # IP timeouts are moderators' decisions: they still apply
        timeouts_only = RoutePolicy(rules=(), checks_ip_timeout=True)
        return {
            ("POST", f"{API_PREFIX}/generate/async"): timeouts_only,
            ("POST", f"{API_PREFIX}/register"): timeouts_only,
        }, NO_POLICY

    def ip(name: str, spec: str) -> Rule:
        return Rule(name, Scope.IP, parse_limits(spec))

    generate = RoutePolicy(
        rules=(
            ip("generate_async", settings.limits.rate_limit_generate_async),
            Rule(
                "generate_async_key",
                Scope.KEY,
                parse_limits(settings.limits.rate_limit_generate_async_key),
                parse_limits(settings.limits.rate_limit_generate_async_anonymous),
            ),
        ),
        checks_ip_timeout=True,
    )
    job_traffic = RoutePolicy(rules=(ip("job_traffic", settings.limits.rate_limit_job_traffic),))
    users = RoutePolicy(rules=(ip("users", settings.limits.rate_limit_users),))
    policies = {
        ("POST", f"{API_PREFIX}/generate/async"): generate,
        ("GET", f"{API_PREFIX}/generate/check/{{id}}"): RoutePolicy(
            rules=(Rule("generate_check", Scope.IP_AND_PATH, parse_limits(settings.limits.rate_limit_generate_check)),)
        ),
        ("GET", f"{API_PREFIX}/generate/status/{{id}}"): RoutePolicy(
            rules=(
                Rule("generate_status", Scope.IP_AND_PATH, parse_limits(settings.limits.rate_limit_generate_status)),
            )
        ),
        ("POST", f"{API_PREFIX}/generate/pop"): job_traffic,
        ("POST", f"{API_PREFIX}/generate/submit"): job_traffic,
        ("POST", f"{API_PREFIX}/interrogate/pop"): job_traffic,
        ("POST", f"{API_PREFIX}/interrogate/submit"): job_traffic,
        # The reference allows 10 a second on an interrogation's status (it has no /check for them).
        ("GET", f"{API_PREFIX}/interrogate/status/{{id}}"): RoutePolicy(
            rules=(
                Rule("interrogate_status", Scope.IP_AND_PATH, parse_limits(settings.limits.rate_limit_generate_check)),
            )
        ),
        ("POST", f"{API_PREFIX}/kudos/transfer"): RoutePolicy(
            rules=(Rule("kudos_transfer", Scope.KEY, parse_limits(settings.limits.rate_limit_kudos_transfer)),)
        ),
        ("POST", f"{API_PREFIX}/register"): RoutePolicy(
            rules=(ip("register", settings.limits.rate_limit_register),), checks_ip_timeout=True
        ),
        ("GET", f"{API_PREFIX}/users/{{user_id}}"): users,
        ("PUT", f"{API_PREFIX}/users/{{user_id}}"): users,
        ("PUT", f"{API_PREFIX}/workers/{{worker_id}}"): RoutePolicy(
            rules=(ip("worker_modify", settings.limits.rate_limit_worker_modify),)
        ),
    }
    return policies, RoutePolicy(rules=(ip("default", settings.limits.rate_limit_default),))


def keyed_hash(secret: str, purpose: str, value: str) -> str:
    """A keyed hash of ``value`` (an API key, an IP address) that can be stored without revealing it."""
    return hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def client_ip_hash(secret: str, ip: str | None) -> str | None:
    """What ``requests.client_ip_hash`` stores for a caller's address."""
    return keyed_hash(secret, "ip", ip) if ip else None


class RateLimiter:
    """Decides whether a call may go ahead; raises ``RateLimited`` (429) or ``TimeoutIP`` (403) if not."""

    def __init__(self, settings: Settings, counters: Counters, secret: str) -> None:
        self.counters = counters
        self._secret = secret
        self._policies, self._default = build_policies(settings)

    def policy_for(self, method: str, path_template: str) -> RoutePolicy:
        """The policy of one route; routes outside the API, and the exempt ones, have none."""
        if (method, path_template) in EXEMPT_ROUTES or not path_template.startswith(API_PREFIX):
            return NO_POLICY
        return self._policies.get((method, path_template), self._default)

    async def check(
        self, method: str, path_template: str, ip: str | None, apikey: str | None, now: float, path: str = ""
    ) -> None:
        """Count this call against its route's limits (``path``: the path called, for rules per IP and path)."""
        policy = self.policy_for(method, path_template)
        if policy.checks_ip_timeout and ip:
            await ip_timeouts.ensure_not_timed_out(self.counters, ip, now)
        wait = 0.0
        broken: Limit | None = None
        for rule in policy.rules:
            who, limits = self._subject(rule, ip, apikey, path or path_template)
            if who is None:
                continue
            for limit in limits:
                window = int(now // limit.seconds)
                key = f"rl:{rule.name}:{who}:{limit.seconds}:{window}"
                if await self.counters.hit(key, limit.seconds + 1, now) > limit.count:
                    left = (window + 1) * limit.seconds - now
                    if left > wait:
                        wait, broken = left, limit
        if broken is not None:
            retry = seconds_left(wait)
            raise RateLimited(f"Rate limit exceeded ({broken} on this route); retry in {retry} s.", retry_after=retry)

    def _subject(
        self, rule: Rule, ip: str | None, apikey: str | None, path: str
    ) -> tuple[str | None, tuple[Limit, ...]]:
        if rule.scope is Scope.IP:
            return (keyed_hash(self._secret, "ip", ip) if ip else None), rule.limits
        if rule.scope is Scope.IP_AND_PATH:
            return (keyed_hash(self._secret, "ip", ip) + ":" + path if ip else None), rule.limits
        key = apikey or ANONYMOUS_API_KEY
        if key == ANONYMOUS_API_KEY and rule.anonymous is not None:
            return "anonymous", rule.anonymous
        return keyed_hash(self._secret, "key", key), rule.limits


async def check_anonymous_ip_queue(store: Store, settings: Settings, ip_hash: str | None, new_images: int) -> None:
    """The free tier: one IP may have at most ``anonymous_ip_concurrency`` anonymous images queued."""
    if ip_hash is None or settings.limits.rate_limits == "off":
        return
    queued = await store.limits.queued_images_for_ip(ip_hash, ANONYMOUS_USER_ID)
    if queued + new_images > settings.limits.anonymous_ip_concurrency:
        error = TooManyPrompts(
            f"Anonymous requests from one address may have at most {settings.limits.anonymous_ip_concurrency} images "
            "queued; wait for some to finish, or register for an API key."
        )
        error.retry_after = ANONYMOUS_QUEUE_RETRY_SECONDS
        raise error
