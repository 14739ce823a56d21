"""Message templates (alert_infra.templates): Jinja2 in a sandbox, bounded, redacted, lazily imported.

What each group proves:

- rendering: variables and the redacted ``alert`` reach the template; optional variables work.
- errors: an undefined variable is named; a ``{name}`` placeholder of str.format gets the
  ``{{ name }}`` hint; every error names the template (and channel) and the template line.
- sandbox: each listed escape (attribute walks to ``__class__``/``__globals__``/``__subclasses__``/
  ``mro``, ``str.format``/``format_map`` tricks, ``|attr``) is refused, and a fuzzer finds no
  path to a class, function or module.
- bounds: repetition, powers, printf widths, amplifying filters, ``range``, nested loops,
  recursive and fan-out macros, doubling concatenations and the clock each stop a render; the
  output is capped with a marker.
- secrets: variables are redacted before rendering and the output after it (a secret assembled
  from pieces is masked), before the channel's escape hook; error messages never carry one.
- configuration: ``[templates.NAME]`` validated at once ("did you mean"), ``Alert.from_template``
  and ``create_alert_from_template`` with every form of ``config``.
- packaging: ``import alert_infra`` never imports jinja2; without Jinja2 the error says what to
  install; a Jinja2 older than 3.1.6 is refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import alert_infra
from alert_infra import Alert, AlertConfigurationError, create_alert_from_template, register_secret, release_secrets
from alert_infra import templates as tpl
from alert_infra.formatting import escape_html
from alert_infra.templates import MAX_OUTPUT, TRUNCATION_MARKER, compile_template, templates_from_config

pytest.importorskip("jinja2")


def render(source: str, **variables: Any) -> str:
    return compile_template(source, "t").render(variables)


def refused(source: str, **variables: Any) -> str:
    with pytest.raises(AlertConfigurationError) as info:
        render(source, **variables)
    return str(info.value)


@pytest.fixture
def secret() -> Any:
    owner = object()
    value = "zq7-Secret-Hunter2-value"
    register_secret(value, owner=owner)
    yield value
    release_secrets(owner)


# -- rendering -----------------------------------------------------------------------------------


def test_renders_variables() -> None:
    assert render("[RISK] {{ risk_type }} threshold breached", risk_type="VaR") == "[RISK] VaR threshold breached"
    assert render("{{ n + 1 }} {{ items|join(', ') }} {{ d.k }}", n=1, items=["a", "b"], d={"k": "v"}) == "2 a, b v"
    assert render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", d={"a": 1, "b": 2}) == "a=1;b=2;"
    assert render("{{ s.upper() }} {{ s.split('-')|last }}", s="db-primary") == "DB-PRIMARY primary"


def test_optional_variables() -> None:
    assert render("{{ x|default('none') }}{% if y is defined %}{{ y }}{% endif %}") == "none"


def test_application_objects_reach_the_template_as_text() -> None:
    class Service:
        name = "billing"

        def __str__(self) -> str:
            return "service billing"

        def shutdown(self) -> None:  # pragma: no cover - must never be reachable
            raise AssertionError("a template called a method")

    assert render("{{ s }}", s=Service()) == "service billing"
    assert "has no attribute 'shutdown'" in refused("{{ s.shutdown() }}", s=Service())


def test_alert_and_digest_contexts() -> None:
    alert = Alert(
        title="Disk full",
        message="/var at 97%",
        severity="warning",
        source="db1",
        tags=["disk"],
        metadata={"host": "db1", "api_key": "k-123"},
        links={"Runbook": "https://example.com/rb"},
    )
    title = compile_template("[{{ alert.severity|upper }}] {{ alert.title }}", "title_template", channel="ops")
    assert title.render_alert(alert) == "[WARNING] Disk full"
    body = compile_template(
        "{{ alert.metadata.host }} {{ alert.metadata.api_key }} {{ alert.status }} "
        "{% for label, url in alert.links %}{{ label }}: {{ url }}{% endfor %} {{ alert.created_at[:4] }}",
        "body_template",
        channel="ops",
    )
    text = body.render_alert(alert)
    assert text.startswith("db1 [REDACTED] firing Runbook: https://example.com/rb 20")
    assert body.variables == {"alert"}
    source = "{{ alerts|length }} in {{ group.name }}: {{ alerts|map(attribute='title')|join(', ') }}"
    digest = compile_template(source, "digest")
    assert digest.render_digest([alert, alert.replace(title="CPU")], {"name": "db"}) == "2 in db: Disk full, CPU"


def test_concurrent_renders_keep_their_own_budget() -> None:
    template = compile_template("{% for i in range(n) %}{{ i }}{% endfor %}", "t")
    results: list[str] = []

    def work() -> None:
        for _ in range(20):
            results.append(template.render({"n": 3000}))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 80 and len(set(results)) == 1


def test_compiled_once_and_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    first = compile_template("cached {{ x }}", "a")
    second = compile_template("cached {{ x }}", "b")
    assert first._template is second._template
    monkeypatch.setattr(tpl, "CACHE_SIZE", 2)
    for i in range(5):
        compile_template(f"n{i} {{{{ x }}}}", "t")
    assert len(tpl._CACHE) <= 2


# -- errors ----------------------------------------------------------------------------------------


def test_undefined_variable_is_named_with_its_line() -> None:
    with pytest.raises(AlertConfigurationError) as info:
        compile_template("Risk\n{{ risk_type }} over {{ threshold }}", "risk.title").render({"threshold": 1})
    assert str(info.value) == "templates.risk.title, line 2: 'risk_type' is undefined"
    assert info.value.lineno == 2 and info.value.template == "templates.risk.title"  # type: ignore[attr-defined]
    message = refused("{{ a }}{{ b }}")
    assert "'a' is undefined" in message and "missing variables: a, b" in message


@pytest.mark.parametrize(
    ("source", "hint"),
    [
        ("[RISK] {risk_type} threshold breached", "{{ risk_type }}"),
        ("value {value:.2f}", "{{ value }}"),
        ("host {alert.host}", "{{ alert.host }}"),
        ("first\nsecond {x!r}", "{{ x }}"),
    ],
)
def test_format_placeholders_get_the_jinja_hint(source: str, hint: str) -> None:
    with pytest.raises(AlertConfigurationError, match=r"str\.format placeholder") as info:
        compile_template(source, "t")
    assert f"write {hint}" in str(info.value)
    assert info.value.lineno == source.count("\n") + 1  # type: ignore[attr-defined]


def test_braces_that_are_not_placeholders_pass() -> None:
    assert render('{"text": "{{ t }}"}', t="x") == '{"text": "x"}'
    assert render("{{ '{literal}' }} {}", t="x") == "{literal} {}"


@pytest.mark.parametrize(
    ("source", "line", "problem"),
    [
        ("ok\n{% if %}", 2, "Expected an expression"),
        ("a\nb\n{{ 1 / 0 }}", 3, "ZeroDivisionError"),
        ("a\n{{ x.__class__ }}", 2, "refused by the sandbox"),
        ("a\n\n{% for i in range(99999) %}{% endfor %}", 3, "range() of more than"),
        ("{% for x in y %}\n{{ x }}\n{% endfor %}{{ z }}", 3, "'z' is undefined"),
    ],
)
def test_errors_name_the_channel_the_template_and_the_line(source: str, line: int, problem: str) -> None:
    with pytest.raises(AlertConfigurationError) as info:
        compile_template(source, "body_template", channel="ops").render({"x": 1, "y": [1]})
    assert str(info.value).startswith(f"channels.ops.body_template, line {line}: ")
    assert problem in str(info.value)


def test_a_template_must_be_text_of_bounded_size() -> None:
    with pytest.raises(AlertConfigurationError, match="a template is text"):
        compile_template(42, "t")  # type: ignore[arg-type]
    with pytest.raises(AlertConfigurationError, match="longer than"):
        compile_template("x" * (tpl.MAX_SOURCE + 1), "t")


# -- the sandbox -----------------------------------------------------------------------------------

ESCAPES = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ x.__class__.__base__.__subclasses__() }}",
    "{{ x.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ range.__globals__ }}",
    "{{ self.__dict__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ (x|attr('__class__')).mro() }}",
    "{{ x|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ ''|attr('__class__')|attr('__subclasses__') }}",
    "{{ '{0.__class__}'.format(x) }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(x) }}",
    "{{ '{a.__class__}'.format_map({'a': x}) }}",
    "{{ ('{0.__class__}'|attr('format'))(x) }}",
    "{{ s|attr('format_map') }}",
    "{% set f = s.format %}{{ f(x) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ ''.join }}",
    "{{ s.center(999999999) }}",
    "{{ s.zfill(999999999) }}",
    "{{ x.to_bytes(999999999, 'big') }}",
    "{{ d.update({'a': 1}) }}",
    "{{ l.append(1) }}",
    "{{ lipsum(100000) }}",
    "{{ config }}",
    "{{ request }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_are_refused(source: str) -> None:
    with pytest.raises(AlertConfigurationError) as info:
        render(source, x=1, s="{0}", d={}, l=[])
    assert str(info.value).startswith("templates.t")


_REACH = st.sampled_from(
    ["__class__", "__mro__", "mro", "__subclasses__", "__globals__", "__init__", "__dict__", "__base__",
     "format", "format_map", "__builtins__", "func_globals", "gi_frame", "f_globals", "__self__", "os"]
)  # fmt: skip
_START = st.sampled_from(["x", "s", "d", "l", "range", "cycler", "joiner", "namespace", "self", "loop", "''", "()"])


@given(start=_START, path=st.lists(_REACH, min_size=1, max_size=4), via_attr=st.booleans())
def test_no_attribute_path_reaches_code(start: str, path: list[str], via_attr: bool) -> None:
    """Whatever chain of dangerous names follows whatever starting value, nothing but an error (or
    plain data) comes out: never a class, a function, a frame or a module."""
    expr = start + "".join(f"|attr({name!r})" if via_attr else f".{name}" for name in path)
    source = f"{{% for _ in [1] %}}{{{{ {expr} }}}}{{% endfor %}}"
    try:
        out = render(source, x=1, s="s", d={"a": 1}, l=[1])
    except AlertConfigurationError:
        return
    for marker in ("<class", "<function", "<built-in", "<module", "<frame", "<bound", "<method"):
        assert marker not in out, (source, out)


# -- bounds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 100000000 }}",
        "{{ [1] * 100000000 }}",
        "{{ 100000000 * 'x' }}",
        "{{ 2 ** 100000 }}",
        "{{ 7 ** (7 ** 7) }}",
        "{% set a = 2 ** 4000 %}{{ a * a }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ '%*d' % (999999999, 1) }}",
        "{{ '%0999999999d'|format(1) }}",
        "{{ 'x'|center(999999999) }}",
        "{{ 'a\na\na'|indent(999999999) }}",
        "{{ ('x' * 100000)|replace('', 'y' * 100) }}",
        "{{ range(10000)|join('x' * 1000) }}",
        "{{ [1, 2]|slice(100000000) }}",
        "{{ [1, 2]|batch(100000000, 0) }}",
        "{{ ('x' * 100000)|wordwrap(1, wrapstring='y' * 100) }}",
        "{{ {'a': 1}|tojson(indent=100000000) }}",
        "{{ range(100000000)|list }}",
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "{% set r = range(10000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}",
        "{% for a in s %}{% for b in s %}{% for c in s %}{% endfor %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
        "{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('x' * 60000) }}",
        "{% set a = 'x' * 600000 %}{% set b = a ~ a %}{% set c = b ~ b %}{{ c|length }}",
        "{% set a = 'x' * 600000 %}{{ (a + a)|length }}",
        "{% set ns = namespace(s='x' * 1000) %}{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% for x in t recursive %}{{ loop([x]) }}{% endfor %}",
    ],
)
def test_bombs_stop(source: str) -> None:
    message = refused(source, s="x" * 2000, t=[1])
    assert "refused by the sandbox" in message or "recursion" in message, message


def test_the_clock_stops_a_render(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tpl, "RENDER_TIMEOUT", 0.0)
    assert "took longer than" in refused("{% for i in range(1000) %}{{ i }}{% endfor %}")


def test_huge_output_is_capped_with_a_marker() -> None:
    out = render("{% for i in range(10000) %}{{ 'x' * 100 }}{% endfor %}")
    assert len(out) == MAX_OUTPUT and out.endswith(TRUNCATION_MARKER)
    assert render("{{ 'x' * n }}", n=MAX_OUTPUT) == "x" * MAX_OUTPUT


@given(n=st.integers(min_value=0, max_value=tpl.MAX_VALUE))
def test_output_never_exceeds_the_cap(n: int) -> None:
    out = render("{{ 'ab' * (n // 2) }}{{ 'c' * (n % 2) }}", n=n)
    assert len(out) == min(n, MAX_OUTPUT)


# -- secrets ---------------------------------------------------------------------------------------


def test_a_registered_secret_is_masked_whole_or_assembled(secret: str) -> None:
    half = len(secret) // 2
    assert secret not in render("note: {{ note }}", note=f"the key is {secret}")
    assert secret not in render("{{ a ~ b }}", a=secret[:half], b=secret[half:])
    assert secret not in render("{{ a }}{{ b }}", a=secret[:half], b=secret[half:])
    assert secret not in render("{{ a|reverse }}", a=secret[::-1])
    assert "[REDACTED]" in render("{{ a ~ b }}", a=secret[:half], b=secret[half:])


def test_sensitive_names_reach_the_template_redacted() -> None:
    out = render("{{ password }} {{ user }} {{ conn.token }}", password="hunter2", user="bob", conn={"token": "t"})
    assert out == "[REDACTED] bob [REDACTED]"


def test_error_messages_never_carry_a_secret(secret: str) -> None:
    half = len(secret) // 2
    message = refused("{{ d[a ~ b] }}", d={}, a=secret[:half], b=secret[half:])
    assert secret not in message


def test_redaction_happens_before_the_channel_escapes(secret: str) -> None:
    template = compile_template("<{{ x }}> & {{ a }}{{ b }}", "body_template", channel="mail")
    out = template.render({"x": "b", "a": secret[:5], "b": secret[5:]}, escape=escape_html)
    assert out == "&lt;b&gt; &amp; [REDACTED]"


@given(data=st.data())
def test_no_split_of_a_registered_secret_survives(data: st.DataObject) -> None:
    secret = data.draw(st.text(alphabet="abcdefghijkmnpqrstuvwxyz23456789", min_size=12, max_size=40), label="secret")
    cut = data.draw(st.integers(min_value=0, max_value=len(secret)), label="cut")
    owner = object()
    register_secret(secret, owner=owner)
    try:
        for source in ("{{ a ~ b }}", "{{ a }}{{ b }}", "x{{ [a, b]|join }}y", "{{ (a ~ b)|upper|lower }}"):
            assert secret not in render(source, a=secret[:cut], b=secret[cut:])
    finally:
        release_secrets(owner)


@given(text=st.text(alphabet=st.characters(blacklist_characters="{}%#\r", blacklist_categories=("Cs",)), max_size=80))
def test_literal_text_renders_as_itself(text: str) -> None:
    expected = text[:-1] if text.endswith("\n") else text  # Jinja2 drops one trailing newline
    assert render(text) == alert_infra.redact_text(expected)


# -- [templates.NAME] and from_template ----------------------------------------------------------

CONFIG = {
    "templates": {
        "risk": {
            "title": "[RISK] {{ risk_type }} threshold breached",
            "body": "{{ risk_type }} at {{ value }} (limit {{ limit }}) on {{ source|default('?') }}",
        }
    }
}


def test_templates_from_config() -> None:
    templates = templates_from_config(CONFIG)
    assert list(templates) == ["risk"]
    assert templates["risk"].variables == {"risk_type", "value", "limit", "source"}
    assert templates["risk"].render({"risk_type": "VaR", "value": 3, "limit": 2})[0] == "[RISK] VaR threshold breached"


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "templates": {
            "a": {"titel": "x", "body": "y"},
            "b": {"title": "x", "message": "y"},
            "c": {"title": "ok", "body": "line\n{% if %}"},
            "d": {"title": "{legacy}", "body": "y"},
            "e": "not a table",
        }
    }
    with pytest.raises(AlertConfigurationError) as info:
        templates_from_config(data, source="alert-infra.toml")
    message = str(info.value)
    assert message.startswith("7 problems in alert-infra.toml:")
    assert "templates.a.titel: unknown key; did you mean 'title'?" in message
    assert "templates.a.title: missing" in message
    assert "templates.b.message: unknown key; did you mean 'body'?" in message
    assert "templates.c.body, line 2: " in message
    assert "templates.d.title, line 1: '{legacy}' is a str.format placeholder" in message
    assert "templates.e: must be a table" in message
    problems: list[str] = []
    valid = templates_from_config({"templates": {**CONFIG["templates"], **data["templates"]}}, problems)
    assert len(problems) == 7 and set(valid) == {"risk"}
    assert templates_from_config({}) == {}
    with pytest.raises(AlertConfigurationError, match="must be a table"):
        templates_from_config({"templates": ["x"]})


def test_alert_from_template_with_a_mapping() -> None:
    alert = Alert.from_template(
        "risk", config=CONFIG, risk_type="VaR", value=3, limit=2, severity="critical", tags=["risk"], source="desk"
    )
    assert alert.title == "[RISK] VaR threshold breached"
    assert alert.message == "VaR at 3 (limit 2) on desk"
    assert (alert.severity, alert.tags, alert.source) == ("critical", ("risk",), "desk")


def test_reserved_variables_are_validated_as_alert_fields() -> None:
    with pytest.raises(alert_infra.AlertValidationError):
        Alert.from_template("risk", config=CONFIG, risk_type="VaR", value=3, limit=2, severity="apocalyptic")


def test_missing_variable_and_unknown_template() -> None:
    with pytest.raises(AlertConfigurationError, match=r"templates\.risk\.title, line 1: 'risk_type' is undefined"):
        Alert.from_template("risk", config=CONFIG, value=1)
    with pytest.raises(AlertConfigurationError, match="no template named 'rsik'; did you mean 'risk'"):
        Alert.from_template("rsik", config=CONFIG)


def test_create_alert_from_template_takes_a_variable_called_config() -> None:
    data = {"templates": {"cfg": {"title": "config {{ config }}", "body": "name {{ name }}"}}}
    alert = create_alert_from_template("cfg", {"config": "changed", "name": "x"}, config=data)
    assert (alert.title, alert.message) == ("config changed", "name x")


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


TOML = """
[channels.ops]
type = "console"

