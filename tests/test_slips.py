"""Every slip of the "Formulas that look right" page: the correct form passes the book's check, the wrong one fails it."""

import pytest

from diffusion_lab.slips import SLIPS


@pytest.mark.parametrize("key", sorted(SLIPS))
def test_the_check_accepts_the_right_form_and_rejects_the_slip(key, one_thread):
    right, wrong = SLIPS[key].run()
    assert right.passed, f"{key}: the correct form failed: {right}"
    assert not wrong.passed, f"{key}: the wrong form slipped through: {wrong}"
