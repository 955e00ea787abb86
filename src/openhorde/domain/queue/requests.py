"""Creating, pricing and cancelling image requests (``POST /generate/async``, ``DELETE /status``); the limits a new
request must meet are in ``request_rules.py``."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from openhorde.domain import limits, post_processors, sharedkeys, webhooks
from openhorde.domain.accounts import is_anonymous
from openhorde.domain.billing import tiers
from openhorde.domain.context import HordeContext
from openhorde.domain.kudos.ledger import cents_to_kudos, kudos_to_cents
from openhorde.domain.kudos.pricing import (
    PriceInputs,
    accurate_steps,
    image_charge,
    image_price,
)
from openhorde.domain.moderation import events as moderation_events
from openhorde.domain.moderation import modes as horde_modes
from openhorde.domain.moderation import prompt_filters, role_effects
from openhorde.domain.queue import events, sources
from openhorde.domain.queue import request_rules as rules
from openhorde.domain.queue.availability import DEFAULT_WORKER_SPEED_PPS, live_since
from openhorde.domain.queue.seeds import parse_seed
from openhorde.domain.queue.states import RequestState, request_transition
from openhorde.domain.sharedkeys import SharedKey
from openhorde.domain.styles import apply as styles
from openhorde.errors import (
    KudosUpfront,
    SourceMaskUnnecessary,
    TooManyPrompts,
)
from openhorde.storage.db import Database
from openhorde.storage.repositories.accounts import Account
from openhorde.storage.repositories.availability import Eligibility
from openhorde.storage.repositories.intake import Admission
from openhorde.storage.repositories.statuses import RequestCounters
from openhorde.storage.store import Store

AGEING_PRIORITY_PER_SECOND = 5.0
"""Queue priority a request gains per second of waiting (the reference adds 50 every 10 s)."""
MAX_TARGET_WORKERS = 5
ADMISSION_TRIES = 3
"""How often a new request tries the one statement of ``IntakeRepository.admit`` while another request of the same
requester's (from another server process) keeps making what it saw out of date, before it takes the two steps."""
SEED_VARIATION_DEFAULT = 1


@dataclass
class NewRequest:
    """A client's image request, already checked against the wire schema."""

    prompt: str
    params: dict[str, Any]
    n: int = 1
    models: list[str] = field(default_factory=list)
    nsfw: bool = False
    censor_nsfw: bool = False
    trusted_workers: bool = False
    slow_workers: bool = True
    workers: list[str] = field(default_factory=list)
    worker_blacklist: bool = False
    source_image: str | None = None
    source_processing: str = "img2img"
    source_mask: str | None = None
    r2: bool = True
    shared: bool = False
    dry_run: bool = False
    allow_downgrade: bool = False
    disable_batching: bool = False
    webhook: str | None = None
    gallery: bool = False
    client_agent: str = "unknown:0:unknown"
    client_ip: str | None = None
    replacement_filter: bool = True
    style: str | None = None
    """The style (or collection) the request names; ``styles.apply_style`` replaces its prompt, params, models."""
    style_use: styles.StyleUse | None = None
    """The style applied, once it is: counted and rewarded when the request is queued."""


@dataclass(frozen=True)
class Warning:
    """A non-fatal remark about an accepted request."""

    code: str
    message: str


@dataclass(frozen=True)
class CreatedRequest:
    """What ``POST /generate/async`` answers: the id (``None`` for a dry run) and the kudos cost."""

    id: str | None
    kudos: float
    warnings: list[Warning] = field(default_factory=list)
    message: str | None = None
    resolved: styles.Resolved | None = None
    """A styled dry run: what the request would run with."""


def price_inputs(new: NewRequest, params: dict[str, Any]) -> PriceInputs:
    """The pricing view of a request."""
    return PriceInputs(
        width=params["width"],
        height=params["height"],
        steps=params["steps"],
        sampler_name=params["sampler_name"],
        hires_fix=bool(params.get("hires_fix")),
        controlnet=bool(params.get("control_type")),
        source_image=new.source_image is not None,
        post_processing=tuple(params.get("post_processing") or ()),
        loras=len(params.get("loras") or ()),
        textual_inversions=bool(params.get("tis")),
        slow_workers=new.slow_workers,
        worker_blocklist=new.worker_blacklist and bool(new.workers),
    )


