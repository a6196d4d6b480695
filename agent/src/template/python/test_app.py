"""Unit tests of the plugin's logic, natively: `./build.sh test`."""

import pytest

from app import App
from warden import CRITICAL, OK, WARNING, Action, ConfigError, HttpError
from warden_testing import FakeHost


def test_a_healthy_service_is_ok_and_runs_are_counted():
    host = FakeHost().route("GET", "https://svc/health", 200, headers={"Strict-Transport-Security": "max-age=60"})
    ctx = host.context(App(), {"url": "https://svc/health"})
    report = App().run(ctx)
    assert report.status == OK
    assert report.findings == []
    assert App().run(ctx).status == OK
    assert host.state["runs"] == "2"


def test_a_wrong_status_is_critical_and_slow_is_a_warning():
    host = FakeHost().route("GET", "http://svc/", 503)
    assert App().run(host.context(App(), {"url": "http://svc/"})).status == CRITICAL
    host = FakeHost().route("GET", "http://svc/", 200, elapsed_ms=5000)
    assert App().run(host.context(App(), {"url": "http://svc/", "max_ms": 100})).status == WARNING


def test_missing_hsts_is_a_finding():
    host = FakeHost().route("GET", "https://svc/", 200)
    report = App().run(host.context(App(), {"url": "https://svc/"}))
    assert [f.rule for f in report.findings] == ["missing-hsts"]


def test_bad_config_names_the_field():
    with pytest.raises(ConfigError, match="url: "):
        App().validate({"url": "ftp://x"})
    with pytest.raises(ConfigError, match="max_ms: "):
        App().validate({"url": "http://x", "max_ms": -1})
    with pytest.raises(ConfigError, match="colour: unknown field"):
        App().validate({"url": "http://x", "colour": "red"})


def test_a_host_not_granted_is_refused():
    with pytest.raises(HttpError, match="does not grant"):
        App().run(FakeHost().context(App(), {"url": "http://elsewhere/"}))


def test_a_dry_run_action_says_what_it_would_do_and_sends_nothing():
    host = FakeHost()
    action = Action("recheck", "key-1", True, "web", CRITICAL, "web answered 503")
    report = App().run(host.context(App(), {"url": "http://svc/"}, action=action))
    assert report.status == OK
    assert report.summary == "dry run of recheck: would probe http://svc/"
    assert host.requests == []
