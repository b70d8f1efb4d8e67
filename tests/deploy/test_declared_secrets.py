"""The deploy files and the secret declarations agree (docs/extending.md, "A new secret"):
compose and the dev overlay provide exactly the secrets `secrets init` makes (every declared
secret with a development generator), every production secrets component provides every secret
production requires, and no deploy file provides a secret the app does not declare."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import SECRETS
from tests.deploy.tools import ROOT

DECLARED = {spec.file_name for spec in SECRETS}
GENERATED = {spec.file_name for spec in SECRETS if spec.generate is not None}
REQUIRED_IN_PRODUCTION = {spec.file_name for spec in SECRETS if spec.required}
K8S = ROOT / "k8s"


def _yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]


def test_compose_gives_the_app_exactly_the_generated_secrets() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    top_level = set(compose["secrets"])
    assert top_level <= DECLARED, f"undeclared secrets in compose: {top_level - DECLARED}"
    app = compose["services"]["app"]
    mounted = {s if isinstance(s, str) else s["source"] for s in app.get("secrets", [])}
    assert mounted == GENERATED, (
        f"the app service must mount every secret `secrets init` makes: {GENERATED ^ mounted}"
    )
    for name in top_level:
        assert compose["secrets"][name] == {"file": f"./secrets/{name}"}


def test_the_dev_overlay_generates_exactly_the_generated_secrets() -> None:
    kustomization = yaml.safe_load((K8S / "overlays" / "dev" / "kustomization.yaml").read_text())
    keys = set()
    for generator in kustomization.get("secretGenerator", []):
        for entry in generator.get("files", []):
            keys.add(entry.split("=", 1)[0])
    assert keys == GENERATED, f"dev overlay vs secrets init: {GENERATED ^ keys}"


ESO_COMPONENTS = sorted(
    p.parent.name for p in K8S.glob("components/secrets-*/externalsecrets.yaml")
)


@pytest.mark.parametrize("component", ESO_COMPONENTS)
def test_every_production_component_provides_the_required_secrets(component: str) -> None:
    keys = set()
    for doc in _yaml_documents(K8S / "components" / component / "externalsecrets.yaml"):
        if doc.get("kind") == "ExternalSecret":
            keys |= {item["secretKey"] for item in doc["spec"].get("data", [])}
    assert keys <= DECLARED, f"{component} provides undeclared secrets: {keys - DECLARED}"
    assert keys >= REQUIRED_IN_PRODUCTION, f"{component} lacks {REQUIRED_IN_PRODUCTION - keys}"


def test_no_deploy_file_names_an_undeclared_secret_file() -> None:
    mounted = re.compile(r"/run/secrets/([a-z0-9_]+)")
    for path in [ROOT / "docker-compose.yml", *K8S.rglob("*.yaml")]:
        for name in mounted.findall(path.read_text()):
            assert name in DECLARED, (
                f"{path.relative_to(ROOT)} reads undeclared /run/secrets/{name}"
            )