async def outstanding_charges_cents(store: Store, user: Account) -> int:
    """Hundredths of a kudo this user's queued images will still cost: held against upfront payments."""
    return await store.queue.outstanding_cents(user.id)


async def queue_request(
    db: Database, ctx: HordeContext, api_key: str | None, new: NewRequest, now: float | None = None
) -> CreatedRequest:
    """Authenticate, check, price and queue a request; a dry run only prices it.

    What may wait on the network (the webhook's DNS, downloading a source image) and the Pillow work happen
    first, holding no database connection; one unit of work then authenticates the caller and queues the
    request. Images stored for a request that is refused after all are removed again. A style is applied
    first, in a short unit of work of its own, so that the styled request is what is checked and priced.
    """
    if new.style is not None:
        async with db.store() as store:
            await styles.apply_style(store, new)
    rules.check_prompt(new.prompt)
    rules.check_params(new.params)
    rules.check_controlnet(new)
    if new.source_image is None and new.source_mask is not None:
        raise SourceMaskUnnecessary()
    await webhooks.check_url(ctx, new.webhook)
    request_id = str(uuid.uuid4())
    keys = sources.NO_KEYS
    if not new.dry_run:
        prepared = await sources.prepare(ctx, new.source_image, new.source_mask, new.source_processing)
        keys = await sources.save(ctx, prepared, request_id)
    try:
        try:
            async with db.store() as store:
                caller = await sharedkeys.authenticate_caller(store, ctx, api_key)
                caller = await styles.paying_caller(store, caller, new)
                return await create_request(store, ctx, caller.user, new, request_id, keys, now, caller.sharedkey)
        except moderation_events.PromptRefused as refused:
            # The request's unit of work rolled back; the evidence of the refusal is kept in one of its own.
            async with db.store() as store:
                await moderation_events.record_prompt(store, refused.evidence, now)
            raise refused.error from None
    except BaseException:
        await sources.discard(ctx, keys)
        raise


