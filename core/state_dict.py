"""State-dict keys: the one place that undoes ``nn.DataParallel``'s ``module.`` prefix."""
from __future__ import annotations

from typing import Any, Mapping

PREFIX = "module."


def strip_module_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The same mapping with a leading ``module.`` (added by ``nn.DataParallel`` to every key) dropped
    from each key that has it; other keys and all values are unchanged."""
    return {(k[len(PREFIX):] if k.startswith(PREFIX) else k): v for k, v in state_dict.items()}
