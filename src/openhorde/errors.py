"""The one exception hierarchy; over 400 lines because every error of every part sits here, each with its rc.

Each error renders as ``{"message": ..., "rc": ...}``.

A subclass sets ``rc`` (the AI Horde return code) and ``status`` (the HTTP status); its
docstring is its default message. ``api/app.py`` maps every ``HordeError`` to a response in
one handler; anything else is logged and answered with a generic 500.

    HordeError (500)
    ├── BadRequest (400)
    │   ├── ValidationFailed          payload does not match the schema
    │   ├── InvalidCharacters         a NUL or a lone surrogate in any text (no database stores it)
    │   ├── MissingPrompt, InvalidPromptSize, TooManySteps, UnsupportedSampler, TooManyLoras, ...
    │   ├── ImageValidationFailed     SourceImage* / InpaintingMissingMask / upload checks
    │   ├── UnsupportedModel          UnexpectedModelName
    │   ├── KudosValidationError      KudosTransfer* / KudosAward*
    │   ├── NoValidActions            No*ModSelected
    │   ├── NameAlreadyExists         WorkerNameAlreadyExists / UsernameAlreadyExists / TeamNameAlreadyExists
    │   ├── SharedKeyLimitExceeded    a shared key's pixel or step cap
    │   ├── DuplicateGen, AbortedGen
    │   └── InvalidStateTransition    a lifecycle change the transition table forbids
    ├── InvalidAPIKey (401)
    ├── Forbidden (403)
    │   ├── WrongCredentials, NotAdmin, NotModerator, NotOwner, NotAllowedAwards, OwnPrivilegesForbidden
    │   ├── AnonForbidden             AnonForbiddenWorker / AnonForbiddenUserMod
    │   ├── KudosUpfront, WorkerMaintenance, DeletedUser, TooManyWorkers, InvalidUploadSignature,
    │   │                             UploadClosed
    │   ├── TimeoutIP                 a moderator timed the caller's address out
    │   ├── NotTrusted                UntrustedTeamCreation
    │   ├── SharedKeyEmpty, SharedKeyExpired, SharedKeyInsufficientKudos, TooManySharedKeys
    ├── NotFound (404)
    │   └── InvalidJobID, RequestNotFound, WorkerNotFound, UserNotFound, ModelNotFound, BlobNotFound,
    │       GalleryImageNotFound, SharedKeyNotFound, TeamNotFound
    ├── PayloadTooLarge (413)
    │   └── RequestTooLarge           a body over max_request_body_bytes
    ├── Locked (423)                  a worker with jobs in progress cannot be deleted
    ├── TooManyPrompts (429)
    └── RateLimited (429)             a rate limit; carries Retry-After
"""

from __future__ import annotations

from typing import Any, ClassVar

EXTENSION_RCS: frozenset[str] = frozenset(
    {
        # Return codes of our own, for things the AI Horde has no code for (our extensions).
        "ValidationError",
        "UsernameAlreadyExists",
        "InvalidStateTransition",
        "InvalidUploadSignature",
        "UploadClosed",
        "UploadTooLarge",
        "BlobNotFound",
        "GalleryImageNotFound",
        "ModelNotFound",
        "InternalServerError",
        "ClientDisconnected",
        "SourceImageUnreadable",
        "SourceImageSizeExceeded",
        "SourceImageResolutionExceeded",
        "SourceImageUrlInvalid",
        "SourceMaskMismatch",
        "KudosTransferToAnon",
        "KudosTransferFromAnon",
        "KudosTransferToSelf",
        "KudosTransferNotEnough",
        "KudosTransferNotPositive",
        "KudosAwardNotPositive",
        "KudosTransferIdempotencyMismatch",
        "InvalidWorkerName",
        "InvalidUsername",
        # Moderation rules: names checked after trimming; a moderator raising their own privileges.
        "InvalidTeamName",
        "InvalidSharedKeyName",
        "CannotModifyOwnPrivileges",
        # Shared keys and teams (issue 5, part C). The reference writes `SharedKeyEmpty/Expired`; its
        # "<Thing>NotFound" pattern gives SharedKeyNotFound; the caps and key count have no code there.
        "SharedKeyExpired",
        "SharedKeyNotFound",
        "SharedKeyLimitExceeded",
        "TooManySharedKeys",
        "RateLimited",
        "StripeSignatureInvalid",
        "StripeEventUnusable",
        "StripeNotConfigured",
        # Size limits and bad text.
        "RequestTooLarge",
        "InvalidCharacters",
    }
)


