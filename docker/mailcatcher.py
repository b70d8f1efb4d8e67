"""A local mail catcher for `make up`: an SMTP server that keeps every mail in memory and a page
listing them, so password-reset and verification links can be followed in development.

Standard library only (it runs in the plain `python` image). Never for production: it accepts
mail from anyone on the compose network and shows it to anyone who reaches its page, which
compose publishes on 127.0.0.1 only.

    SMTP on :1025 (the app's SMTP_URL=smtp://mail:1025), the page on :8025.
"""

from __future__ import annotations

import asyncore  # deprecated, but in 3.11's standard library: no install in the image
import email
import email.policy
import html
import json
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import smtpd

KEPT = 100  # the newest mails; older ones are dropped
mails: list[dict[str, str]] = []
lock = threading.Lock()


class Catcher(smtpd.SMTPServer):
    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):  # type: ignore[no-untyped-def]
        raw = data if isinstance(data, bytes) else data.encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        body = message.get_body(("plain",))
        with lock:
            mails.insert(
                0,
                {
                    "to": ", ".join(rcpttos),
                    "subject": str(message.get("Subject", "")),
                    "date": str(message.get("Date", "")),
                    "text": body.get_content() if body is not None else "",
                },
            )
            del mails[KEPT:]
        print(f"caught a mail for {len(rcpttos)} recipient(s)", flush=True)


class Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        with lock:
            shown = list(mails)
        if self.path.startswith("/api/mails"):
            body, kind = json.dumps(shown).encode(), "application/json"
        else:
            items = "".join(
                f"<h3>{html.escape(m['subject'])}</h3><p>to {html.escape(m['to'])}, "
                f"{html.escape(m['date'])}</p><pre>{html.escape(m['text'])}</pre><hr>"
                for m in shown
            )
            body = f"<h1>Mail catcher</h1>{items or '<p>no mail yet</p>'}".encode()
            kind = "text/html; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet: the page holds tokens, its requests need no log


if __name__ == "__main__":
    Catcher(("0.0.0.0", 1025), None)
    page = ThreadingHTTPServer(("0.0.0.0", 8025), Page)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    print("mail catcher: SMTP on 1025, page on 8025", flush=True)
    asyncore.loop()
