"""The checksum of a set of records, as the server keeps it and any client computes it.

- a record's hash is the first 8 bytes, read as a big-endian unsigned integer, of
  SHA-256 over its `id`, a newline, and its `modified_at` exactly as served (UTF-8);
- a set's checksum is the sum of its records' hashes modulo 2^64, written as 16
  lower-case hex digits;
- a record's bucket, of N (a power of two up to 65,536), is the first 2 bytes of
  SHA-256 over its `id` (big-endian), shifted right by 16 - log2(N) bits.

Standard library only: the server's summaries (`feed/summary.py`) and the client's
`verify` (`client/`) share these functions, and the client must not import the server.
"""

from __future__ import annotations

import hashlib

MAX_BUCKETS = 65_536
BUCKET_BITS = 16
MOD = 1 << 64


def record_hash(record_id: str, modified_at: str) -> int:
    """The 64-bit hash of one record version."""
    digest = hashlib.sha256(f"{record_id}\n{modified_at}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def id_bucket(record_id: str) -> int:
    """The record's bucket of 65,536; of N, this shifted right by 16 - log2(N)."""
    return int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:2], "big")


def bucket_of(record_id: str, buckets: int) -> int:
    """The record's bucket of `buckets` (a power of two up to 65,536)."""
    return id_bucket(record_id) >> (BUCKET_BITS - (buckets.bit_length() - 1))


def checksum_text(value: int) -> str:
    """A sum of hashes as the API writes it: modulo 2^64, 16 lower-case hex digits."""
    return f"{value % MOD:016x}"
