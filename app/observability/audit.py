"""Audit events: one JSON line each, on their own logger (`app.audit`), never carrying a value.

Security-relevant facts (a secret rotated, a key ring changed, a login failed, a refresh token
reused) go here rather than to the application log so they can be shipped, retained and alerted
on separately. Every event says WHAT happened and to WHICH setting/user/family, and never a
secret, a token or a password: emails are recorded as a keyed hash (HMAC under a server key,
`app.security.identities`) so repeated attempts against one account can be correlated without
the log holding the address, nor a bare hash anyone could reverse from a list of addresses.

Inside an HTTP request the event also carries the request id and client address, and is handed
to the app's audit listener (its Prometheus counters), see `app.observability.context`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from app.observability.context import current_request
from app.secrets import store as store_events

audit_logger = logging.getLogger("app.audit")
logger = logging.getLogger("app.observability")

# Event names, shared with the metrics that count them (names, not credentials). The secret
# events are the store's own (it emits them through `secret_event`).
SECRET_LOADED = store_events.SECRET_LOADED
SECRET_ROTATED = store_events.SECRET_ROTATED
SECRET_REFRESH_FAILED = store_events.SECRET_REFRESH_FAILED
KEYRING_CHANGED = "keyring.changed"
LOGIN_SUCCEEDED = "auth.login_succeeded"
LOGIN_FAILED = "auth.login_failed"
LOGIN_LOCKED = "auth.login_locked"
REFRESH_REUSE_DETECTED = "auth.refresh_reuse_detected"
LOGOUT = "auth.logout"
PASSWORD_CHANGED = "account.password_changed"  # noqa: S105  # pragma: allowlist secret
PASSWORD_RESET_REQUESTED = "account.password_reset_requested"  # noqa: S105  # pragma: allowlist secret
PASSWORD_RESET = "account.password_reset"  # noqa: S105  # pragma: allowlist secret
EMAIL_VERIFIED = "account.email_verified"
ACCOUNT_DELETED = "account.deleted"
USER_UPDATED = "admin.user_updated"
MFA_CHALLENGED = "auth.mfa_challenged"
MFA_ENABLED = "account.mfa_enabled"
MFA_DISABLED = "account.mfa_disabled"
MFA_RECOVERY_CODE_USED = "auth.mfa_recovery_code_used"
API_KEY_CREATED = "account.api_key_created"  # pragma: allowlist secret
API_KEY_DELETED = "account.api_key_deleted"  # pragma: allowlist secret


def audit(event: str, **fields: Any) -> None:
    """Emit one audit event. Callers pass identifiers and metadata only, never values."""
    record: dict[str, Any] = {"event": event, "ts": round(time.time(), 3)}
    context = current_request()
    if context is not None:
        record["request_id"] = context.request_id
        if context.client is not None:
            record["client"] = context.client
    record.update(fields)
    # The JSON formatter writes `audit` as the line itself; a plain formatter shows the message.
    audit_logger.info(json.dumps(record, default=str, sort_keys=True), extra={"audit": record})
    if context is not None and context.audit_listener is not None:
        try:
            context.audit_listener(event, record)
        except Exception:  # metrics must never break the request that is being audited
            logger.exception("audit listener failed for %s", event)


def secret_event(event: str, **fields: Any) -> None:
    """The SecretStore's event sink: its loads, rotations and refresh failures as audit lines."""
    audit(event, **fields)


# ---- key ring ---------------------------------------------------------------------------------


def key_ring_changed(
    kids: Iterable[str], signing_kid: str | None, *, previous_kids: Iterable[str] | None = None
) -> None:
    current = sorted(kids)
    fields: dict[str, Any] = {"kids": current, "signing_kid": signing_kid}
    if previous_kids is not None:
        before = set(previous_kids)
        fields["added_kids"] = sorted(set(current) - before)
        fields["removed_kids"] = sorted(before - set(current))
    audit(KEYRING_CHANGED, **fields)


# ---- authentication (called by the auth API) --------------------------------------------------


def _ids(**values: object) -> dict[str, str]:
    """The identifiers that are known, as strings (UUIDs, family ids); None ones are left out."""
    return {name: str(value) for name, value in values.items() if value is not None}


def login_succeeded(*, user_id: object) -> None:
    audit(LOGIN_SUCCEEDED, user_id=str(user_id))


def login_failed(*, account: str, reason: str = "invalid_credentials") -> None:
    """A failed login. `account` is the keyed hash of the email (`Identities.account`):
    repeated attempts on one account correlate, and no reader of the log learns the address.
    Unknown account and wrong password share one reason, in the log as in the metrics: the
    difference would tell whoever reads them which accounts exist."""
    audit(LOGIN_FAILED, account=account, reason=reason)


def login_locked(*, account: str) -> None:
    """The account is past its failed-login limit: the attempt was refused with 429."""
    audit(LOGIN_LOCKED, account=account)


def refresh_reuse_detected(*, family_id: object, user_id: object | None = None) -> None:
    """An already-rotated refresh token came back: its whole family was revoked."""
    audit(REFRESH_REUSE_DETECTED, family_id=str(family_id), **_ids(user_id=user_id))


def logout(*, user_id: object, family_id: object | None = None) -> None:
    audit(LOGOUT, user_id=str(user_id), **_ids(family_id=family_id))


# ---- accounts --------------------------------------------------------------------------------


def password_changed(*, user_id: object) -> None:
    """The user changed its password; every earlier session was ended."""
    audit(PASSWORD_CHANGED, user_id=str(user_id))


def password_reset_requested(*, user_id: object) -> None:
    """A reset link was mailed (logged after the response: the answer never says)."""
    audit(PASSWORD_RESET_REQUESTED, user_id=str(user_id))


def password_reset(*, user_id: object) -> None:
    """A mailed reset token was used; every session of the user was ended."""
    audit(PASSWORD_RESET, user_id=str(user_id))


def email_verified(*, user_id: object) -> None:
    audit(EMAIL_VERIFIED, user_id=str(user_id))


def account_deleted(*, user_id: object) -> None:
    audit(ACCOUNT_DELETED, user_id=str(user_id))


def user_updated(*, user_id: object, by: object, changes: list[str]) -> None:
    """An admin changed an account (`changes` names the fields, never their values)."""
    audit(USER_UPDATED, user_id=str(user_id), by=str(by), changes=changes)


# ---- second factor and API keys --------------------------------------------------------------


def mfa_challenged(*, user_id: object) -> None:
    """The password was right and the account has MFA on: an mfa_token was handed out."""
    audit(MFA_CHALLENGED, user_id=str(user_id))


def mfa_enabled(*, user_id: object) -> None:
    audit(MFA_ENABLED, user_id=str(user_id))


def mfa_disabled(*, user_id: object) -> None:
    audit(MFA_DISABLED, user_id=str(user_id))


def mfa_recovery_code_used(*, user_id: object) -> None:
    """A login completed with a recovery code (each works once): worth a look if unexpected."""
    audit(MFA_RECOVERY_CODE_USED, user_id=str(user_id))


def api_key_created(*, user_id: object, key_id: object, scopes: list[str]) -> None:
    audit(API_KEY_CREATED, user_id=str(user_id), key_id=str(key_id), scopes=scopes)


def api_key_deleted(*, user_id: object, key_id: object) -> None:
    audit(API_KEY_DELETED, user_id=str(user_id), key_id=str(key_id))