[templates.risk]
title = "[RISK] {{ risk_type }}"
body = '''
{{ risk_type }} breached
'''
"""


def test_config_from_a_path_an_object_and_the_process_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "alert-infra.toml", TOML)
    assert Alert.from_template("risk", config=path, risk_type="VaR").message == "VaR breached"
    assert Alert.from_template("risk", config=str(path), risk_type="VaR").title == "[RISK] VaR"

    class Loaded:  # an AlertConfig that does not read [templates] itself: its source is read
        source = str(path)

    assert Alert.from_template("risk", config=Loaded(), risk_type="VaR").title == "[RISK] VaR"

    class WithTemplates:  # an AlertConfig that does
        templates = templates_from_config(CONFIG)

    assert Alert.from_template("risk", config=WithTemplates(), risk_type="A", value=1, limit=2).title.startswith(
        "[RISK] A"
    )
    monkeypatch.setenv("ALERT_INFRA_CONFIG", str(path))
    assert Alert.from_template("risk", risk_type="VaR").title == "[RISK] VaR"
    monkeypatch.delenv("ALERT_INFRA_CONFIG")
    monkeypatch.chdir(tmp_path)
    pyproject = _write(tmp_path / "pyproject.toml", "[tool.alert-infra.templates.p]\ntitle = 't'\nbody = 'b'\n")
    path.unlink()
    assert Alert.from_template("p").title == "t"
    pyproject.unlink()
    with pytest.raises(AlertConfigurationError, match="no alert-infra configuration"):
        Alert.from_template("p")
    with pytest.raises(AlertConfigurationError, match="config must be"):
        Alert.from_template("p", config=42)


# -- packaging -------------------------------------------------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_import_alert_infra_does_not_import_jinja2() -> None:
    code = (
        "import sys, json\n"
        "import alert_infra\n"
        "from alert_infra import Alert, create_alert_from_template\n"
        "import alert_infra.templates\n"
        "Alert('t', 'm')\n"
        "print(json.dumps('jinja2' in sys.modules))\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) is False


def test_without_jinja2_the_error_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['jinja2'] = None  # as if not installed\n"
        "from alert_infra import Alert, AlertConfigurationError\n"
        "from alert_infra.templates import templates_from_config\n"
        "data = {'templates': {'t': {'title': 'x', 'body': 'y'}}}\n"
        "try:\n"
        "    Alert.from_template('t', config=data)\n"
        "except AlertConfigurationError as exc:\n"
        "    print(exc)\n"
        "problems = []\n"
        "templates_from_config(data, problems)\n"
        "print(problems[0])\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert "pip install './core[templates]'" in first and "alert-infra[templates]" in first
    assert second.startswith("templates: message templates need Jinja2")


def test_an_old_jinja2_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import jinja2

    monkeypatch.setattr(jinja2, "__version__", "3.1.5")
    with pytest.raises(AlertConfigurationError, match=r"Jinja2 3\.1\.6 or newer"):
        render("x")
