"""The weight store: fetch artifacts into a verified cache, from local folders, mirrors or upstream sources.

Re-exports only; each part lives in its own module:

| module | what it does |
|---|---|
| `zoo.store.core` | `Store`: the cache root, lookups, and a fetch from cache, `ZOO_WEIGHTS_PATH` or download |
| `zoo.store.downloads` | trying each source, verifying the bytes, installing them with their record |
| `zoo.store.recovery` | re-hashing, quarantining damaged files, fetching once more |
| `zoo.store.derived` | files made from others (conversions), remade when their origin changes |
| `zoo.store.cache` | the on-disk layout, records, temporary files (`zoo._atomic` writes them) |
| `zoo.store.sources` | one class per URL scheme (`https:`, `hf:`, `file:`, `pkg:`, and those plugins declare) |
| `zoo.store.github` | GitHub repo snapshots for torch.hub |
"""

from __future__ import annotations

from zoo.store.cache import CacheEntry, digest_matches
from zoo.store.core import Store, get_store
from zoo.store.github import repo_snapshot

__all__ = ["CacheEntry", "Store", "digest_matches", "get_store", "repo_snapshot"]
