"""rpm's NDB package database (``Packages.db``, SUSE and openSUSE since 15.3 / Leap 15.3).

The layout, as rpm's ``lib/backend/ndb/rpmpkg.c`` writes it (all integers little-endian):

- a 32-byte file header: magic ``RpmP``, format version (0), generation, the number of
  4096-byte slot pages, the next package index;
- slot pages: 16-byte slots (magic ``Slot``, package index, offset and length of the
  package's blob in 16-byte blocks), starting right after the file header; a slot whose
  offset is 0 is free (a removed package);
- blobs, each in whole blocks after the slot pages: a head (magic ``BlbS``, package
  index, generation, length), the package's header blob (the same bytes as a row of
  rpmdb.sqlite's ``Packages`` table), zeros up to a whole block, and a tail ending the
  last block (Adler-32, length, magic ``BlbE``).

Every count and offset is checked against the file's size; a slot or blob that fails a
check is skipped, not trusted.
"""

from __future__ import annotations

import struct

_MAGIC = 0x506D7052  # "RpmP"
_SLOT_MAGIC = 0x746F6C53  # "Slot"
_HEAD_MAGIC = 0x53626C42  # "BlbS"
_TAIL_MAGIC = 0x45626C42  # "BlbE"
_HEADER_SIZE = 32
_PAGE = 4096
_SLOT = 16
_BLOCK = 16
_HEAD = 16
_TAIL = 12


def is_ndb(head: bytes) -> bool:
    return len(head) >= 8 and struct.unpack_from("<II", head) == (_MAGIC, 0)


def ndb_blobs(data: bytes, max_blob: int) -> list[bytes]:
    """The package header blobs of an NDB ``Packages.db``, in slot order.

    Raises ValueError when ``data`` is not an NDB package database. Blobs longer than
    ``max_blob`` bytes are skipped.
    """
    if len(data) < _HEADER_SIZE:
        raise ValueError("too short for an rpm NDB database")
    magic, version, _generation, npages = struct.unpack_from("<4I", data, 0)
    if magic != _MAGIC:
        raise ValueError("not an rpm NDB database (no RpmP magic)")
    if version != 0:
        raise ValueError(f"rpm NDB format version {version} (only 0 is known)")
    if npages < 1 or npages * _PAGE > len(data):
        raise ValueError(f"rpm NDB database declares {npages} slot pages: more than the file holds")
    first_block = npages * _PAGE // _BLOCK  # blobs start after the slot pages
    blobs, seen = [], set()
    for at in range(_HEADER_SIZE, npages * _PAGE, _SLOT):
        slot_magic, index, offset, count = struct.unpack_from("<4I", data, at)
        if slot_magic != _SLOT_MAGIC:
            raise ValueError(f"rpm NDB slot at byte {at} has no Slot magic")
        if not offset:
            continue  # a free slot
        blob = _blob(data, index, offset, count, first_block, max_blob)
        if blob is not None and index not in seen:
            seen.add(index)
            blobs.append(blob)
    return blobs


def _blob(data: bytes, index: int, offset: int, count: int, first_block: int,
          max_blob: int) -> bytes | None:
    """One package's blob, or None when its slot or blob is not consistent."""
    start, end = offset * _BLOCK, (offset + count) * _BLOCK
    if not index or offset < first_block or count * _BLOCK < _HEAD + _TAIL or end > len(data):
        return None
    head_magic, head_index, _generation, length = struct.unpack_from("<4I", data, start)
    if head_magic != _HEAD_MAGIC or head_index != index or length > max_blob:
        return None
    if count != (_HEAD + length + _TAIL + _BLOCK - 1) // _BLOCK:
        return None
    # zeros pad the blob to whole blocks; the tail ends the last block
    _adler, tail_length, tail_magic = struct.unpack_from("<3I", data, end - _TAIL)
    if tail_magic != _TAIL_MAGIC or tail_length != length:
        return None
    return data[start + _HEAD : start + _HEAD + length]
