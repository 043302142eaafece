"""Version labels on the volume and ``digits promote``: atomic changes with their history,
rollback, removal, refused names and files, concurrent promotions."""

import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from digits.cli import main
from digits.modelstore import labels
from digits.modelstore.card import CARD_FILENAME


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    """A volume with versions 1 to 3 of mnist (cards only: promote checks no more)."""
    for version in (1, 2, 3):
        directory = tmp_path / "mnist" / str(version)
        directory.mkdir(parents=True)
        (directory / CARD_FILENAME).write_text("{}")
    return tmp_path


def test_promote_rollback_and_remove_keep_their_history(volume: Path) -> None:
    assert labels.read_labels(volume, "mnist").labels == {}
    labels.promote(volume, "mnist", "stable", 1)
    labels.promote(volume, "mnist", "stable", 2)
    labels.promote(volume, "mnist", "stable", 3)
    labels.promote(volume, "mnist", "canary", 3)
    assert dict(labels.read_labels(volume, "mnist").labels) == {"stable": 3, "canary": 3}
    labels.rollback(volume, "mnist", "stable")
    assert labels.read_labels(volume, "mnist").labels["stable"] == 2
    labels.rollback(volume, "mnist", "stable")  # one further back
    assert labels.read_labels(volume, "mnist").labels["stable"] == 1
    with pytest.raises(labels.InvalidLabels, match="no earlier version to roll back to"):
        labels.rollback(volume, "mnist", "stable")
    labels.remove(volume, "mnist", "canary")
    read = labels.read_labels(volume, "mnist")
    assert dict(read.labels) == {"stable": 1}
    assert [(c.label, c.version, c.previous_version, c.action) for c in read.history] == [
        ("stable", 1, 0, "promote"), ("stable", 2, 1, "promote-undone"),
        ("stable", 3, 2, "promote-undone"), ("canary", 3, 0, "promote"),
        ("stable", 2, 3, "rollback"), ("stable", 1, 2, "rollback"),
        ("canary", 0, 3, "remove")]
    assert all(change.changed.seconds > 0 for change in read.history)
    assert [p.name for p in (volume / "mnist").iterdir() if p.name.startswith(".labels-")] == []


@pytest.mark.parametrize(("label", "version", "problem"), [
    ("Stable", 1, "invalid version label 'Stable'"),
    ("3", 1, "starting with a letter"),
    ("x" * 64, 1, "1 to 63"),
    ("stable", 4, "no published version 4"),
])
def test_bad_promotions_are_refused_and_change_nothing(volume: Path, label: str,
                                                      version: int, problem: str) -> None:
    with pytest.raises(labels.InvalidLabels, match=problem):
        labels.promote(volume, "mnist", label, version)
    assert not (volume / "mnist" / labels.LABELS_FILENAME).exists()


@pytest.mark.parametrize(("contents", "problem"), [
    ("{not json", "not a valid labels file"),
    ('{"labels": {"stable": -1}}', "points at version -1"),
    ('{"labels": {"Bad Name": 1}}', "invalid version label"),
    ('{"labels": {"stable": 1}, "extra": 2}', "not a valid labels file"),
])
def test_an_unusable_file_is_refused_naming_it(volume: Path, contents: str,
                                               problem: str) -> None:
    (volume / "mnist" / labels.LABELS_FILENAME).write_text(contents)
    with pytest.raises(labels.InvalidLabels, match=problem):
        labels.read_labels(volume, "mnist")


def test_concurrent_promotions_are_all_recorded(volume: Path) -> None:
    names = [f"label-{index}" for index in range(16)]
    threads = [threading.Thread(target=labels.promote, args=(volume, "mnist", name, 2))
               for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    read = labels.read_labels(volume, "mnist")
    assert sorted(read.labels) == sorted(names) and len(read.history) == len(names)


def test_the_command_line(volume: Path) -> None:
    runner = CliRunner()

    def promote(*arguments: str) -> tuple[int, str]:
        result = runner.invoke(main, ["promote", "--models", str(volume), *arguments])
        return result.exit_code, result.output

    assert promote("mnist", "2") == (0, "mnist: stable -> 2 (was unset); labels now "
                                        "stable=2\n")
    assert promote("mnist", "3", "--label", "canary")[0] == 0
    code, output = promote("mnist", "3")
    assert code == 0 and "stable -> 3 (was 2); labels now canary=3, stable=3" in output
    assert promote("mnist", "--rollback") == (0, "mnist: stable -> 2 (was 3); labels now "
                                                 "canary=3, stable=2\n")
    assert promote("mnist", "--remove", "--label", "canary")[1].startswith(
        "mnist: canary -> removed (was 3)")
    code, output = promote("mnist", "9")
    assert code == 1 and "no published version 9" in output
    code, output = promote("mnist", "2", "--rollback")
    assert code == 2 and "exactly one of VERSION, --rollback or --remove" in output
    code, output = promote("Bad/Name", "1")
    assert code == 1 and "invalid model name" in output


def test_the_canary_weight_is_a_share_kept_with_its_history(volume: Path) -> None:
    labels.promote(volume, "mnist", "canary", 3)
    labels.set_canary_weight(volume, "mnist", 0.1)
    read = labels.read_labels(volume, "mnist")
    assert read.canary_weight == pytest.approx(0.1)
    assert (read.history[-1].action, read.history[-1].version) == ("weight", 3)
    with pytest.raises(labels.InvalidLabels, match="share from 0 to 1"):
        labels.set_canary_weight(volume, "mnist", 1.5)
    (volume / "mnist" / labels.LABELS_FILENAME).write_text('{"canary_weight": 2}')
    with pytest.raises(labels.InvalidLabels, match=r"canary_weight 2\.0 is not a share"):
        labels.read_labels(volume, "mnist")


def test_the_command_line_sets_the_canary_weight(volume: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["promote", "--models", str(volume), "mnist", "3",
                                  "--label", "canary", "--weight", "0.25"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == ("mnist: canary weight 0.25 (of the requests "
                                              "that pin nothing)")
    result = runner.invoke(main, ["promote", "--models", str(volume), "mnist", "--label",
                                  "canary", "--weight", "0"])
    assert result.exit_code == 0 and labels.read_labels(volume, "mnist").canary_weight == 0
    result = runner.invoke(main, ["promote", "--models", str(volume), "mnist", "--weight",
                                  "0.5"])
    assert result.exit_code == 2 and "--weight is the canary's" in result.output
