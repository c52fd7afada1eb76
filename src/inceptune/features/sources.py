"""Feature sources: which Inception-v3 block's output the head sees, and how it is pooled over space.

A source is one block from mixed5 to mixed10 with average, max, or both
poolings side by side (avg then max). Every source is cached as separate
kinds (`avg-pool-mixed8`, `max-pool-mixed8`; mixed10's average is the
classic head's `avg-pool`), all written by the same single backbone pass,
so the recipe search can score any source without running the base again.
No Keras here: settings and the search use these facts.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE_BLOCKS = ("mixed5", "mixed6", "mixed7", "mixed8", "mixed9", "mixed10")
SOURCE_POOLINGS = ("avg", "max", "avgmax")
POOLED = "avg-pool"  # global average of mixed10: the classic recipe's head input
DEFAULT_BLOCK, DEFAULT_POOLING = "mixed10", "avg"


def pooled_kind(block: str = DEFAULT_BLOCK, pooling: str = DEFAULT_POOLING) -> str:
    """Cache kind of a block's output pooled over space (mixed10 + avg is the head's POOLED)."""
    return POOLED if (block, pooling) == (DEFAULT_BLOCK, DEFAULT_POOLING) else f"{pooling}-pool-{block}"


@dataclass(frozen=True)
class Source:
    block: str = DEFAULT_BLOCK
    pooling: str = DEFAULT_POOLING  # avg, max or avgmax

    @property
    def kinds(self) -> tuple[str, ...]:
        """The stored cache kinds whose features, side by side, are this source's."""
        poolings = ("avg", "max") if self.pooling == "avgmax" else (self.pooling,)
        return tuple(pooled_kind(self.block, p) for p in poolings)

    @property
    def kind(self) -> str:
        """One name for the source's features (what training data and the run record name)."""
        return self.kinds[0] if len(self.kinds) == 1 else f"avgmax-pool-{self.block}"

    def __str__(self) -> str:
        return f"{self.block} ({self.pooling} pooling)"


def parts_of(kind: str) -> tuple[str, ...]:
    """The stored kinds a feature kind reads: itself, or avg and max side by side for an avgmax source."""
    if kind.startswith("avgmax-pool-"):
        return Source(kind.removeprefix("avgmax-pool-"), "avgmax").kinds
    return (kind,)


ALL_SOURCES = tuple(Source(b, p) for b in SOURCE_BLOCKS for p in SOURCE_POOLINGS)
SEARCH_KINDS = tuple(dict.fromkeys(k for s in ALL_SOURCES for k in s.kinds))  # what one pass caches for the search
