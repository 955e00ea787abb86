"""The one exception hierarchy; long because every error the server answers with sits here, one class per rc.

Each error renders as ``{"message": ..., "rc": ...}``.

A subclass sets ``rc`` (the AI Horde return code) and ``status`` (the HTTP status); its
docstring is its default message. ``api/app.py`` maps every ``HordeError`` to a response in
one handler; anything else is logged and answered with a generic 500. Below, a ``Parent: ...``
line lists that parent's subclasses.

    HordeError (500)
    ├── BadRequest (400)
    │   ├── ValidationFailed, ClientDisconnected, InvalidCharacters, MissingPrompt, InvalidPromptSize,
    │   │   TooManySteps, UnsupportedSampler, TooManyLoras, TooManyTIs, TooManyUpscalers, BadCFGDecimals,
    │   │   ControlNetSourceMissing, ControlNetInpaintingMismatch,
    │   │   UnsupportedModel, InvalidStateTransition, SourceMaskUnnecessary, InvalidUsername,
    │   │   InvalidWorkerName, PolymorphicNameConflict, InvalidPriorityUsername, DuplicateGen, AbortedGen,
    │   │   CorruptPrompt, InvalidTeamName, InvalidSharedKeyName, SharedKeyLimitExceeded, StripeSignatureInvalid,
    │   │   StripeEventUnusable, ProcGenNotFound, InvalidAestheticAttempt, StylePromptMissingVars,
    │   │   StyleMismatch, StyleGetMistmatch, ExampleURLAlreadyInUse, SharedKeyInvalid, TextStylesUnsupported
    │   ├── ImageValidationFailed     SourceImage* / InpaintingMissingMask
    │   ├── KudosValidationError      KudosTransfer* / KudosAwardNotPositive
    │   ├── NoValidActions            NoUserModSelected / NoWorkerModSelected
    │   └── NameAlreadyExists         WorkerNameAlreadyExists / TeamNameAlreadyExists
    ├── InvalidAPIKey (401)
    ├── Forbidden (403)
    │   ├── WrongCredentials, NotAdmin, NotModerator, NotOwner, OwnPrivilegesForbidden, DeletedUser,
    │   │   NotAllowedAwards, KudosUpfront, TooManyWorkers, InvalidUploadSignature, UploadClosed,
    │   │   WorkerInviteOnly, MessagesOnlyOwnWorkers, SharedKeyEmpty, SharedKeyExpired,
    │   │   SharedKeyInsufficientKudos, TooManySharedKeys, TimeoutIP, NotUserOrMod, CannotDeleteMod,
    │   │   CannotWipeActiveUser, StylesAnonForbidden, StylesRequiresCustomizer, TooManyStyleExamples,
    │   │   SharedKeyAssignedStyles
    │   ├── AnonForbidden             AnonForbiddenUserMod / AnonForbiddenWorker
    │   ├── WorkerMaintenance         WorkerFlaggedMaintenance
    │   └── NotTrusted                UntrustedTeamCreation
    ├── NotFound (404)
    │   └── ModelNotFound, BlobNotFound, GalleryImageNotFound, UserNotFound, WorkerNotFound, InvalidJobID,
    │       RequestNotFound, FilterNotFound, NewsNotFound, WorkerMessageNotFound, TeamNotFound,
    │       SharedKeyNotFound, StripeNotConfigured, StyleNotFound, StyleExampleNotFound, CollectionNotFound
    ├── PayloadTooLarge (413)
    │   └── RequestTooLarge           a body over max_request_body_bytes
    ├── Locked (423)                  a worker with jobs in progress cannot be deleted
    ├── TooManyPrompts (429)
    ├── RateLimited (429)             a rate limit; carries Retry-After
    └── MaintenanceMode (503)
"""

from __future__ import annotations

from typing import Any, ClassVar

