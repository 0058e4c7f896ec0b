"""The Prometheus exposition carries what operators alert on."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from api.metrics import ServiceMetrics
from api.stages import Stage


def _samples(m: ServiceMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = m.render()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_latency_decisions_and_journal_depth_are_exposed() -> None:
    m = ServiceMetrics()
    m.latency.labels(route="/v1/score", method="POST", status="200").observe(0.004)
    m.latency.labels(route="/v1/score", method="POST", status="200").observe(0.030)
    m.decisions.labels(tier="high", decision="block").inc()
    m.journal_depth.set(7)
    s = _samples(m)
    key = (("method", "POST"), ("route", "/v1/score"), ("status", "200"))
    assert s[("ringwatch_request_seconds_count", key)] == 2
    assert s[("ringwatch_request_seconds_bucket", (("le", "0.005"), *key))] == 1
    assert s[("ringwatch_decisions_total", (("decision", "block"), ("tier", "high")))] == 1
    assert s[("ringwatch_journal_depth", ())] == 7


def test_two_apps_in_one_process_do_not_share_counts() -> None:
    a, b = ServiceMetrics(), ServiceMetrics()
    a.decisions.labels(tier="low", decision="allow").inc(3)
    assert ("ringwatch_decisions_total", (("decision", "allow"), ("tier", "low"))) not in _samples(b)


def test_stage_cpu_reaches_the_counters_only_when_flushed() -> None:
    m = ServiceMetrics()
    m.stages.add(Stage.SCORE, 1_500_000)
    m.stages.add(Stage.SCORE, 500_000)
    m.stages.scored += 2
    assert ("ringwatch_stage_cpu_seconds_total", (("stage", "score"),)) not in _samples(m)
    m.stages.flush()
    m.stages.flush()  # a second flush adds nothing new
    s = _samples(m)
    assert s[("ringwatch_stage_cpu_seconds_total", (("stage", "score"),))] == 0.002
    assert s[("ringwatch_stage_events_total", (("kind", "scored"),))] == 2
    m.stages.add(Stage.SCORE, 1_000_000)
    m.stages.flush()
    assert _samples(m)[("ringwatch_stage_cpu_seconds_total", (("stage", "score"),))] == 0.003
