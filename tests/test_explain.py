"""The app explains itself: update rules, schedule formulas, what a data set shows, odd lrs."""

from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import pytest
from streamlit.testing.v1 import AppTest

from dlopt_core.catalog.datasets import DATASETS
from dlopt_core.catalog.optimizers import OPTIMIZERS
from dlopt_core.catalog.schedules import SCHEDULES
from ui.optimizer_slots import lr_note, stacked_latex

ROOT = Path(__file__).resolve().parents[1]


def _page(path: str, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if query:
        at.query_params.update(query)
    return at.switch_page(path).run()


def _latex(block) -> Counter:
    return Counter(element.value for element in block.latex)


def _expected(lines: tuple[str, ...]) -> str:
    return f"$$\n{stacked_latex(lines)}\n$$"


def _boxes(at: AppTest) -> list[str]:
    return [s.value for s in at.main.selectbox if s.label == "optimizer"]


def _lr_box(at: AppTest, name: str):
    return at.number_input(key=next(k for k in at.session_state if str(k).endswith(f".{name}.lr")))


def test_compare_page_shows_each_boxs_update_rule_and_the_setup_explained() -> None:
    at = _page("pages/1_Compare_optimizers.py", {"optimizer": ["nesterov", "lbfgs"], "schedule": "one_cycle"})
    assert not at.exception and not at.error
    assert _boxes(at) == ["nesterov", "lbfgs"]
    # one rendered rule per box, each the registry's own (compared as a multiset: no order)
    assert _latex(at.main) == Counter(_expected(OPTIMIZERS[n].update_rule) for n in ("nesterov", "lbfgs"))
    captions = " ".join(c.value for c in at.main.caption)
    assert OPTIMIZERS["nesterov"].shines in captions and OPTIMIZERS["lbfgs"].shines in captions

    assert _latex(at.sidebar) == Counter([_expected(SCHEDULES["one_cycle"].formula)])
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert SCHEDULES["one_cycle"].shines in sidebar and DATASETS["digits"].shows in sidebar

    at.sidebar.selectbox(key="schedule").set_value("cosine")
    at.sidebar.selectbox(key="dataset").set_value("ill_conditioned").run()
    assert _latex(at.sidebar) == Counter([_expected(SCHEDULES["cosine"].formula)])
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert SCHEDULES["cosine"].shines in sidebar and DATASETS["ill_conditioned"].shows in sidebar
    assert "momentum" in DATASETS["ill_conditioned"].shows


def test_changing_a_boxs_optimizer_changes_its_rule() -> None:
    at = _page("pages/1_Compare_optimizers.py", {"optimizer": ["sgd:lr=0.1", "adam"]})
    box = next(s for s in at.main.selectbox if s.label == "optimizer" and s.value == "sgd")
    box.set_value("muon").run()
    assert not at.exception
    assert _latex(at.main) == Counter(_expected(OPTIMIZERS[n].update_rule) for n in ("muon", "adam"))


def test_an_lr_far_outside_the_usual_range_gets_a_note_and_still_runs() -> None:
    at = _page("pages/1_Compare_optimizers.py")
    assert not any(":orange[" in c.value for c in at.main.caption)  # the defaults are usual
    _lr_box(at, "adam").set_value(0.5)
    _lr_box(at, "sgd").set_value(1e-6).run()
    notes = [c.value for c in at.main.caption if ":orange[" in c.value]
    assert sorted(notes) == sorted([
        ":orange[0.5 is 5x above Adam's usual range 1e-5 – 0.1; it may diverge]",
        ":orange[1e-6 is 100x below SGD's usual range 0.0001 – 1; it may barely move]",
    ])
    assert not at.error and any(b.label == "Run" for b in at.button)


def test_the_loss_landscapes_page_shows_each_boxs_update_rule() -> None:
    at = _page("pages/2_Loss_landscapes.py")
    assert not at.exception
    names = _boxes(at)
    assert names and _latex(at.main) == Counter(_expected(OPTIMIZERS[n].update_rule) for n in names)


def test_the_lr_sensitivity_sidebar_explains_its_schedule_and_data() -> None:
    at = _page("pages/3_LR_sensitivity.py")
    assert not at.exception
    schedule = next(s.value for s in at.sidebar.selectbox if s.label == "learning-rate schedule")
    dataset = next(s.value for s in at.sidebar.selectbox if s.label == "data set")
    assert _latex(at.sidebar) == Counter([_expected(SCHEDULES[schedule].formula)])
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert SCHEDULES[schedule].shines in sidebar and DATASETS[dataset].shows in sidebar


@pytest.mark.parametrize(
    ("name", "lr", "note"),
    [
        ("adam", 0.2, None),  # twice the top of the range is still not far
        ("adam", 0.25, "0.25 is 2.5x above Adam's usual range 1e-5 – 0.1; it may diverge"),
        ("sgd", 12.3456, "12.3 is 12.3x above SGD's usual range 0.0001 – 1; it may diverge"),
        ("adadelta", 1234.5, "1.23e3 is 123x above Adadelta's usual range 0.01 – 10; it may diverge"),
        ("lbfgs", 0.005, None),  # half the bottom of the range
        ("lbfgs", 0.00123456, "0.00123 is 8.1x below L-BFGS's usual range 0.01 – 2; it may barely move"),
        ("lbfgs", 0.000777, "0.000777 is 12.9x below L-BFGS's usual range 0.01 – 2; it may barely move"),
        ("sgd", 0.05, None),
    ],
)
def test_lr_note_says_how_far_outside_with_three_significant_digits(name: str, lr: float, note: str | None) -> None:
    assert lr_note(OPTIMIZERS[name], lr) == note


def test_stacked_latex_keeps_each_registry_line_on_its_own_left_aligned_row() -> None:
    assert stacked_latex(["a = b", "c = d"]) == r"\begin{aligned}&a = b \\ &c = d\end{aligned}"


# KaTeX marks a command it does not know in red (Streamlit renders errors instead of raising).
_KATEX_ERRORS = ".katex-error, .katex [mathcolor='#cc0000']"
_OPEN_FORMULA = "[data-testid=stPopoverBody] .katex-display"


def _open_and_read(page, button) -> tuple[str, int]:
    """Open a popover; return the TeX it rendered and how many error marks KaTeX drew."""
    button.scroll_into_view_if_needed()
    button.click()
    shown = page.locator(_OPEN_FORMULA)
    shown.wait_for(timeout=30_000)
    tex = shown.locator("annotation").text_content().strip()
    errors = shown.locator(_KATEX_ERRORS).count()
    page.keyboard.press("Escape")
    shown.wait_for(state="detached", timeout=30_000)
    return tex, errors


@pytest.mark.browser
def test_katex_renders_every_update_rule_and_schedule_formula(app_server: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    names = list(OPTIMIZERS)
    rendered = {}
    for group in (names[:12], names[12:]):  # a comparison holds at most 12 optimizers
        page.goto(f"{app_server}/Compare_optimizers?{urlencode([('optimizer', n) for n in group])}")
        buttons = page.locator("button", has_text="update rule")
        buttons.nth(len(group) - 1).wait_for(timeout=90_000)
        assert buttons.count() == len(group)
        for i in range(len(group)):
            tex, errors = _open_and_read(page, buttons.nth(i))
            rendered[tex] = errors
    for name in SCHEDULES:
        page.goto(f"{app_server}/Compare_optimizers?optimizer=sgd&schedule={name}")
        button = page.locator("button", has_text="lr formula")
        button.wait_for(timeout=90_000)
        tex, errors = _open_and_read(page, button)
        rendered[tex] = errors
    page.close()
    expected = [stacked_latex(s.update_rule) for s in OPTIMIZERS.values()]
    expected += [stacked_latex(s.formula) for s in SCHEDULES.values()]
    assert sorted(rendered) == sorted(expected)
    assert {tex: n for tex, n in rendered.items() if n} == {}
