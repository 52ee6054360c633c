import pytest

from benchmark.config.epsilons import parse_epsilons
from benchmark.config.profiles import get_profile
from benchmark.config.run_config import config_hash
from foundation.errors import BenchError


def test_epsilon_lists_and_ranges():
    assert parse_epsilons("0.3,0.1") == (0.1, 0.3)
    assert parse_epsilons("0:0.3:0.1") == (0.0, 0.1, 0.2, 0.3)
    assert parse_epsilons("0:0.4:0.05,0.3") == tuple(round(0.05 * i, 10) for i in range(9))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "not a number"),
        ("0.1,nan", "not a finite number"),
        ("1.5", "outside \\[0, 1\\]"),
        ("-0.1", "outside \\[0, 1\\]"),
        ("", "no epsilon given"),
        ("0:0.3", "start:stop:step"),
        ("0.3:0:0.1", "positive step"),
    ],
)
def test_bad_epsilons_are_explained(text, message):
    with pytest.raises(BenchError, match=message):
        parse_epsilons(text)


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(BenchError, match="valid: smoke, quick, paper"):
        get_profile("fast")


def test_config_hash_is_stable_and_order_independent():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
