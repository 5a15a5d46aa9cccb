"""BIN check digits name the expected digit; codes get a "did you mean" hint."""

from __future__ import annotations

from server.identifiers import bin_problem, did_you_mean, make_bin, unknown_code


def test_a_wrong_check_digit_names_the_right_one() -> None:
    assert bin_problem("120440012349") is None
    assert bin_problem("120440012348") == (
        "120440012348 fails the BIN check digit: the last digit should be 9"
    )
    good = make_bin("99000000001")
    wrong = good[:11] + str((int(good[11]) + 1) % 10)
    assert f"should be {good[11]}" in (bin_problem(wrong) or "")
    assert bin_problem("12044001234") == "'12044001234' is not 12 digits"


def test_did_you_mean() -> None:
    assert did_you_mean("tyers", ["tyres", "batteries"]) == " (did you mean tyres?)"
    assert did_you_mean("ALMATY", ["Almaty", "Astana"]) == " (did you mean Almaty?)"
    assert did_you_mean("zzz", ["tyres"]) == ""
    assert unknown_code("stage", "x", []) == "unknown stage 'x'"
