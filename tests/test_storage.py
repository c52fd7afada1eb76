"""Locations of photos and the feature cache: paths and file:// URLs are paths; an object store is read
through fsspec (tests/test_object_store.py), and a command that needs files says so in one sentence."""

from __future__ import annotations

import pytest

from inceptune.errors import UserError
from inceptune.features.cache import FeatureCache
from inceptune.storage import is_remote, local_path


def test_a_path_stays_and_a_file_url_becomes_its_path(tmp_path):
    assert local_path(str(tmp_path)) == str(tmp_path)
    assert local_path(tmp_path.as_uri()) == str(tmp_path)
    cache = FeatureCache((tmp_path / "store").as_uri(), {"backbone": "x"})  # a store given as a URL
    cache.put("k", "abc", [1.0, 2.0])
    assert cache.dir.parent == tmp_path / "store"
    assert list(FeatureCache(tmp_path / "store", {"backbone": "x"}).get("k", "abc")) == [1.0, 2.0]


@pytest.mark.parametrize("url", ["s3://bucket/photos", "memory://photos"])
def test_a_command_that_needs_files_refuses_an_object_store_in_one_sentence(url):
    assert is_remote(url) and not is_remote("file:///x") and not is_remote("/x")
    with pytest.raises(UserError, match=r"audit reads local paths and file:// URLs only; copy it from .*:// first"):
        local_path(url, "audit")


def test_files_written_atomically_get_the_users_umask_not_mkstemps_0600(tmp_path):
    import os

    from inceptune.atomic import UMASK, atomic_write_json, atomic_write_text

    atomic_write_text(tmp_path / "a.txt", "a")
    atomic_write_json(tmp_path / "b.json", {"b": 1})
    for name in ("a.txt", "b.json"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o666 & ~UMASK
