"""suite.reporting.table: the Table renderer (Markdown / LaTeX / CSV) and the number formatting."""

import math

import pandas as pd
import pytest

from suite.reporting import table as T


def test_latex_escaping_and_column_count(check_latex):
    table = T.Table("t", "a_b & {c} 50% #1", ["k_1", "v"], [["x_y", "**1.0**±0.1"], ["$z$ ~^\\", "2"]])
    tex = table.to_latex()
    check_latex(tex)
    assert "k\\_1" in tex and "\\textbf{1.0$\\pm$0.1}" not in tex and "\\textbf{1.0}$\\pm$0.1" in tex
    assert "\\$z\\$" in tex and "50\\%" in tex and "\\#1" in tex and "\\&" in tex
    with pytest.raises(ValueError, match="row 0 has 1 cells"):
        T.Table("bad", "bad", ["a", "b"], [["only one"]])


def test_formatting_helpers():
    assert math.isclose(T.pct(0.5), 50.0) and T.fmt(math.nan) == T.MISSING and T.fmt(1.234, 0.5) == "1.2±0.5"
    assert T.fmt_diff(-1.25) == "-1.2" and T.fmt_diff(math.nan) == T.MISSING
    assert T.is_nan(None) and T.is_nan("x") and not T.is_nan(0.0)
    assert sorted(["depth=10", "depth=2"], key=T.natural_key) == ["depth=2", "depth=10"]


def test_markdown_right_aligns_numeric_columns_and_csv_uses_the_numbers():
    numeric = pd.DataFrame({"name": ["a"], "value": [1.25]})
    table = T.Table("t", "Title", ["Name", "Value"], [["a | b", "**1.2**±0.1"]], notes=["n"], footer="f",
                    numeric=numeric)
    md = table.to_markdown()
    assert "|---|---:|" in md and "a \\| b" in md and "- n" in md and "*f*" in md
    assert table.to_csv() == numeric.to_csv(index=False)