async def create_request(
    store: Store,
    ctx: HordeContext,
    user: Account,
    new: NewRequest,
    request_id: str,
    source_keys: sources.SourceKeys = sources.NO_KEYS,
    now: float | None = None,
    sharedkey: SharedKey | None = None,
) -> CreatedRequest:
    """Check, price and queue a request whose sources are already stored (``queue_request`` did that).

    The requester's user row is locked first (on PostgreSQL), so the limits read from their queue and
    balance (concurrency, upfront kudos, the anonymous per-address queue) still hold when the request is
    inserted: parallel requests are admitted one at a time. On PostgreSQL the common request takes one statement
    that does all of it with the limits bound as numbers (``IntakeRepository.admit``); the others, and SQLite,
    take the standing and the insert as two. ``sharedkey``: the key it came with, if any.
    """
    moment = now or time.time()
    modes = await horde_modes.refuse_if_maintenance(store, ctx, moment)
    role_effects.apply_request_roles(user, new)
    submitted = new.prompt
    screening = await prompt_filters.screen(store, ctx, user, new.prompt, new.replacement_filter)
    models = list(dict.fromkeys(m for m in new.models if m))
    ip_hash = limits.client_ip_hash(ctx.secret, new.client_ip)
    if screening.reason is not None:
        evidence = moderation_events.PromptEvidence(
            user_id=user.id,
            # A refused or dry-run request is never queued, so its id names nothing.
            request_id=None if new.dry_run or screening.refusal is not None else request_id,
            ip_hash=ip_hash,
            models=models,
            reason=screening.reason,
            submitted_prompt=submitted,
            effective_prompt=None if screening.refusal is not None else screening.prompt,
        )
        if screening.refusal is not None:
            raise moderation_events.PromptRefused(evidence, screening.refusal)
        if not new.dry_run:  # written with the request, so only if it is queued
            await moderation_events.record_prompt(store, evidence, moment)
    new.prompt = screening.prompt
    params = dict(new.params)
    await rules.check_models(store, ctx, models)
    if new.dry_run:
        resolved = styles.resolved(new, new.style_use) if new.style_use is not None else None
        return CreatedRequest(
            id=None, kudos=round(image_charge(price_inputs(new, params)) * new.n, 2), resolved=resolved
        )

    total_cents = kudos_to_cents(image_charge(price_inputs(new, params))) * new.n
    since = None if modes.raid else live_since(ctx.settings, moment)  # raids warn of nothing: no count
    targets = list(dict.fromkeys(new.workers))[:MAX_TARGET_WORKERS]
    incoming = _Incoming(request_id, user, new, models, targets, source_keys, sharedkey, ip_hash, moment)
    uncounted = True
    if store.intake.admits_at_once and incoming.admitted_in_one_step:
        admission = Admission(
            images=new.n,
            concurrency=user.concurrency,
            total_cents=total_cents,
            upfront=rules.needs_upfront_kudos(new, params),
            ageing_per_second=AGEING_PRIORITY_PER_SECOND,
        )
        row = incoming.row(params)  # its rank and kudos_backed worked out by the statement from the locked balance
        # One of the requester's new requests at a time per process: a statement that waited for their row behind
        # another's would see a stale standing and have to try again.
        async with ctx.intake_turns.turn(user.id):
            for _ in range(ADMISSION_TRIES):
                admitted = await store.intake.admit(
                    user.id, moment, admission, row, models, since, DEFAULT_WORKER_SPEED_PPS, count=uncounted
                )
                if admitted.queued or not admitted.stale:
                    break  # queued; or refused by a limit, or a case it leaves: the two steps below say which
                uncounted = False  # counted, with a stale standing: another process's request came between
        if admitted.queued:
            return await incoming.queued(store, ctx, row, admitted.eligibility, modes.raid)

    standing = await store.intake.standing(user.id, moment, count=uncounted)  # locks their row until the commit
    balance_cents = 0 if is_anonymous(user) else standing.balance_cents
    # For the anonymous user these totals cover every anonymous caller: they share one limit.
    queued_images, outstanding_cents = standing.queued_images, standing.outstanding_cents
    available_cents = balance_cents - outstanding_cents
    if sharedkey is not None:  # its caps, and its budget must cover the whole request (part C)
        await sharedkeys.check_request(
            store, sharedkey, params["width"], params["height"], params["steps"], total_cents
        )
    warnings: list[Warning] = []
    if rules.needs_upfront_kudos(new, params) and available_cents < total_cents:
        if not new.allow_downgrade:
            raise KudosUpfront(
                f"This request needs {cents_to_kudos(total_cents)} kudos upfront "
                f"(large images, many steps or fast workers only); you have {cents_to_kudos(available_cents)}. "
                "Send allow_downgrade=true to shrink it instead."
            )
        params = rules.downgrade(params)
        new.slow_workers = True
        warnings.append(Warning("Downgraded", "The request was shrunk to what needs no upfront kudos."))

    if queued_images + new.n > user.concurrency:
        raise TooManyPrompts(
            f"Your account may have at most {user.concurrency} images queued; wait for some to finish."
        )

    if is_anonymous(user):
        await limits.check_anonymous_ip_queue(store, ctx.settings, ip_hash, new.n)

    priority = role_effects.queue_priority(user, balance_cents)
    priority += await tiers.priority_boost(store, ctx.settings, user, standing.supporter_until, moment)
    row = incoming.row(params)
    row["queue_rank"] = priority - AGEING_PRIORITY_PER_SECOND * moment
    row["kudos_backed"] = available_cents >= total_cents
    counted = await store.intake.insert(row, models, targets, since, DEFAULT_WORKER_SPEED_PPS)
    return await incoming.queued(store, ctx, row, counted, modes.raid, warnings)


