"""Training against the articles' printed runs (seed 000)."""

import pytest


def test_chapter_4_reproduces_the_notebook_costs_at_4600_to_4900(trace_of):
    # "Cost at epoch#4600: 0.001018305488651183" … printed in seed 000, Part II.
    printed = {4600: 0.001018305488651183, 4700: 0.000983783942124411,
               4800: 0.0009514180100050973, 4900: 0.0009210166430616655}
    trace = trace_of("04-xor-hidden-layer")
    for step, cost in printed.items():
        assert trace.costs[step] == pytest.approx(cost, rel=1e-9)
