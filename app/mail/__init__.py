"""Mail: account messages (password reset, email verification) sent off the request path.

    mailer.enqueue(password_reset_mail(settings, user.email, token))   # returns at once

`messages.py` builds them (links under PUBLIC_BASE_URL), `transports.py` delivers one (SMTP with
STARTTLS/implicit TLS and the rotating SMTP_PASSWORD, an outbox directory of .eml files, or
nowhere), `mailer.py` queues them and sends with retries from one background task that the app's
lifespan starts and drains, `setup.py` picks the transport and says what startup refuses.
Below the API layer: no HTTP here (docs/mail.md).
"""

from app.mail.mailer import Mailer, MailObserver
from app.mail.messages import Mail, MailKind, email_verify_mail, password_reset_mail
from app.mail.setup import create_mailer, mail_problems

__all__ = [
    "Mail",
    "MailKind",
    "MailObserver",
    "Mailer",
    "create_mailer",
    "email_verify_mail",
    "mail_problems",
    "password_reset_mail",
]
