"""The S3 adapter against the real test S3."""

import hashlib
import io
import os
import tracemalloc

import pytest

from portal import storage


def test_put_stream_hashes_and_stores_in_parts(app):
    data = os.urandom(storage.PART_SIZE + 12345)  # two parts
    key = storage.package_key(1, 2, 3, storage.new_upload_id())
    size, sha = storage.put_stream(key, io.BytesIO(data), max_bytes=len(data))
    assert (size, sha) == (len(data), hashlib.sha256(data).hexdigest())
    assert storage.head(key).size == len(data)
    assert storage.get_bytes(key, 10) == data[:10]
    assert storage.get_bytes(key, 5, offset=100) == data[100:105]
    storage.delete(key)
    assert storage.head(key) is None


def test_put_stream_refuses_past_the_limit_and_keeps_nothing(app):
    key = storage.package_key(1, 2, 3, storage.new_upload_id())
    with pytest.raises(storage.TooLarge):
        storage.put_stream(key, io.BytesIO(b"x" * (storage.PART_SIZE + 10)),
                           max_bytes=storage.PART_SIZE)
    assert storage.head(key) is None
    assert [o.key for o in storage.list_keys(key.rsplit("/", 1)[0])] == []


class _Endless:
    """A stream that makes its bytes on the fly, as an upload arrives."""

    def __init__(self, size):
        self.left = size

    def read(self, n=-1):
        n = min(self.left, 256 * 1024 if n < 0 else n)
        self.left -= n
        return b"\0" * n


def test_memory_stays_bounded_while_streaming(app):
    size = 12 * storage.PART_SIZE + 1
    key = storage.package_key(1, 2, 3, storage.new_upload_id())
    tracemalloc.start()
    try:
        storage.put_stream(key, _Endless(size), max_bytes=size)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * storage.PART_SIZE < size / 2  # a few parts, whatever the size
    storage.delete(key)


def test_fetch_to_file_and_stream(app, tmp_path):
    key = "scans/9/9/9/9/summary.json"
    storage.put_bytes(key, b'{"a": 1}', "application/json")
    seen = []
    size, sha = storage.fetch_to_file(key, tmp_path / "out", progress=lambda d, t: seen.append((d, t)))
    assert (tmp_path / "out").read_bytes() == b'{"a": 1}'
    assert sha == hashlib.sha256(b'{"a": 1}').hexdigest() and seen[-1] == (8, 8)
    with storage.open_stream(key) as chunks:
        assert b"".join(chunks) == b'{"a": 1}'
    assert [o.key for o in storage.list_keys("scans/9/")] == [key]
    storage.delete(key)
    storage.delete(key)  # missing is fine


def test_keys_are_built_from_ids_only():
    assert storage.package_key(1, 2, 3, "ab") == "packages/1/2/3/ab/package"
    assert storage.report_key(1, 2, 3, 4) == "scans/1/2/3/4/report.xlsx"
    with pytest.raises(ValueError):
        storage.package_key("../x", 2, 3, "ab")
