"""Markdown tables: rounded numbers, intervals in brackets, dashes for what is missing, aligned columns."""

from forgetlab.report.markdown import number, table, with_interval


def test_numbers_are_rounded_and_small_p_values_are_scientific():
    assert number(0.74499) == "0.745" and number(3) == "3.000" and number(-0.0004) == "-0.000"
    assert number(0.031, p=True) == "0.031" and number(2.4e-5, p=True) == "2.4e-05" and number(0.0, p=True) == "0.000"
    assert number(None) == number(float("nan")) == number(float("inf")) == number(True) == number("x") == "—"


def test_values_carry_their_interval_when_there_is_one():
    assert with_interval(0.745, [0.685, 0.805]) == "0.745 [0.685, 0.805]"
    assert with_interval(0.745, None) == "0.745" and with_interval(None, [0.1, 0.2]) == "—"


def test_a_table_has_a_header_an_alignment_row_and_one_line_per_row():
    assert table(["task", "acc"], [["rte", "0.5"], ["cola", "0.7"]]) == (
        "| task | acc |\n|:---|---:|\n| rte | 0.5 |\n| cola | 0.7 |\n"
    )