class HordeError(Exception):
    """The horde could not handle this request."""

    rc: ClassVar[str] = "InternalServerError"
    status: ClassVar[int] = 500
    retry_after: int | None = None
    """Seconds to wait before trying again, sent as ``Retry-After`` when set."""

    def __init__(self, message: str | None = None, *, rc: str | None = None, **extra: Any) -> None:
        self.message = message or (self.__doc__ or "").strip().splitlines()[0]
        self.rc_value = rc or self.rc
        self.extra = extra
        super().__init__(self.message)

    def to_body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return {"message": self.message, "rc": self.rc_value, **self.extra}


# 400 ------------------------------------------------------------------------------------


class BadRequest(HordeError):
    """The request is not valid."""

    rc = "BadRequest"
    status = 400


class ClientDisconnected(BadRequest):
    """The client hung up while sending its request's body."""

    rc = "ClientDisconnected"


class ValidationFailed(BadRequest):
    """Input payload validation failed."""

    rc = "ValidationError"


class InvalidCharacters(BadRequest):
    """Text may not contain NUL characters or unpaired UTF-16 surrogates."""

    rc = "InvalidCharacters"


class MissingPrompt(BadRequest):
    """You cannot specify an empty prompt."""

    rc = "MissingPrompt"


class InvalidPromptSize(BadRequest):
    """The prompt is too long."""

    rc = "InvalidPromptSize"


class TooManySteps(BadRequest):
    """Too many sampling steps requested."""

    rc = "TooManySteps"


class UnsupportedSampler(BadRequest):
    """This sampler is not supported."""

    rc = "UnsupportedSampler"


class TooManyLoras(BadRequest):
    """At most 5 LoRAs may be requested."""

    rc = "TooManyLoras"


class TooManyTIs(BadRequest):
    """At most 20 textual inversions may be requested."""

    rc = "TooManyTIs"


class TooManyUpscalers(BadRequest):
    """At most one upscaler may be requested."""

    rc = "TooManyUpscalers"


class BadCFGDecimals(BadRequest):
    """cfg_scale may have at most 2 decimals."""

    rc = "BadCFGDecimals"


class ImageValidationFailed(BadRequest):
    """The image could not be validated."""

    rc = "ImageValidationFailed"


class SourceMaskUnnecessary(BadRequest):
    """A source mask was sent without a source image."""

    rc = "SourceMaskUnnecessary"


class UnsupportedModel(BadRequest):
    """This model is not in the model catalogue."""

    rc = "UnexpectedModelName"


class KudosValidationError(BadRequest):
    """This kudos operation is not valid."""

    rc = "KudosValidationError"


class NoValidActions(BadRequest):
    """Nothing to change was given."""

    rc = "NoValidActions"


class NameAlreadyExists(BadRequest):
    """This name is already taken."""

    rc = "NameAlreadyExists"


class DuplicateGen(BadRequest):
    """This job has already been submitted."""

    rc = "DuplicateGen"


class AbortedGen(BadRequest):
    """This job was aborted because it ran past its time limit or was faulted; it was handed to another worker."""

    rc = "AbortedGen"


class InvalidStateTransition(BadRequest):
    """This change of state is not allowed."""

    rc = "InvalidStateTransition"


# 401 / 403 ------------------------------------------------------------------------------


class InvalidAPIKey(HordeError):
    """No user matching sent API Key. Have you remembered to register at https://stablehorde.net/register ?"""

    rc = "InvalidAPIKey"
    status = 401


class Forbidden(HordeError):
    """You are not allowed to do this."""

    rc = "Forbidden"
    status = 403


class WrongCredentials(Forbidden):
    """This job or worker belongs to someone else."""

    rc = "WrongCredentials"


class NotAdmin(Forbidden):
    """Only an admin can do this."""

    rc = "NotAdmin"


class NotModerator(Forbidden):
    """Only a moderator can do this."""

    rc = "NotModerator"


class NotOwner(Forbidden):
    """Only the owner can do this."""

    rc = "NotOwner"


class NotAllowedAwards(Forbidden):
    """You are not allowed to award kudos."""

    rc = "NotAllowedAwards"


class OwnPrivilegesForbidden(Forbidden):
    """Moderators cannot change their own roles, trust, flags or limits; ask an admin."""

    rc = "CannotModifyOwnPrivileges"


class AnonForbidden(Forbidden):
    """Anonymous users cannot do this."""

    rc = "AnonForbidden"


class DeletedUser(Forbidden):
    """This account has been deleted."""

    rc = "DeletedUser"


class KudosUpfront(Forbidden):
    """This request needs kudos paid upfront, and the account does not have enough."""

    rc = "KudosUpfront"


class WorkerMaintenance(Forbidden):
    """This worker is in maintenance mode."""

    rc = "WorkerMaintenance"


