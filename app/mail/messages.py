"""What the service mails, built in one place: the message and its builders.

A `Mail` never shows its recipient or its body in a repr or a log line: the body of an account
mail holds a single-use token, and addresses are personal data. What may be logged is its `kind`
(a fixed label, also a metric label) and its random `id`.

Links are `PUBLIC_BASE_URL` + a path + `#token=...`: the token travels in the URL FRAGMENT, which
browsers never send to a server, so it cannot end up in a web server's or proxy's access log or in
a `Referer` header. The page at that path (your frontend) reads it and posts it to the API.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Literal
from urllib.parse import quote

from app.config import Settings

MailKind = Literal["password_reset", "email_verify"]

#: Frontend paths the mailed links point at, under PUBLIC_BASE_URL.
PASSWORD_RESET_PATH = "/reset-password"  # noqa: S105 - a path
EMAIL_VERIFY_PATH = "/verify-email"


@dataclass(frozen=True)
class Mail:
    kind: MailKind
    to: str = field(repr=False)
    subject: str
    text: str = field(repr=False)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_message(self, sender: str) -> EmailMessage:
        """The RFC 5322 message, with a Message-ID that carries `id` (to find it in a catcher)."""
        message = EmailMessage()
        message["From"] = sender
        message["To"] = self.to
        message["Subject"] = self.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
        message["Message-ID"] = make_msgid(idstring=self.id, domain=domain)
        # 7bit keeps the link on one line (quoted-printable would fold it); fine up to 998.
        message.set_content(self.text, cte="7bit" if self.text.isascii() else "quoted-printable")
        return message


def link(settings: Settings, path: str, token: str) -> str:
    """`PUBLIC_BASE_URL/path#token=...` (fragment: see the module docstring)."""
    return f"{settings.public_base_url}{path}#token={quote(token, safe='')}"


def _duration(seconds: int) -> str:
    if seconds % 86_400 == 0:
        count, unit = seconds // 86_400, "day"
    elif seconds % 3600 == 0:
        count, unit = seconds // 3600, "hour"
    elif seconds % 60 == 0:
        count, unit = seconds // 60, "minute"
    else:
        count, unit = seconds, "second"
    return f"{count} {unit}{'' if count == 1 else 's'}"


def password_reset_mail(settings: Settings, to: str, token: str) -> Mail:
    """The mail answering `POST /auth/password/forgot` for an existing account."""
    valid_for = _duration(settings.password_reset_ttl_seconds)
    text = (
        "Someone (hopefully you) asked to reset the password of this account.\n\n"
        f"Choose a new password here (the link works once, for {valid_for}):\n\n"
        f"{link(settings, PASSWORD_RESET_PATH, token)}\n\n"
        "If you did not ask for this, ignore this mail: your password stays as it is.\n"
    )
    return Mail("password_reset", to, "Reset your password", text)


def email_verify_mail(settings: Settings, to: str, token: str) -> Mail:
    """The mail answering `POST /auth/verify/request`."""
    valid_for = _duration(settings.email_verify_ttl_seconds)
    text = (
        "Please confirm that this address belongs to your account.\n\n"
        f"Open this link to verify it (it works once, for {valid_for}):\n\n"
        f"{link(settings, EMAIL_VERIFY_PATH, token)}\n\n"
        "If you did not create an account, ignore this mail.\n"
    )
    return Mail("email_verify", to, "Verify your email address", text)
