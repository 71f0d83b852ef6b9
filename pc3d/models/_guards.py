"""The systems' side of the NaN guard (:class:`pc3d.callbacks.nan_guard.NaNGuard`): skipping a flagged batch.

Under ``nan_policy=skip`` the guard checks each training batch before ``training_step`` and, when
an input tensor holds NaN / inf, flags the batch on the system (``system._pc3d_skip_batch``, a
dict). Every system's ``training_step`` starts with::

    if skip_flagged_batch(self, n_steps=...):
        return None

so that a poisoned batch runs no forward pass (no BatchNorm statistics, no logged NaN, no RNG
draw) and no optimizer step. ``n_steps`` is the number of optimizer steps the batch would have
taken (1 for automatic optimization; ``n_critic + 1`` for a WGAN-GP iteration); the guard adds it
to ``train/skipped_steps``. Without the guard (or with finite inputs) nothing is flagged and this
is a read of one attribute: the training is unchanged, bit for bit.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SKIP_FLAG", "skip_flagged_batch"]

#: Attribute of the system under which the guard flags the current batch (a dict; absent otherwise).
SKIP_FLAG = "_pc3d_skip_batch"


def skip_flagged_batch(system: Any, n_steps: int = 1) -> bool:
    """True when the current batch was flagged to be skipped (non-finite input under ``nan_policy=skip``).

    Records ``n_steps``, the optimizer steps the batch would have taken, in the flag for the guard
    to count. Read-only otherwise.
    """
    flag = system.__dict__.get(SKIP_FLAG)
    if not flag:
        return False
    flag["steps"] = int(n_steps)
    return True
