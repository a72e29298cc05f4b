"""Ray's environment: whether it is installed, and what it reads when it is imported."""

from __future__ import annotations

import importlib.util
import os
import secrets
from pathlib import Path

__all__ = ["prepare_environment", "require_ray"]

#: What a private local instance sets: clusters off, so Ray keeps 127.0.0.1 as its address.
_PRIVATE = "0"


def require_ray() -> None:
    """Raise `ImportError` when Ray is not installed (without importing it)."""
    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        found = False
    if not found:
        raise ImportError("No module named 'ray'")


def prepare_environment(*, local: bool) -> None:
    """Set what Ray reads when it is imported (so: before the first `import ray`).

    Usage statistics are off unless the user turned them on. For a `local` node of our own,
    the node and this driver authenticate with a shared token: the user's settings or default
    token file when there are any, else a fresh token for this process. Joining a cluster, the
    user's settings are left as they are: they must match the cluster's (`RAY_AUTH_MODE`,
    `RAY_AUTH_TOKEN` or `RAY_AUTH_TOKEN_PATH`).

    A `local` node and its driver and workers listen on 127.0.0.1 only: Ray replaces a
    `--node-ip-address` of 127.0.0.1 with the machine's address, and so listens on every
    interface, unless clusters are off (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, the default on
    macOS and Windows; on Linux too, it only refuses other nodes, which a private one has none of).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not local:
        if os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == _PRIVATE:
            del os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]  # ours, from a local run before
        return
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = _PRIVATE
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    default_file = Path.home() / ".ray" / "auth_token"
    if not ({"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & os.environ.keys() or default_file.exists()):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
