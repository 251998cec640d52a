"""The Data page in Chromium: the augmentation grid, and CSV and MNIST uploads that join the data sets."""

import gzip
import struct

import numpy as np
import pytest

from browser import upload

pytestmark = pytest.mark.browser

# Heatmap panels of the augmentation grid, found by their subplot titles (never by place).
GRID_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot'))
  .map(d => (d.layout?.annotations || []).map(a => a.text))
  .filter(titles => titles.some(t => t.startsWith('original:')))
"""


def test_the_grid_shows_originals_and_augmented_versions_and_a_csv_joins_the_data_sets(
    app_server: str, browser, tmp_path
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(f"{app_server}/Data")
    page.wait_for_function(f"() => ({GRID_JS})().length > 0", timeout=60_000)
    titles = page.evaluate(GRID_JS)[-1]
    originals = [t for t in titles if t.startswith("original:")]
    assert len(originals) == 6 and len(titles) == 6 * 5  # six samples, four augmented versions each
    page.get_by_role("tab", name="Your data").click()
    csv = tmp_path / "plants.csv"
    rows = "\n".join(f"{i % 7},{(i * 3) % 11},{'tall' if i % 2 else 'short'}" for i in range(60))
    csv.write_text("height,width,kind\n" + rows + "\n")
    upload(page.locator("[data-testid=stFileUploader]"), csv)
    page.get_by_role("button", name="Add this data set").click()
    page.get_by_text("60 rows, 2 features, 2 classes").wait_for(timeout=60_000)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,kind\n1,x\n2\n")
    upload(page.locator("[data-testid=stFileUploader]"), bad)
    page.get_by_role("button", name="Add this data set").click()
    page.get_by_text("Not imported").wait_for(timeout=60_000)
    assert page.get_by_text("row 3").count() >= 1
    # MNIST's format: a gzipped idx pair of 28x28 images and their labels.
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8), np.arange(40, dtype=np.uint8) % 4
    # The images gzipped as published, the labels unzipped: a name with no dot at all.
    for name, a in (("t10k-images-idx3-ubyte.gz", images), ("t10k-labels-idx1-ubyte", labels)):
        raw = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}i", *a.shape) + a.tobytes()
        (tmp_path / name).write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    page.get_by_text("MNIST idx pair", exact=True).click()
    page.get_by_text("images (idx3)").wait_for(timeout=30_000)
    for label, name in (("images (idx3)", "t10k-images-idx3-ubyte.gz"), ("labels (idx1)", "t10k-labels-idx1-ubyte")):
        uploader = page.locator("[data-testid=stFileUploader]").filter(has_text=label)
        upload(uploader, tmp_path / name)
    page.get_by_role("button", name="Add this data set").click()
    page.get_by_text("40 images of 28x28, 4 classes").wait_for(timeout=60_000)
    # The upload is a data set on every page of this session.
    page.get_by_role("link", name="Compare optimizers").click()  # the same session: a reload starts another
    page.get_by_role("heading", name="Compare optimizers").wait_for(timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=60_000)
    page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first.click()
    page.get_by_role("option", name="your data: plants.csv").wait_for(timeout=30_000)
    page.close()
