"""Helpers for the mail tests: a real SMTP server (aiosmtpd) on 127.0.0.1, a random port."""

from __future__ import annotations

import email
import email.policy
import re
import threading

from aiosmtpd.controller import Controller


class SmtpSink:
    """An aiosmtpd handler that keeps what it receives, or refuses every recipient with a 550."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.attempts = 0  # RCPT commands seen, refused or not
        self.refuse = False
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd API)
        with self._lock:
            self.attempts += 1
        if self.refuse:
            return "550 5.7.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str):
        return [m for m in self.messages if m["To"] == address]

    @staticmethod
    def text(message) -> str:
        return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")

    def link(self, message, marker: str) -> str:
        found = [link for link in re.findall(r"https?://\S+", self.text(message)) if marker in link]
        assert found, f"pas de lien {marker!r} dans le mail"
        return found[0]


class _RandomPortController(Controller):
    """aiosmtpd's Controller bound to port 0: the system picks a free port, read back once bound."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def start_smtp() -> tuple[SmtpSink, Controller]:
    sink = SmtpSink()
    controller = _RandomPortController(sink, hostname="127.0.0.1", port=0)
    controller.start()
    return sink, controller
