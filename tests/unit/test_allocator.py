"""glibc's allocator thresholds: set once per process where the C library is glibc."""

from __future__ import annotations

import platform

import pytest

from foundation import allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_both_thresholds_once():
    assert allocator.tune() is True
    assert allocator.tune() is True and allocator.tune.cache_info().currsize == 1  # the second call sets nothing
