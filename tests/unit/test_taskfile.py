"""Task files: rendering, parsing and the docker-build command line."""

from __future__ import annotations

import pytest

from devstack.taskfile import RunContext, TaskError, parse, parse_build, render

CONTEXT = RunContext(run_id="dm7", registry="127.0.0.1:5001", registry_name="lab", date="20261129-000000z")


def test_render_replaces_aliases_and_templates() -> None:
    text = "cmd: $Registry/app:{{.Run.ID}} --from {{ .Values.source }} on $RegistryName at $Date"
    assert render(text, CONTEXT, {"source": "ci"}) == (
        "cmd: 127.0.0.1:5001/app:dm7 --from ci on lab at 20261129-000000z"
    )


def test_render_refuses_an_undefined_value() -> None:
    with pytest.raises(TaskError, match=r"\.Values\.missing"):
        render("cmd: {{.Values.missing}}", CONTEXT, {})


def test_parse_cli_run_task() -> None:
    task = parse(
        "version: v1.1.0\nsteps:\n  - cmd: $Registry/hello:v1 --greet 'a b'\n"
        "    disableWorkingDirectoryOverride: true\n    timeout: 30\n    env: [A=1]\n",
        CONTEXT,
    )
    (step,) = task.steps
    assert step.kind == "cmd"
    assert step.args == ["127.0.0.1:5001/hello:v1", "--greet", "a b"]
    assert step.timeout == 30
    assert step.env == ("A=1",)
    assert step.disable_working_directory_override
    assert step.id == "acb_step_0"


def test_parse_build_and_push_steps() -> None:
    task = parse(
        "steps:\n  - id: b\n    build: -t $Registry/x:$ID -f Dockerfile .\n  - push: [$Registry/x:$ID]\n",
        CONTEXT,
    )
    assert [s.kind for s in task.steps] == ["build", "push"]
    assert task.steps[1].args == ["127.0.0.1:5001/x:dm7"]
    assert task.steps[0].id == "b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps: [", "not valid YAML"),
        ("- a\n- b\n", "mapping"),
        ("steps: []\n", "no steps"),
        ("steps:\n  - cmd: a\n    build: .\n", "exactly one"),
        ("steps:\n  - run: a\n", "unsupported keys"),
        ("steps:\n  - cmd: a\n    timeout: -1\n", "timeout"),
        ("steps:\n  - cmd: a\n    env: [NOEQUALS]\n", "KEY=VALUE"),
        ("steps:\n  - push: []\n", "push takes"),
        ('steps:\n  - cmd: "echo \'unclosed"\n', "cannot split"),
    ],
)
def test_parse_rejects_bad_tasks(text: str, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        parse(text, CONTEXT)


def test_parse_build_command_line() -> None:
    build = parse_build(
        ["-t", "r/a:1", "--tag=r/a:latest", "-f", "sub/Dockerfile", "--build-arg", "X=1", "--no-cache", "ctx"]
    )
    assert build.tags == ["r/a:1", "r/a:latest"]
    assert build.dockerfile == "sub/Dockerfile"
    assert build.build_args == ["X=1"]
    assert build.no_cache
    assert build.context == "ctx"


@pytest.mark.parametrize(
    ("args", "message"),
    [(["-t"], "needs a value"), (["--squash", "."], "unsupported option"), (["-t", "a"], "build context")],
)
def test_parse_build_rejects(args: list[str], message: str) -> None:
    with pytest.raises(TaskError, match=message):
        parse_build(args)
