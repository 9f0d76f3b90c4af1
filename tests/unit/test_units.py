import pytest

from fabriccore.units import UnitError, parse_duration_s, parse_rate_bps, parse_size_bytes


@pytest.mark.parametrize("text,bps", [("100Mbit", 100_000_000), ("1Gbit", 10**9),
                                      ("25gbps", 25 * 10**9), (1e6, 1_000_000),
                                      ("2.5Mbit", 2_500_000)])
def test_rates_become_bits_per_second(text, bps):
    assert parse_rate_bps(text) == bps


@pytest.mark.parametrize("text,size", [("64KiB", 65536), ("256KB", 256_000), ("1MiB", 2**20),
                                       (1500, 1500), ("9000B", 9000)])
def test_sizes_become_bytes(text, size):
    assert parse_size_bytes(text) == size


@pytest.mark.parametrize("text,seconds", [("50us", 50e-6), ("200ms", 0.2), ("1.5", 1.5),
                                          ("4µs", 4e-6), (2, 2.0)])
def test_durations_become_seconds(text, seconds):
    assert parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["fast", "10 parsecs", "-5Mbit", True, None, [1]])
def test_unparseable_rates_say_which_forms_work(bad):
    with pytest.raises(UnitError, match="100Mbit"):
        parse_rate_bps(bad)


@pytest.mark.parametrize("text,bps", [
    ("100Mbit/s", 100_000_000), ("100 Mbit/s", 100_000_000), ("100Mb/s", 100_000_000),
    ("100Mbps", 100_000_000), ("100M", 100_000_000), ("25G", 25 * 10**9),
    ("1_000_000", 1_000_000), ("125MB/s", 10**9), ("1GBps", 8 * 10**9)])
def test_rates_in_the_forms_people_write(text, bps):
    """Capital B is bytes (x8); lowercase b and bare prefixes are bits, as in tc."""
    assert parse_rate_bps(text) == bps


@pytest.mark.parametrize("text,size", [("64 KiB", 65536), ("64Ki", 65536), (".5MiB", 2**19),
                                       ("1.5KB", 1500), ("1_000", 1000)])
def test_sizes_in_the_forms_people_write(text, size):
    assert parse_size_bytes(text) == size


@pytest.mark.parametrize("text,seconds", [("50 µs", 50e-6), ("50μs", 50e-6), ("10sec", 10.0),
                                          ("2min", 120.0), ("500ns", 5e-7), ("1.5s", 1.5)])
def test_durations_in_the_forms_people_write(text, seconds):
    assert parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["64KiBit", "5 parsecs", "1e", "-1KiB"])
def test_unparseable_sizes_are_rejected(bad):
    with pytest.raises(UnitError, match="64KiB"):
        parse_size_bytes(bad)
