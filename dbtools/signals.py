"""Signals a project can connect to: notify someone, copy a backup elsewhere.

    from django.dispatch import receiver
    from dbtools.signals import backup_finished

    @receiver(backup_finished)
    def tell_the_team(sender, result, using, **kwargs):
        notify(f"{result.path.name}: {result.rows:,} rows")

Both are sent after the work is done and committed, never for a dry run,
a failure, or the scratch database of a replay. A receiver that raises does
not undo anything: its error becomes a warning the command prints.
"""

from __future__ import annotations

from django.dispatch import Signal

# kwargs: result (dbtools.backup.BackupResult), using (the database alias)
backup_finished = Signal()
# kwargs: result (dbtools.restore.RestoreResult), using (the database alias)
restore_finished = Signal()


def announce(signal: Signal, sender: object, **kwargs: object) -> list[str]:
    """Send `signal` to every receiver; their failures come back as warnings."""
    name = "backup_finished" if signal is backup_finished else "restore_finished"
    return [
        f"A {name} receiver ({getattr(receiver, '__qualname__', receiver)}) failed: "
        f"{type(error).__name__}: {error}. The {name.split('_')[0]} itself is complete."
        for receiver, error in signal.send_robust(sender, **kwargs)
        if isinstance(error, BaseException)
    ]
