"""The versions line of a benchmark report names each CPU once."""

from __future__ import annotations

from attnrec.evaluation.report import Report, _versions_line


def _report(hosts: list[dict[str, object]]) -> Report:
    return Report(
        name="b",
        description="",
        metric="ndcg@10",
        columns=[],
        seeds=[0],
        datasets=[],
        command="",
        config_text="",
        config_name="",
        environment={"attnrec": "0.1.0", "cpu": "here"},
        cell_versions=[{"attnrec": "0.1.0", "torch": "2.13.0"}],
        cell_hosts=hosts,
        cell_seconds=0.0,
        cells_total=1,
        cells_done=1,
    )


def test_hosts_that_differ_only_in_their_platform_name_the_cpu_once() -> None:
    same_cpu = [
        {"cpu": "AMD EPYC", "cores": 2, "platform": "Linux-6.18.44-a"},
        {"cpu": "AMD EPYC", "cores": 2, "platform": "Linux-6.18.44-b"},
    ]
    assert _versions_line(_report(same_cpu)).endswith("; CPU: AMD EPYC (2 cores)")
    two_cpus = [*same_cpu, {"cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "platform": "Linux"}]
    assert _versions_line(_report(two_cpus)).endswith("; CPU: AMD EPYC (2 cores); Intel(R) Xeon(R) Processor (2 cores)")
