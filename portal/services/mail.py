"""Outgoing mail over the configured SMTP relay (``SMTP_HOST``); none without one."""

from __future__ import annotations

import smtplib
import threading
from email.message import EmailMessage

from flask import current_app


def mail_configured() -> bool:
    """True when an SMTP relay is set, so the portal can send mail."""
    return bool(current_app.config.get("SMTP_HOST"))


def send_mail(address: str, subject: str, body: str) -> bool:
    """Send one plain-text message; True when the relay took it.

    A relay that is down or refuses the message is logged, not raised: the caller
    decides what the person sees.
    """
    return send_mails([(address, subject, body)])


def send_mails(messages: list[tuple[str, str, str]]) -> bool:
    """Send (address, subject, body) messages over one connection; True when the relay
    took them all. Nothing is sent without a relay; a failure is logged, not raised."""
    cfg = current_app.config
    if not messages or not mail_configured():
        return False
    try:
        with smtplib.SMTP(cfg["SMTP_HOST"], int(cfg.get("SMTP_PORT", 25)), timeout=15) as smtp:
            if cfg.get("SMTP_USERNAME"):
                smtp.starttls()
                smtp.login(cfg["SMTP_USERNAME"], cfg.get("SMTP_PASSWORD", ""))
            for address, subject, body in messages:
                smtp.send_message(_message(cfg, address, subject, body))
    except (OSError, smtplib.SMTPException) as exc:
        addresses = ", ".join(address for address, _, _ in messages)
        current_app.logger.warning("could not send mail to %s: %s", addresses, exc)
        return False
    return True


def _message(cfg, address: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = cfg.get("MAIL_FROM", "assay@localhost")
    message["To"] = address
    message["Subject"] = f"[Assay] {subject}"
    message.set_content(body)
    return message


def send_mail_later(address: str, subject: str, body: str) -> None:
    """Send one message from a background thread, so the caller answers as fast whether or
    not there was anything to send (a reset request must not reveal that an account exists)."""
    app = current_app._get_current_object()

    def send() -> None:
        with app.app_context():
            send_mail(address, subject, body)

    threading.Thread(target=send, name="assay-mail", daemon=True).start()
