"""Content-defined chunking of large files with FastCDC.

Cut points depend on the bytes around them, not on offsets, so inserting or
changing a region of a file only changes the chunks that overlap it: a
checkpoint with 1% changed stores about 1% new bytes, plus about one average chunk
per changed region.

The file is read in bounded blocks rather than memory-mapped: a file truncated
by another process while mapped kills the reader with SIGBUS, and a block
reader keeps memory flat whatever the file size.  Chunking a block gives
exactly the cuts that chunking the whole file would, as long as each accepted
chunk had ``MAX_SIZE`` bytes (or the end of the file) after its start in the
block, because FastCDC never looks further ahead than that.
"""

from __future__ import annotations

from typing import BinaryIO, Iterator

KiB = 1024
MiB = 1024 * KiB

# An edit costs its own bytes plus about one average chunk of neighbouring bytes (the
# chunks it overlaps at either end), so the average sets the cost of scattered edits:
# 1% of a 1 GiB file changed in 100 runs of ~107 KB stores about 2% new bytes at
# 64 KiB and 4.6% at 256 KiB (docs/benchmarks.md).  Smaller still would mean more
# objects (already 16k per GiB, each a file in a local store and a request to a
# remote) for little gain.  fastcdc only uses round(log2(avg)), so AVG_SIZE is a
# power of two.  These only affect new writes: a stored file keeps the chunk list it
# was written with, whatever its sizes.
MIN_SIZE = 16 * KiB
AVG_SIZE = 64 * KiB
MAX_SIZE = 256 * KiB
BLOCK_SIZE = 16 * MiB


def iter_chunks(
    f: BinaryIO,
    *,
    min_size: int = MIN_SIZE,
    avg_size: int = AVG_SIZE,
    max_size: int = MAX_SIZE,
    block_size: int = BLOCK_SIZE,
) -> Iterator[bytes]:
    """Yield the content of ``f`` (from its current position) cut into chunks."""
    # Imported here: fastcdc pulls in click, which `import cairn.cas` should not pay for.
    from fastcdc import fastcdc

    if block_size < 2 * max_size:
        raise ValueError("block_size must be at least twice max_size")
    carry = b""
    while True:
        block = f.read(block_size - len(carry))
        eof = not block
        buf = carry + block if carry else block
        if not buf:
            return
        # Keep reading until a full block or EOF, so short reads (pipes) stay correct.
        while not eof and len(buf) < block_size:
            more = f.read(block_size - len(buf))
            if not more:
                eof = True
                break
            buf += more
        carry = b""
        end = len(buf)
        for chunk in fastcdc(buf, min_size, avg_size, max_size, fat=True):
            if not eof and chunk.offset + max_size > end:
                carry = buf[chunk.offset:]  # its cut may depend on bytes not read yet
                break
            yield chunk.data
        if eof:
            return