@dataclass(frozen=True)
class _Incoming:
    """A request on its way into the queue: what ``create_request`` settled before its requester's standing."""

    request_id: str
    user: Account
    new: NewRequest
    models: list[str]
    targets: list[str]
    source_keys: sources.SourceKeys
    sharedkey: SharedKey | None
    ip_hash: str | None
    now: float

    @property
    def admitted_in_one_step(self) -> bool:
        """Whether ``IntakeRepository.admit`` can take it: not when a rule needs the domain between the standing and
        the insert (the anonymous per-address queue, a shared key's caps and budget, a flagged account's priority,
        a style's use) or a second statement does (targeted workers)."""
        user = self.user
        return not (is_anonymous(user) or user.is_flagged or self.sharedkey or self.new.style_use or self.targets)

    def row(self, params: dict[str, Any]) -> dict[str, Any]:
        """The request's columns with these ``params`` (maybe downgraded), but for its rank and ``kudos_backed``:
        they depend on the requester's standing."""
        new, params = self.new, dict(params)
        inputs = price_inputs(new, params)
        seed = parse_seed(params.pop("seed", None))
        seed_variation = int(params.pop("seed_variation", None) or SEED_VARIATION_DEFAULT)
        pixels = params["width"] * params["height"]
        steps = accurate_steps(params["steps"], params["sampler_name"])
        return {
            "id": self.request_id,
            "user_id": self.user.id,
            "state": RequestState.QUEUED,
            "created_at": self.now,
            "last_activity_at": self.now,
            "prompt": new.prompt,
            "params": params,
            "n_total": new.n,
            "n_waiting": new.n,
            "n_processing": 0,
            "n_finished": 0,
            "n_faulted": 0,
            "width": params["width"],
            "height": params["height"],
            "pixels": pixels,
            "accurate_steps": steps,
            "things": pixels * steps,
            "nsfw": new.nsfw,
            "censor_nsfw": new.censor_nsfw,
            "trusted_workers": new.trusted_workers,
            "slow_workers": new.slow_workers,
            "worker_blacklist": new.worker_blacklist,
            "has_worker_list": bool(self.targets),
            "has_model_list": bool(self.models),
            "r2": new.r2,
            "shared": new.shared,
            "source_processing": new.source_processing,
            "source_image_key": self.source_keys.source,
            "source_mask_key": self.source_keys.mask,
            "has_loras": bool(params.get("loras")),
            "has_hypernetworks": bool(params.get("hypernetworks")),
            "has_post_processing": bool(params.get("post_processing")),
            "post_processor_bits": post_processors.bits(params.get("post_processing") or ()),
            "has_controlnet": bool(params.get("control_type")),
            "disable_batching": new.disable_batching,
            "price_cents": kudos_to_cents(image_price(inputs)),
            "charge_cents": kudos_to_cents(image_charge(inputs)),
            "charged_cents": 0,
            "seed": seed,
            "seed_variation": seed_variation,
            "webhook": new.webhook,
            "gallery": new.gallery and not is_anonymous(self.user),
            "client_agent": new.client_agent,
            "sharedkey_id": self.sharedkey.id if self.sharedkey is not None else None,
            "client_ip_hash": self.ip_hash,
        }

    async def queued(
        self,
        store: Store,
        ctx: HordeContext,
        row: dict[str, Any],
        counted: Eligibility | None,
        raid: bool,
        warnings: list[Warning] | None = None,
    ) -> CreatedRequest:
        """What follows the insert of ``row``: its style's use, its event, and its answer, with a warning when no
        live worker could serve it (``counted``: the workers the insert counted, if it did)."""
        request_id, now = self.request_id, self.now
        if counted is not None:
            ctx.eligibility.remember(request_id, now, counted)
        if self.new.style_use is not None:
            await styles.record_use(store, self.new.style_use, self.user, request_id)
        events.announce(store, request_id, events.QUEUED, models=self.models)  # streams, Prefer: wait, idle pops
        warnings = list(warnings or ())
        message = None
        if not raid and not (await ctx.eligibility.count(store, ctx.settings, request_id, now)).workers:
            message = "No worker is currently online that can serve this request. It stays queued until one is."
            warnings.append(Warning("NoAvailableWorker", message))
        kudos = cents_to_kudos(row["charge_cents"] * self.new.n)
        return CreatedRequest(id=request_id, kudos=kudos, warnings=warnings, message=message)


async def cancel_request(store: Store, request: RequestCounters, now: float | None = None) -> None:
    """Stop handing out a request's images; images already being generated are still delivered and paid."""
    if request.state != RequestState.QUEUED:
        return
    await store.queue.cancel(request_transition(RequestState.CANCELLED), request.id, now or time.time())
    events.announce(store, request.id, events.CANCELLED)  # ends its streams
