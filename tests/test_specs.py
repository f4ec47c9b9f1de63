"""Tests of sgdthermo.specs: the one SPEC grammar."""

import numpy as np
import pytest

from sgdthermo.errors import ConfigError
from sgdthermo.specs import parse_spec, spec_parts


@pytest.mark.parametrize("spec,expect", [("0.1", [0.1]), ("1e-3:1e-1:3", [1e-3, 1e-2, 1e-1]),
                                         (0.5, [0.5]), ([1, 2], [1, 2])])
def test_parse_spec(spec, expect):
    np.testing.assert_allclose(parse_spec(spec), expect)


@pytest.mark.parametrize("spec", ["", "1:2", "a:b:3", "1e-3:1e-1:0", "1e-3:1e-1:x", "-1:1:3", "1:2:3:4"])
def test_parse_spec_rejects(spec):
    with pytest.raises(ValueError, match="lr"):
        parse_spec(spec, "lr")


def test_comma_lists_mix_numbers_and_ranges():
    np.testing.assert_allclose(parse_spec("0.5, 1e-3:1e-1:3"), [0.5, 1e-3, 1e-2, 1e-1])
    parts = spec_parts("0.5,1e-3:1e-1:3", "lr")
    assert [r for _, r in parts] == [False, True]


@pytest.mark.parametrize("spec", ["0.1,", ",0.1", "0.1,,0.2", "0.1,x"])
def test_malformed_lists_are_one_line_config_errors(spec):
    with pytest.raises(ConfigError, match=r"^--lr .*malformed") as info:
        parse_spec(spec, "lr")
    assert "\n" not in str(info.value)
