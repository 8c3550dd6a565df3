"""LaTeX maths as the terminal shows it: one line of Unicode, written out by hand here as the oracle."""

from __future__ import annotations

import pytest

from tracer.cli import main
from tracer.maths_text import latex_to_unicode


@pytest.mark.parametrize("latex, text", [
    (r"\sigma(z) = \frac{1}{1 + e^{- z}}", "σ(z) = 1/(1 + e⁻ᶻ)"),
    (r"\frac{d\sigma}{dz} = \frac{e^{- z}}{\left(1 + e^{- z}\right)^{2}}", "dσ/dz = e⁻ᶻ/(1 + e⁻ᶻ)²"),
    (r"\frac{d\sigma}{dz} = \sigma(z) \left(1 - \sigma(z)\right)", "dσ/dz = σ(z)(1 − σ(z))"),
    (r"\mathrm{Cost} = \frac{1}{2 m} \sum_{i=1}^{m} \left(y_{i} - \hat{y}_i\right)^{2}",
     "Cost = 1/(2m) Σᵢ₌₁ᵐ (yᵢ − ŷᵢ)²"),
    (r"\frac{\partial \mathrm{Cost}}{\partial \hat{y}_i} = \frac{\hat{y}_i - y_{i}}{m}", "∂Cost/∂ŷᵢ = (ŷᵢ − yᵢ)/m"),
    (r"\operatorname{ReLU}'(z) = \begin{cases} 1 & \text{for}\: z > 0 \\0 & \text{otherwise} \end{cases}",
     "ReLU′(z) = {1 for z > 0; 0 otherwise}"),
    (r"\frac{\partial}{\partial w_{1}} \left(w_{1} x_{1} + w_{2} x_{2}\right) = x_{1}", "∂/∂w₁ (w₁ x₁ + w₂ x₂) = x₁"),
    (r"\left(b_{new} - b\right) \frac{d}{d b} L = - \alpha \left(\frac{d}{d b} L\right)^{2}",
     "(b_new − b) d/db L = −α(d/db L)²"),
    (r"\frac{1}{1 + e^{- z_{i}}}", "1/(1 + e^(−zᵢ))"),
    (r"\frac{1}{m} \left(A_{2} - Y\right)", "1/m (A₂ − Y)"),
])
def test_latex_reads_as_a_reader_writes_it(latex, text):
    assert latex_to_unicode(latex) == text


def test_verify_shows_its_maths_in_unicode_never_latex(capsys):
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    assert "\\" not in out and "{" not in out.replace("{1 for", "").replace("{z for", "")
    assert "dσ/dz = σ(z)(1 − σ(z))" in out and "∂Cost/∂zᵢ = (ŷᵢ − yᵢ)/m" in out
