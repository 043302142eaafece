"""`digits evaluate --robustness` on a tiny model: every corruption scored through the
service's preprocessing, a table printed, the plot and figures written."""

import json
from pathlib import Path
from typing import Any

import numpy as np
from click.testing import CliRunner

from digits.cli import main
from digits.imaging.files import model_input
from digits.jobs import robustness
from digits.jobs.corruptions import CORRUPTIONS
from digits.jobs.data import Split
from digits.modelstore.saved_model import load_version


def test_evaluate_with_robustness_writes_every_row(model_templates: Any, mnist_path: Path,
                                                   tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [
        "evaluate", str(model_templates.dense_a), "--data", str(mnist_path), "--reports",
        str(tmp_path), "--robustness", "--robustness-images", "30", "--seed", "3"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report_dir = Path(result.output.strip().splitlines()[-1].removeprefix("reports in "))
    rows = json.loads((report_dir / robustness.JSON_FILENAME).read_text())
    assert [row["name"] for row in rows] == ["clean", "clean_png",
                                             *(c.name for c in CORRUPTIONS)]
    assert all(row["images"] == 30 and 0 <= row["accuracy"] <= 1 for row in rows)
    for row in rows:
        assert f"| {row['name']} |" in result.output
    assert (report_dir / robustness.PLOT_FILENAME).stat().st_size > 0
    assert (report_dir / robustness.TABLE_FILENAME).read_text().startswith("# Robustness")


def test_rows_score_what_the_preprocessing_made(model_templates: Any,
                                                mnist_path: Path) -> None:
    """The accuracy of a row is the model's on the server's own conversion of each file."""
    with np.load(mnist_path) as data:
        test = Split(data["x_test"][:40], data["y_test"][:40])
    model = load_version(model_templates.dense_a)
    rows = {row.name: row for row in robustness.measure(model, test, seed=0)}
    expected = float(np.mean(model.predict(test.images).argmax(axis=1) == test.labels))
    assert rows["clean"].accuracy == expected
    files = [robustness._png(digit) for digit in test.images]
    made = [model_input(data) for data in files]
    assert all(image is not None for image in made)
    inputs = np.stack([image for image in made if image is not None])
    assert rows["clean_png"].accuracy == float(
        np.mean(model.predict(inputs).argmax(axis=1) == test.labels))