EXTENSION_RCS: frozenset[str] = frozenset(
    {
        # Return codes of our own, for things the AI Horde has no code for (our extensions).
        "ValidationError",
        "InternalServerError",
        "ClientDisconnected",
        "InvalidFieldMask",
        "InvalidStateTransition",
        "ModelNotFound",
        # Source images and uploads. The reference names the family `SourceImage*`.
        "SourceImageUnreadable",
        "SourceImageSizeExceeded",
        "SourceImageResolutionExceeded",
        "SourceImageUrlInvalid",
        "SourceMaskMismatch",
        "InvalidUploadSignature",
        "UploadClosed",
        "UploadTooLarge",
        "BlobNotFound",
        "GalleryImageNotFound",
        # Accounts, workers and kudos. The reference names the families `KudosTransfer*` and `No*ModSelected`.
        "UsernameAlreadyExists",
        "InvalidUsername",
        "InvalidWorkerName",
        "NoWorkerModSelected",
        "KudosTransferToAnon",
        "KudosTransferFromAnon",
        "KudosTransferToSelf",
        "KudosTransferNotEnough",
        "KudosTransferNotPositive",
        "KudosAwardNotPositive",
        "KudosTransferIdempotencyMismatch",
        # Moderation rules: names checked after trimming; a moderator raising their own privileges.
        "InvalidTeamName",
        "InvalidSharedKeyName",
        "CannotModifyOwnPrivileges",
        # Shared keys and teams. The reference writes `SharedKeyEmpty/Expired`; its "<Thing>NotFound"
        # pattern gives SharedKeyNotFound; the caps and key count have no code there.
        "SharedKeyExpired",
        "SharedKeyNotFound",
        "SharedKeyLimitExceeded",
        "TooManySharedKeys",
        # Styles and collections: codes of the AI Horde's own style endpoints that the server notes do not list
        # (`StyleGetMistmatch` is its spelling), and one of ours for the text styles an image-only horde lacks.
        "StylePromptMissingVars",
        "StyleMismatch",
        "StyleGetMistmatch",
        "TooManyStyleExamples",
        "ExampleURLAlreadyInUse",
        "SharedKeyInvalid",
        "CollectionNotFound",
        "StyleExampleNotFound",
        "TextStylesUnsupported",
        # Billing.
        "StripeSignatureInvalid",
        "StripeEventUnusable",
        "StripeNotConfigured",
        # News (our admin routes for /status/news).
        "NewsNotFound",
        # Moderation evidence: codes of the AI Horde's own /operations/moderation endpoints (in its source, not
        # in the server notes).
        "ModerationEventNotFound",
        "InvalidModerationNote",
        "InvalidModerationReason",
        "InvalidModerationEventID",
        "InvalidOperationsLimit",
        "InvalidOperationsCursor",
        # Limits: rate limits, size limits and bad text.
        "RateLimited",
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

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or (self.__doc__ or "").strip().splitlines()[0]
        self.extra = extra
        super().__init__(self.message)

    def to_body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return {"message": self.message, "rc": self.rc, **self.extra}


# Base classes, one per HTTP status that has subclasses --------------------------------------------


class BadRequest(HordeError):
    """The request is not valid."""

    rc = "BadRequest"
    status = 400


class Forbidden(HordeError):
    """You are not allowed to do this."""

    rc = "Forbidden"
    status = 403


class NotFound(HordeError):
    """Not found."""

    rc = "ThingNotFound"
    status = 404


class PayloadTooLarge(HordeError):
    """The upload is too large."""

    rc = "UploadTooLarge"
    status = 413


# Requests and validation: payloads, prompts, generation parameters, models --------------------------


class ClientDisconnected(BadRequest):
    """The client hung up while sending its request's body."""

    rc = "ClientDisconnected"


class ValidationFailed(BadRequest):
    """Input payload validation failed."""

    rc = "ValidationError"


class InvalidCharacters(BadRequest):
    """Text may not contain NUL characters or unpaired UTF-16 surrogates."""

    rc = "InvalidCharacters"


class InvalidFieldMask(BadRequest):
    """The ``X-Fields`` header is not a field mask (``name,kudos_details{accumulated}``); the AI Horde answers
    it with a 400 and a ``Mask parse error`` message."""

    rc = "InvalidFieldMask"


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


class ControlNetSourceMissing(BadRequest):
    """ControlNet needs a source image: its control image."""

    rc = "ControlNetSourceMissing"


class ControlNetInpaintingMismatch(BadRequest):
    """ControlNet does not work with inpainting or outpainting."""

    rc = "ControlNetInpaintingMismatch"


class BadCFGDecimals(BadRequest):
    """cfg_scale may have at most 2 decimals."""

    rc = "BadCFGDecimals"


class UnsupportedModel(BadRequest):
    """This model is not in the model catalogue."""

    rc = "UnexpectedModelName"


class ModelNotFound(NotFound):
    """Model not found."""

    rc = "ModelNotFound"


class NoValidActions(BadRequest):
    """Nothing to change was given."""

    rc = "NoValidActions"


class NameAlreadyExists(BadRequest):
    """This name is already taken."""

    rc = "NameAlreadyExists"


class InvalidStateTransition(BadRequest):
    """This change of state is not allowed."""

    rc = "InvalidStateTransition"


# Source images and uploads: source images and masks, uploaded results, stored images ----------------


class ImageValidationFailed(BadRequest):
    """The image could not be validated."""

    rc = "ImageValidationFailed"


class SourceImageUnreadable(ImageValidationFailed):
    """The source image is not a readable image."""

    rc = "SourceImageUnreadable"


class SourceImageSizeExceeded(ImageValidationFailed):
    """The source image is too large."""

    rc = "SourceImageSizeExceeded"


class SourceImageResolutionExceeded(ImageValidationFailed):
    """The source image has too many pixels."""

    rc = "SourceImageResolutionExceeded"


class SourceImageUrlInvalid(ImageValidationFailed):
    """The source image URL could not be fetched."""

    rc = "SourceImageUrlInvalid"


class InpaintingMissingMask(ImageValidationFailed):
    """Inpainting needs a source_mask or a source image with an alpha channel."""

    rc = "InpaintingMissingMask"


class SourceMaskUnnecessary(BadRequest):
    """A source mask was sent without a source image."""

    rc = "SourceMaskUnnecessary"


class InvalidUploadSignature(Forbidden):
    """This upload or download link is invalid or has expired."""

    rc = "InvalidUploadSignature"


class UploadClosed(Forbidden):
    """This job is no longer being generated, so its image can no longer be uploaded or replaced."""

    rc = "UploadClosed"


class BlobNotFound(NotFound):
    """This image does not exist or has been removed."""

    rc = "BlobNotFound"


class GalleryImageNotFound(NotFound):
    """This image is not in your gallery."""

    rc = "GalleryImageNotFound"


# Accounts and keys: API keys, roles, ownership, usernames ---------------------------------------------


class InvalidAPIKey(HordeError):
    """No user matching sent API Key. Have you remembered to register at https://stablehorde.net/register ?"""

    rc = "InvalidAPIKey"
    status = 401


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


class OwnPrivilegesForbidden(Forbidden):
    """Moderators cannot change their own roles, trust, flags or limits; ask an admin."""

    rc = "CannotModifyOwnPrivileges"


class AnonForbidden(Forbidden):
    """Anonymous users cannot do this."""

    rc = "AnonForbidden"


class AnonForbiddenUserMod(AnonForbidden):
    """The anonymous user cannot be changed."""

    rc = "AnonForbiddenUserMod"


class DeletedUser(Forbidden):
    """This account has been deleted."""

    rc = "DeletedUser"


class InvalidUsername(BadRequest):
    """A username has 2 to 30 letters, digits, spaces, dots, dashes or underscores."""

    rc = "InvalidUsername"


class NoUserModSelected(NoValidActions):
    """No user modification selected!"""

    rc = "NoUserModSelected"


class NotUserOrMod(Forbidden):
    """Only the user themself or a moderator can do this."""

    rc = "NotUserOrMod"


class CannotDeleteMod(Forbidden):
    """A moderator's or admin's account cannot be deleted; take the role away first."""

    rc = "CannotDeleteMod"


class CannotWipeActiveUser(Forbidden):
    """This deleted account was active in the last 30 days; it can be wiped only after that."""

    rc = "CannotWipeActiveUser"


class UserNotFound(NotFound):
    """User not found."""

    rc = "UserNotFound"


# Kudos: transfers, awards, upfront payment ----------------------------------------------------------


class KudosValidationError(BadRequest):
    """This kudos operation is not valid."""

    rc = "KudosValidationError"


class KudosTransferFromAnon(KudosValidationError):
    """The anonymous user cannot transfer kudos."""

    rc = "KudosTransferFromAnon"


class KudosTransferToAnon(KudosValidationError):
    """Kudos cannot be sent to the anonymous user."""

    rc = "KudosTransferToAnon"


class KudosTransferToSelf(KudosValidationError):
    """You cannot transfer kudos to yourself."""

    rc = "KudosTransferToSelf"


class KudosTransferNotPositive(KudosValidationError):
    """The amount to transfer must be positive."""

    rc = "KudosTransferNotPositive"


class KudosTransferNotEnough(KudosValidationError):
    """Not enough kudos to transfer."""

    rc = "KudosTransferNotEnough"


class KudosTransferIdempotencyMismatch(KudosValidationError):
    """This Idempotency-Key was used for a different transfer."""

    rc = "KudosTransferIdempotencyMismatch"


class KudosAwardNotPositive(KudosValidationError):
    """The amount of kudos must be positive."""

    rc = "KudosAwardNotPositive"


class NotAllowedAwards(Forbidden):
    """You are not allowed to award kudos."""

    rc = "NotAllowedAwards"


class KudosUpfront(Forbidden):
    """This request needs kudos paid upfront, and the account does not have enough."""

    rc = "KudosUpfront"


# Workers: check-in, names, settings, maintenance, removal --------------------------------------------


class AnonForbiddenWorker(AnonForbidden):
    """Anonymous users cannot run workers; register for an API key."""

    rc = "AnonForbiddenWorker"


class InvalidWorkerName(BadRequest):
    """This worker name is too short or too long."""

    rc = "InvalidWorkerName"


class WorkerNameAlreadyExists(NameAlreadyExists):
    """A worker with this name exists already; worker names are unique regardless of case."""

    rc = "WorkerNameAlreadyExists"


class PolymorphicNameConflict(BadRequest):
    """This worker name belongs to a worker of another type (image or interrogation)."""

    rc = "PolymorphicNameConflict"


class InvalidPriorityUsername(BadRequest):
    """A priority username is not of the form name#id."""

    rc = "InvalidPriorityUsername"


class NoWorkerModSelected(NoValidActions):
    """No worker modification selected!"""

    rc = "NoWorkerModSelected"


class WorkerMaintenance(Forbidden):
    """This worker is in maintenance mode."""

    rc = "WorkerMaintenance"


class WorkerFlaggedMaintenance(WorkerMaintenance):
    """This account is flagged; its workers are in maintenance. Contact a moderator."""

    rc = "WorkerFlaggedMaintenance"


class TooManyWorkers(Forbidden):
    """This account already runs the most workers it may."""

    rc = "TooManyWorkers"


class WorkerNotFound(NotFound):
    """Worker not found."""

    rc = "WorkerNotFound"


class Locked(HordeError):
    """This is still in use and cannot be removed now."""

    rc = "Locked"
    status = 423


# Queue and jobs: requests and the jobs workers run for them ------------------------------------------


class InvalidJobID(NotFound):
    """Processing generation with this ID was not found."""

    rc = "InvalidJobID"


class RequestNotFound(NotFound):
    """Request not found. It may have expired or been removed."""

    rc = "RequestNotFound"


class DuplicateGen(BadRequest):
    """This job has already been submitted."""

    rc = "DuplicateGen"


class AbortedGen(BadRequest):
    """This job was aborted because it ran past its time limit or was faulted; it was handed to another worker."""

    rc = "AbortedGen"


class ProcGenNotFound(BadRequest):
    """No image of this request has this id."""

    rc = "ProcGenNotFound"


class InvalidAestheticAttempt(BadRequest):
    """These ratings cannot be accepted."""

    rc = "InvalidAestheticAttempt"


# Moderation: prompt filters, horde modes, worker messages --------------------------------------------


class CorruptPrompt(BadRequest):
    """This prompt was refused by the horde's prompt filters."""

    rc = "CorruptPrompt"


class FilterNotFound(NotFound):
    """Filter not found."""

    rc = "FilterNotFound"


class ModerationEventNotFound(NotFound):
    """No moderation event has this id."""

    rc = "ModerationEventNotFound"


class InvalidModerationNote(BadRequest):
    """A moderation note has 1 to 2000 characters and no NUL characters."""

    rc = "InvalidModerationNote"


class InvalidModerationReason(BadRequest):
    """Unknown moderation reason."""

    rc = "InvalidModerationReason"


class InvalidModerationEventID(BadRequest):
    """A moderation event id is positive."""

    rc = "InvalidModerationEventID"


class InvalidOperationsLimit(BadRequest):
    """The page size is out of range."""

    rc = "InvalidOperationsLimit"


class InvalidOperationsCursor(BadRequest):
    """The page cursor (before_id) is positive."""

    rc = "InvalidOperationsCursor"


class NewsNotFound(NotFound):
    """No piece of news has this id."""

    rc = "NewsNotFound"


class MaintenanceMode(HordeError):
    """The horde is in maintenance mode and accepts no new requests; try again later."""

    rc = "MaintenanceMode"
    status = 503


class WorkerInviteOnly(Forbidden):
    """This horde only accepts invited workers; ask a moderator for an invitation."""

    rc = "WorkerInviteOnly"


class MessagesOnlyOwnWorkers(Forbidden):
    """You can only send or see messages to your own workers."""

    rc = "MessagesOnlyOwnWorkers"


class WorkerMessageNotFound(NotFound):
    """Worker message not found."""

    rc = "WorkermessageNotFound"


# Shared keys and teams ----------------------------------------------------------------------------------


class NotTrusted(Forbidden):
    """Only trusted users can do this."""

    rc = "NotTrusted"


class UntrustedTeamCreation(NotTrusted):
    """Only trusted users can create teams."""

    rc = "UntrustedTeamCreation"


class InvalidTeamName(BadRequest):
    """This team name is too short or too long."""

    rc = "InvalidTeamName"


class TeamNameAlreadyExists(NameAlreadyExists):
    """A team with this name exists already; team names are unique regardless of case."""

    rc = "TeamNameAlreadyExists"


class TeamNotFound(NotFound):
    """Team not found."""

    rc = "TeamNotFound"


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


class InvalidSharedKeyName(BadRequest):
    """This shared key name is too short or too long."""

    rc = "InvalidSharedKeyName"


class SharedKeyNotFound(NotFound):
    """Shared key not found."""

    rc = "SharedKeyNotFound"


# Styles and collections ---------------------------------------------------------------------------------


class StylesAnonForbidden(Forbidden):
    """Anonymous users cannot create or change styles."""

    rc = "StylesAnonForbidden"


class StylesRequiresCustomizer(Forbidden):
    """Only customizers and trusted users can create styles; ask a moderator for the customizer role."""

    rc = "StylesRequiresCustomizer"


class StylePromptMissingVars(BadRequest):
    """A style prompt must include '{p}' for the user's prompt and '{np}' for their negative prompt."""

    rc = "StylePromptMissingVars"


class StyleMismatch(BadRequest):
    """Image and text styles cannot be mixed."""

    rc = "StyleMismatch"


class StyleGetMistmatch(BadRequest):
    """This style is of another type than the endpoint asked."""

    rc = "StyleGetMistmatch"


class TooManyStyleExamples(Forbidden):
    """A style can have at most 4 examples."""

    rc = "TooManyStyleExamples"


class ExampleURLAlreadyInUse(BadRequest):
    """This URL is already an example of this style."""

    rc = "ExampleURLAlreadyInUse"


class SharedKeyInvalid(BadRequest):
    """This shared key does not exist."""

    rc = "SharedKeyInvalid"


class SharedKeyAssignedStyles(Forbidden):
    """This shared key pays for styles; it can only be used through them."""

    rc = "SharedKeyAssignedStyles"


class TextStylesUnsupported(BadRequest):
    """This horde generates images only; it has no text styles."""

    rc = "TextStylesUnsupported"


class StyleNotFound(NotFound):
    """Style not found."""

    rc = "StyleNotFound"


class StyleExampleNotFound(NotFound):
    """Style example not found."""

    rc = "StyleExampleNotFound"


class CollectionNotFound(NotFound):
    """Collection not found."""

    rc = "CollectionNotFound"


# Billing: tiers and Stripe -------------------------------------------------------------------------------


class StripeSignatureInvalid(BadRequest):
    """The Stripe-Signature header does not match this webhook's secret."""

    rc = "StripeSignatureInvalid"


class StripeEventUnusable(BadRequest):
    """This Stripe event cannot be applied: it names no known user or no amount of kudos."""

    rc = "StripeEventUnusable"


class StripeNotConfigured(NotFound):
    """Stripe payments are not enabled on this horde (OPENHORDE_STRIPE_WEBHOOK_SECRET is unset)."""

    rc = "StripeNotConfigured"


# Limits and rate limits: body sizes, queued images, call rates, timed-out addresses ------------------------


class RequestTooLarge(PayloadTooLarge):
    """The request body is too large."""

    rc = "RequestTooLarge"


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


class TimeoutIP(Forbidden):
    """Your IP address has been timed out; try again later."""

    rc = "TimeoutIP"