class TooManyWorkers(Forbidden):
    """This account already runs the most workers it may."""

    rc = "TooManyWorkers"


class TimeoutIP(Forbidden):
    """Your IP address has been timed out; try again later."""

    rc = "TimeoutIP"


class InvalidUploadSignature(Forbidden):
    """This upload or download link is invalid or has expired."""

    rc = "InvalidUploadSignature"


class UploadClosed(Forbidden):
    """This job is no longer being generated, so its image can no longer be uploaded or replaced."""

    rc = "UploadClosed"


# 404 ------------------------------------------------------------------------------------


class NotFound(HordeError):
    """Not found."""

    rc = "ThingNotFound"
    status = 404


class InvalidJobID(NotFound):
    """Processing generation with this ID was not found."""

    rc = "InvalidJobID"


class RequestNotFound(NotFound):
    """Request not found. It may have expired or been removed."""

    rc = "RequestNotFound"


class WorkerNotFound(NotFound):
    """Worker not found."""

    rc = "WorkerNotFound"


class UserNotFound(NotFound):
    """User not found."""

    rc = "UserNotFound"


class ModelNotFound(NotFound):
    """Model not found."""

    rc = "ModelNotFound"


class GalleryImageNotFound(NotFound):
    """This image is not in your gallery."""

    rc = "GalleryImageNotFound"


class BlobNotFound(NotFound):
    """This image does not exist or has been removed."""

    rc = "BlobNotFound"


# 413 / 423 / 429 ------------------------------------------------------------------------


class PayloadTooLarge(HordeError):
    """The upload is too large."""

    rc = "UploadTooLarge"
    status = 413


class RequestTooLarge(PayloadTooLarge):
    """The request body is too large."""

    rc = "RequestTooLarge"


class Locked(HordeError):
    """This is still in use and cannot be removed now."""

    rc = "Locked"
    status = 423


class TooManyPrompts(HordeError):
    """Too many images are queued for this account; wait for some to finish."""

    rc = "TooManyPrompts"
    status = 429


class RateLimited(HordeError):
    """Too many calls; slow down."""

    rc = "RateLimited"
    status = 429

    def __init__(self, message: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# Tiers and Stripe (issue 5, part D1) ------------------------------------------------------


class StripeSignatureInvalid(BadRequest):
    """The Stripe-Signature header does not match this webhook's secret."""

    rc = "StripeSignatureInvalid"


class StripeEventUnusable(BadRequest):
    """This Stripe event cannot be applied: it names no known user or no amount of kudos."""

    rc = "StripeEventUnusable"


class StripeNotConfigured(NotFound):
    """Stripe payments are not enabled on this horde (OPENHORDE_STRIPE_WEBHOOK_SECRET is unset)."""

    rc = "StripeNotConfigured"


# Moderation: prompt filters, horde modes, worker messages (issue 5, part B) -----------------


class CorruptPrompt(BadRequest):
    """This prompt was refused by the horde's prompt filters."""

    rc = "CorruptPrompt"


class MaintenanceMode(HordeError):
    """The horde is in maintenance mode and accepts no new requests; try again later."""

    rc = "MaintenanceMode"
    status = 503


class WorkerInviteOnly(Forbidden):
    """This horde only accepts invited workers; ask a moderator for an invitation."""

    rc = "WorkerInviteOnly"


class FilterNotFound(NotFound):
    """Filter not found."""

    rc = "FilterNotFound"


class WorkerMessageNotFound(NotFound):
    """Worker message not found."""

    rc = "WorkermessageNotFound"


# Shared keys and teams (issue 5, part C) ---------------------------------------------------


class NotTrusted(Forbidden):
    """Only trusted users can do this."""

    rc = "NotTrusted"


class SharedKeyEmpty(Forbidden):
    """This shared key has used up its kudos budget."""

    rc = "SharedKeyEmpty"


class SharedKeyExpired(Forbidden):
    """This shared key has expired."""

    rc = "SharedKeyExpired"


class SharedKeyInsufficientKudos(Forbidden):
    """This shared key does not have enough kudos left for this request."""

    rc = "SharedKeyInsufficientKudos"


class TooManySharedKeys(Forbidden):
    """This account already has the most shared keys it may."""

    rc = "TooManySharedKeys"


class SharedKeyLimitExceeded(BadRequest):
    """This request exceeds a limit of the shared key it was sent with."""

    rc = "SharedKeyLimitExceeded"


class SharedKeyNotFound(NotFound):
    """Shared key not found."""

    rc = "SharedKeyNotFound"


class TeamNotFound(NotFound):
    """Team not found."""

    rc = "TeamNotFound"
