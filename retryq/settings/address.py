"""Whether a configured queue address is a URL or a file path: the stores' one test (a path is
resolved relative to the configuration file that names it; a URL, whatever its scheme, is kept as it is)."""

from __future__ import annotations

__all__ = ["looks_like_url"]

from ..stores.address import looks_like_url
