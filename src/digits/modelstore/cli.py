"""``digits promote``: point a version label at a version on the model volume, roll it
back, or remove it. Every replica picks the change up on its next scan."""

from pathlib import Path

import click

from digits.modelstore import labels
from digits.modelstore.names import InvalidModelName
from digits.v1.version_labels_pb2 import VersionLabels


@click.command()
@click.argument("model")
@click.argument("version", type=click.IntRange(min=1), required=False)
@click.option("--label", default="stable", show_default=True,
              help="The label to move: 'stable' takes every request that pins nothing.")
@click.option("--rollback", is_flag=True,
              help="Point the label back at the version it had before its last promotion.")
@click.option("--remove", is_flag=True, help="Remove the label.")
@click.option("--weight", type=click.FloatRange(0, 1),
              help="With --label canary: the share of requests that pin nothing sent to "
                   "the canary's version (0 stops it), with or without a VERSION.")
@click.option("--models", type=click.Path(file_okay=False, path_type=Path),
              envvar="DIGITS_MODELS", default=Path("models"), show_default=True,
              help="Model volume [env: DIGITS_MODELS].")
def promote(model: str, version: int | None, label: str, rollback: bool, remove: bool,
            weight: float | None, models: Path) -> None:
    """Point LABEL of MODEL at VERSION (or --rollback, or --remove it; or set the canary's
    --weight).

    A server moves the label only once it has loaded VERSION and the quality gate has
    passed it; until then, requests for the label keep going to its previous version.
    """
    if weight is not None and label != labels.CANARY:
        raise click.UsageError("--weight is the canary's: give it with --label canary")
    if weight is not None and version is None and not (rollback or remove):
        _set_weight(models, model, weight)
        return
    if sum((version is not None, rollback, remove)) != 1:
        raise click.UsageError("give exactly one of VERSION, --rollback or --remove")
    previous = _current(models, model, label)
    try:
        if rollback:
            changed = labels.rollback(models, model, label)
        elif remove:
            changed = labels.remove(models, model, label)
        else:
            assert version is not None
            changed = labels.promote(models, model, label, version)
    except (labels.InvalidLabels, InvalidModelName) as error:
        raise click.ClickException(str(error)) from None
    now = changed.labels.get(label)
    click.echo(f"{model}: {label} -> {now if now else 'removed'} (was {previous or 'unset'}); "
               f"labels now {_shown(changed)}")
    if weight is not None:
        _set_weight(models, model, weight)


def _set_weight(models: Path, model: str, weight: float) -> None:
    try:
        changed = labels.set_canary_weight(models, model, weight)
    except (labels.InvalidLabels, InvalidModelName) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{model}: canary weight {changed.canary_weight:g} (of the requests that pin "
               "nothing)")


def _current(models: Path, model: str, label: str) -> int:
    try:
        return labels.read_labels(models, model).labels.get(label, 0)
    except (labels.InvalidLabels, InvalidModelName) as error:
        raise click.ClickException(str(error)) from None


def _shown(current: VersionLabels) -> str:
    return ", ".join(f"{name}={number}" for name, number in sorted(current.labels.items())) \
        or "none"
