"""The worker of `flask worker`: an RQ worker that also runs the outbox sweep and releases the
places held by abandoned démarches periodically.

The sweep runs in the worker's own process between jobs (RQ's maintenance hook), so it
keeps running even when Redis lost every scheduled job (Redis keeps nothing on disk).
A plain `rq worker` runs the same jobs; then run `flask mail flush` and
`flask reservations expire-holds` from cron instead.
"""

from __future__ import annotations

import logging
from importlib import import_module
from time import monotonic

from rq import Worker

log = logging.getLogger(__name__)


class SweepingWorker(Worker):
    def __init__(self, *args, sweep_interval: int = 60, periodic: dict[str, int] | None = None, **kwargs):
        """`periodic`: {"module:function": seconds} — per-commune work queued as jobs every so often
        (pièces justificatives' expiry notices and retention, billing's reminders and debits)."""
        self.sweep_interval = max(1, int(sweep_interval))
        self.periodic = {target: max(1, int(every)) for target, every in (periodic or {}).items()}
        self._last_sweep: float | None = None
        self._last_periodic: dict[str, float] = {}
        super().__init__(*args, **kwargs)

    @property
    def dequeue_timeout(self) -> int:  # wake up at least once per sweep interval
        return max(1, min(super().dequeue_timeout, self.sweep_interval))

    def _sweep_due(self) -> bool:
        return self._last_sweep is None or monotonic() - self._last_sweep >= self.sweep_interval

    @property
    def should_run_maintenance_tasks(self) -> bool:
        return super().should_run_maintenance_tasks or self._sweep_due()

    def run_maintenance_tasks(self) -> None:
        if super().should_run_maintenance_tasks:
            super().run_maintenance_tasks()
        if self._sweep_due():
            self._last_sweep = monotonic()
            self.sweep()

    def sweep(self) -> None:
        from extensions import db
        from jobs.holds import expire_everywhere
        from jobs.mail import sweep

        try:
            try:
                count = sweep()
                if count:
                    log.info("sweep: %d mail(s) handed over again", count)
            except Exception:  # noqa: BLE001 - the next sweep tries again; the worker keeps working
                log.exception("sweep failed")
            try:
                expired = expire_everywhere()
                if expired:
                    log.info("sweep: %d abandoned démarche(s) released", expired)
            except Exception:  # noqa: BLE001
                log.exception("holds sweep failed")
            for target, every in self.periodic.items():
                last = self._last_periodic.get(target)
                if last is not None and monotonic() - last < every:
                    continue
                self._last_periodic[target] = monotonic()
                try:
                    module, function = target.split(":")
                    getattr(import_module(module), function)()
                except Exception:  # noqa: BLE001
                    log.exception("periodic %s failed", target)
        finally:  # jobs run in forked processes: leave them no inherited database connection
            db.session.remove()
            db.engine.dispose()
