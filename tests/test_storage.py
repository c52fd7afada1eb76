"""Locations of photos and the feature cache: paths and file:// URLs open; other URLs get one sentence."""

from __future__ import annotations

import pytest

from inceptune.errors import UserError
from inceptune.features.cache import FeatureCache
from inceptune.storage import local_path


def test_a_path_stays_and_a_file_url_becomes_its_path(tmp_path):
    assert local_path(str(tmp_path)) == str(tmp_path)
    assert local_path(tmp_path.as_uri()) == str(tmp_path)
    cache = FeatureCache((tmp_path / "store").as_uri(), {"backbone": "x"})  # a store given as a URL
    cache.put("k", "abc", [1.0, 2.0])
    assert cache.dir.parent == tmp_path / "store"
    assert list(FeatureCache(tmp_path / "store", {"backbone": "x"}).get("k", "abc")) == [1.0, 2.0]


@pytest.mark.parametrize("url", ["s3://bucket/photos", "memory://photos"])
def test_other_urls_are_refused_in_one_sentence(url):
    with pytest.raises(UserError, match="mount the .* storage .* and give its path"):
        local_path(url)
