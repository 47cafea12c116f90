"""The one interface of the output side (after Frigate's ``comms/base_communicator.py``): a sink
receives what the daemon publishes. The MQTT publisher, stdout and the latest-page view are
sinks; :class:`edge_ocr.daemon.delivery.Delivery` feeds them all."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_ocr.http.prometheus import Metric

if TYPE_CHECKING:
    from edge_ocr.daemon.outbox import Outbox
    from edge_ocr.page.result import PageResult


class Sink:
    """Something that receives what the daemon publishes. Every method has a do-nothing default,
    so a sink implements only what it cares about."""

    reads_outbox = False  # True: it sends from the outbox, so messages must be stored there

    def start(self) -> None:
        """Begin (connect, start threads)."""

    def deliver(self, page: PageResult, stored: list[dict]) -> None:
        """A new page: ``stored`` are its messages as numbered (page first, then its events)."""

    def send_health(self, doc: dict) -> None:
        """The health document changed (or is due again)."""

    def use_outbox(self, outbox: Outbox) -> None:
        """The outbox was replaced (the durable one back after an in-memory stand-in)."""

    def wake(self) -> None:
        """Messages are waiting in the outbox (stored after the disk came back)."""

    def health_due(self) -> bool:
        """True once after something health counts went wrong here (a message replaced, refused
        or dropped): health goes out now, not at its next turn."""
        return False

    def limit(self) -> int | None:
        """The largest message (PUBLISH packet bytes) it can send now; None: no limit."""
        return None

    def status(self) -> dict:
        return {}

    def faults(self) -> dict[str, str]:
        return {}

    def metrics(self) -> list[Metric]:
        return []

    def stop(self, drain_timeout_s: float) -> int:
        """End; returns how many messages are left for the next run."""
        return 0
