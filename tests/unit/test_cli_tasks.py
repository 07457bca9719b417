"""The request bodies Dockmaster sends to ACR Tasks, as the Azure CLI builds them."""

from __future__ import annotations

import base64
import io
import tarfile
from pathlib import Path

import yaml

from shared.tasks import cmd_task_yaml, docker_build_request, encoded_cmd_request, pack_context


def test_cmd_task_matches_the_cli() -> None:
    assert yaml.safe_load(cmd_task_yaml("$Registry/app@sha256:abc --check", timeout=60)) == {
        "version": "v1.1.0",
        "steps": [
            {
                "cmd": "$Registry/app@sha256:abc --check",
                "disableWorkingDirectoryOverride": True,
                "timeout": 60,
            }
        ],
    }


def test_cmd_task_survives_yaml_metacharacters() -> None:
    hostile = "img: {x}\n- evil: true # comment"
    steps = yaml.safe_load(cmd_task_yaml(hostile))["steps"]
    assert steps == [{"cmd": hostile, "disableWorkingDirectoryOverride": True}]


def test_encoded_request_round_trips() -> None:
    body = encoded_cmd_request("$Registry/a:v1")
    assert body["type"] == "EncodedTaskRunRequest"
    assert body["platform"] == {"os": "Linux", "architecture": "amd64"}
    assert yaml.safe_load(base64.b64decode(body["encodedTaskContent"]))["steps"][0]["cmd"] == "$Registry/a:v1"
    assert body["timeout"] == 3600


def test_pack_context_honours_dockerignore(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("secrets/\n*.log\n")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key").write_text("x")
    (tmp_path / "app.log").write_text("x")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print()")
    with tarfile.open(fileobj=io.BytesIO(pack_context(tmp_path)), mode="r:gz") as archive:
        names = sorted(archive.getnames())
    assert names == [".dockerignore", "Dockerfile", "src/main.py"]


def test_docker_build_request_shape() -> None:
    body = docker_build_request("source/x.tar.gz", ["sample/hello-world:v1"], build_args={"V": "1"})
    assert body["type"] == "DockerBuildRequest"
    assert body["isPushEnabled"] is True
    assert body["arguments"] == [{"name": "V", "value": "1", "isSecret": False}]
    assert body["sourceLocation"] == "source/x.tar.gz"
