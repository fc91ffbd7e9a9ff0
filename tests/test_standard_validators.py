"""The standard's single-value rules: USCC, GB/T 38565 codes, division codes, phones, dates."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from gateway.standard import category, dates, division, phone, uscc

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def independent_check(body: str) -> str:
    """GB 32100-2015 check character, written out longhand."""
    total = 0
    for i in range(17):
        total += ALPHABET.index(body[i]) * WEIGHTS[i]
    c = 31 - total % 31
    if c == 31:
        c = 0
    return ALPHABET[c]


BODIES = ["91350100M000100Y4", "12100000400000624", "52350102MJ0000001", "93110108MA01ABCDE", "11100000000013127"]


@pytest.mark.parametrize("body", BODIES)
def test_uscc_check_char_matches_longhand_computation(body: str) -> None:
    assert len(body) == 17
    expected = independent_check(body)
    assert uscc.check_char(body) == expected
    assert uscc.is_valid(body + expected)
    assert uscc.problem(body + expected) is None


@pytest.mark.parametrize("body", BODIES)
def test_uscc_wrong_check_char_is_rejected_and_names_the_right_one(body: str) -> None:
    good = independent_check(body)
    wrong = ALPHABET[(ALPHABET.index(good) + 1) % 31]
    rule, reason = uscc.problem(body + wrong)
    assert rule == "uscc.check"
    assert good in reason
    assert not uscc.is_valid(body + wrong)


@pytest.mark.parametrize("letter", list("IOSVZ"))
def test_uscc_letters_never_used_are_rejected(letter: str) -> None:
    code = "91350100M000100Y4" + independent_check("91350100M000100Y4")
    bad = code[:10] + letter + code[11:]
    rule, reason = uscc.problem(bad)
    assert rule == "uscc.charset"
    assert letter in reason
    with pytest.raises(ValueError):
        uscc.check_char(bad[:17])


@pytest.mark.parametrize("code", ["", "91350100M000100Y", "91350100M000100Y4XX", "9135010"])
def test_uscc_wrong_length(code: str) -> None:
    assert uscc.problem(code)[0] == "uscc.length"
    assert not uscc.is_valid(code)


def test_uscc_division_part_must_be_digits() -> None:
    body = "91AB0100M000100Y4"
    assert uscc.problem(body + independent_check(body))[0] == "uscc.division"


@pytest.mark.parametrize("code", ["1010100", "2990000", "3019999", "1000000", "1010101", "2999999"])
def test_category_valid_structure(code: str) -> None:
    assert category.structure_problem(code) is None


@pytest.mark.parametrize(
    "code, fragment",
    [("4010000", "1、2 或 3"), ("0010000", "1、2 或 3"), ("1000100", "00 之后"), ("1010001", "00 之后"),
     ("101010", "7 位"), ("10101010", "7 位"), ("10A0000", "7 位"), ("１０１０１００", "7 位")],
)
def test_category_bad_structure(code: str, fragment: str) -> None:
    why = category.structure_problem(code)
    assert why is not None and fragment in why


def test_category_levels_and_parents() -> None:
    assert category.level("1000000") == 1
    assert category.level("1010000") == 2
    assert category.level("3019999") == 4
    assert category.parent("1010100") == "1010000"
    assert category.parent("1010000") == "1000000"
    assert category.parent("1000000") is None


def test_builtin_code_table_checks_level_one_only() -> None:
    table = category.load_table()
    assert table.version
    assert table.name("2000000") == "应急装备及配套物资"
    assert table.membership_problem("1010100") is None  # deeper levels: structure only
    assert table.membership_problem("3019999") is None


def test_custom_code_table_checks_as_deep_as_it_lists(tmp_path) -> None:
    p = tmp_path / "codes.csv"
    p.write_text(
        "# version: test-7\ncode,name\n1000000,基本生活保障物资\n1010000,甲类\n1010100,甲类一\n2000000,应急装备\n",
        encoding="utf-8",
    )
    table = category.load_table(p)
    assert table.version == "test-7"
    assert table.membership_problem("1010100") is None
    assert table.membership_problem("1010199") is None  # no level-4 rows listed: structure only
    assert table.membership_problem("1990000") is None  # 99 is the catch-all at every level
    assert table.membership_problem("1019900") is None
    assert "1020000" in table.membership_problem("1020100")
    assert "1010200" in table.membership_problem("1010200")
    assert "3000000" in table.membership_problem("3010000")
    assert table.membership_problem("2050000") is None  # no level-2 rows under 2: structure only


def test_code_table_with_bad_code_names_file_and_line(tmp_path) -> None:
    p = tmp_path / "codes.csv"
    p.write_text("code,name\n1000000,甲\n1000100,乙\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"codes.csv:3"):
        category.load_table(p)


@pytest.mark.parametrize("code", ["350100", "110101", "350102001001", "820000"])
def test_division_valid(code: str) -> None:
    assert division.is_valid(code)


@pytest.mark.parametrize(
    "code, rule",
    [("35010", "division.format"), ("3501000", "division.format"), ("35010200100", "division.format"),
     ("35010a", "division.format"), ("990100", "division.province"), ("000000", "division.province")],
)
def test_division_invalid(code: str, rule: str) -> None:
    assert division.problem(code)[0] == rule


@pytest.mark.parametrize(
    "number",
    ["13800138000", "19912345678", "0591-87654321", "059187654321", "010-1234567", "0591-87654321-123",
     "0591-87654321转123", "+86 138 0013 8000", "(0591)87654321"],
)
def test_phone_valid(number: str) -> None:
    assert phone.is_valid(number)


@pytest.mark.parametrize(
    "number",
    ["12800138000", "1380013800", "138001380001", "591-87654321", "0591-123456", "0591-123456789", "110",
     "0591-87654321转", "电话13800138000"],
)
def test_phone_invalid(number: str) -> None:
    assert not phone.is_valid(number)


@pytest.mark.parametrize(
    "value, iso",
    [("2024-02-29", "2024-02-29"), ("2023年5月1日", "2023-05-01"), ("2023/5/1", "2023-05-01"),
     ("2023.05.01", "2023-05-01"), ("2023-05-01 08:30:00", "2023-05-01"), (date(2023, 5, 1), "2023-05-01"),
     (datetime(2023, 5, 1, 23, 59), "2023-05-01")],
)
def test_dates_accepted(value: object, iso: str) -> None:
    assert dates.iso_date(value) == iso


@pytest.mark.parametrize(
    "value, rule",
    [("2023-02-30", "date.invalid"), ("2023-02-29", "date.invalid"), ("2023-13-01", "date.invalid"),
     ("2023年2月30日", "date.invalid"), ("01/05/2023", "date.format"), ("2023-W01-1", "date.format"),
     ("明天", "date.format"), (45000, "date.format")],
)
def test_dates_rejected_never_guessed(value: object, rule: str) -> None:
    with pytest.raises(dates.DateProblem) as e:
        dates.parse_date(value)
    assert e.value.rule == rule
