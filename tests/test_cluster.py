"""Which worker a process is: --workers/--worker-index, TF_CONFIG, and their mistakes."""

import json

import pytest
from click.testing import CliRunner

from digits.cli import main
from digits.jobs.cluster import Cluster, ClusterError, from_options


def test_options_make_a_tf_config_with_the_chief_first() -> None:
    cluster = Cluster.parse("a:1, b:2", 1)
    assert (cluster.size, cluster.is_chief, str(cluster)) == (2, False, "worker 1 of 2 (b:2)")
    assert json.loads(cluster.tf_config()) == {"cluster": {"worker": ["a:1", "b:2"]},
                                               "task": {"type": "worker", "index": 1}}
    assert Cluster.from_tf_config(cluster.tf_config()) == cluster


def test_a_tf_config_chief_counts_as_worker_zero() -> None:
    config = {"cluster": {"chief": ["c:1"], "worker": ["w:1", "w:2"]}}
    assert Cluster.from_tf_config(json.dumps({**config, "task": {"type": "chief",
                                                                 "index": 0}})).is_chief
    second = Cluster.from_tf_config(json.dumps({**config, "task": {"type": "worker",
                                                                   "index": 1}}))
    assert (second.workers, second.index) == (("c:1", "w:1", "w:2"), 2)


@pytest.mark.parametrize(("workers", "index", "problem"), [
    ("a:1,b:2", 2, "outside 0..1"),
    ("a:1,a:1", 0, "appears twice"),
    ("a,b:2", 0, "is not HOST:PORT"),
    ("a:99999", 0, "is not HOST:PORT"),
    (" , ", 0, "no workers given"),
])
def test_bad_clusters_are_refused_with_the_reason(workers: str, index: int,
                                                  problem: str) -> None:
    with pytest.raises(ClusterError, match=problem):
        Cluster.parse(workers, index)


@pytest.mark.parametrize("text", ["not json", '{"cluster": {}}',
                                  '{"cluster": {"ps": ["p:1"]}, "task": {"type": "ps", '
                                  '"index": 0}}'])
def test_unusable_tf_configs_are_refused(text: str) -> None:
    with pytest.raises(ClusterError, match="TF_CONFIG"):
        Cluster.from_tf_config(text)


def test_options_win_over_tf_config_and_none_means_one_process() -> None:
    environment = {"TF_CONFIG": Cluster.parse("x:1,y:2", 1).tf_config()}
    assert from_options("a:1,b:2", 0, environment) == Cluster(("a:1", "b:2"), 0)
    assert from_options(None, None, environment) == Cluster(("x:1", "y:2"), 1)
    assert from_options(None, None, {}) is None
    with pytest.raises(ClusterError, match="needs --worker-index"):
        from_options("a:1,b:2", None, {})
    with pytest.raises(ClusterError, match="needs --workers"):
        from_options(None, 1, {})


def test_the_command_names_a_cluster_mistake_before_loading_anything() -> None:
    result = CliRunner().invoke(main, ["train", "cnn", "--workers", "a:1,b:2"])
    assert result.exit_code == 2
    assert "--workers needs --worker-index" in result.output
