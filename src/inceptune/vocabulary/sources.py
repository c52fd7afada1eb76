"""Feature sources: which Inception-v3 blocks' outputs the head sees, and how they are pooled over space.

A source is one block from mixed5 to mixed10, or two or three of them side
by side (`mixed8+mixed10`, shallow first), each pooled by average, max, or
both (avg then max). Every block's poolings are cached as separate kinds
(`avg-pool-mixed8`, `max-pool-mixed8`; mixed10's average is the classic
head's `avg-pool`), all written by the same single backbone pass, so the
recipe search can score any source without running the base again. No
Keras here: settings and the search use these facts.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE_BLOCKS = ("mixed5", "mixed6", "mixed7", "mixed8", "mixed9", "mixed10")
SOURCE_POOLINGS = ("avg", "max", "avgmax")
POOLED = "avg-pool"  # global average of mixed10: the classic recipe's head input
DEFAULT_BLOCK, DEFAULT_POOLING = "mixed10", "avg"
MAX_BLOCKS = 3  # in one concatenated source


def pooled_kind(block: str = DEFAULT_BLOCK, pooling: str = DEFAULT_POOLING) -> str:
    """Cache kind of a block's output pooled over space (mixed10 + avg is the head's POOLED)."""
    return POOLED if (block, pooling) == (DEFAULT_BLOCK, DEFAULT_POOLING) else f"{pooling}-pool-{block}"


def source_blocks(block: str) -> tuple[str, ...]:
    """`mixed8+mixed10` -> ("mixed8", "mixed10"); ValueError unless 1 to 3 distinct source blocks."""
    blocks = tuple(block.split("+"))
    if not 1 <= len(blocks) <= MAX_BLOCKS or len(set(blocks)) != len(blocks) or \
            any(b not in SOURCE_BLOCKS for b in blocks):
        raise ValueError(f"a feature block is one of {', '.join(SOURCE_BLOCKS)}, or two or three of them joined "
                         f"by + (mixed8+mixed10); got {block!r}")
    return tuple(sorted(blocks, key=SOURCE_BLOCKS.index))


def joined(blocks) -> str:
    """The setting's spelling of blocks: shallow first, joined by +."""
    return "+".join(sorted(blocks, key=SOURCE_BLOCKS.index))


@dataclass(frozen=True)
class Source:
    block: str = DEFAULT_BLOCK  # one block, or two or three joined by +
    pooling: str = DEFAULT_POOLING  # avg, max or avgmax

    @property
    def blocks(self) -> tuple[str, ...]:
        return source_blocks(self.block)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The stored cache kinds whose features, side by side (block by block, avg then max), are this
        source's."""
        poolings = ("avg", "max") if self.pooling == "avgmax" else (self.pooling,)
        return tuple(pooled_kind(b, p) for b in self.blocks for p in poolings)

    @property
    def kind(self) -> str:
        """One name for the source's features (what training data and the run record name)."""
        return self.kinds[0] if len(self.kinds) == 1 else f"{self.pooling}-pool-{joined(self.blocks)}"

    def __str__(self) -> str:
        return f"{self.block} ({self.pooling} pooling)"


def parts_of(kind: str) -> tuple[str, ...]:
    """The stored kinds a feature kind reads: itself, or several side by side for a composed source."""
    pooling, _, block = kind.partition("-pool-")
    if pooling == "avgmax" or "+" in block:
        return Source(block, pooling).kinds
    return (kind,)


ALL_SOURCES = tuple(Source(b, p) for b in SOURCE_BLOCKS for p in SOURCE_POOLINGS)
SEARCH_KINDS = tuple(dict.fromkeys(k for s in ALL_SOURCES for k in s.kinds))  # what one pass caches for the search
