"""k8s/: every overlay (and every prod secrets variant) renders with kustomize and validates
against the Kubernetes schemas offline; the rendered pods are locked down, probed and bounded;
secrets are mounted read-only without subPath; RBAC and cloud IAM grant only what is needed."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.config import SECRETS
from tests.deploy.tools import ROOT, run

K8S = ROOT / "k8s"
KUBERNETES_VERSION = "1.33.0"
PROD_SECRETS = ["secrets-aws", "secrets-gcp", "secrets-azure", "secrets-vault", "secrets-in-app"]
VARIANTS = ["dev", *(f"prod:{c}" for c in PROD_SECRETS)]
#: Custom resources: no bundled schema, structure-checked here instead.
CRD_GROUPS = ("external-secrets.io/", "monitoring.coreos.com/")
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet"}


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl (with built-in kustomize) is required to render k8s/")
    return found


@pytest.fixture(scope="module")
def k8s_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of k8s/ with dummy dev secret files (the real ones are git-ignored and local)."""
    root = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("secrets"))
    secrets = root / "overlays" / "dev" / "secrets"
    secrets.mkdir()
    for spec in SECRETS:  # what `secrets init` makes there (tests/deploy/test_declared_secrets)
        if spec.generate is not None:
            (secrets / spec.file_name).write_text(f"dummy-{spec.file_name}\n")
    return root


def render(k8s_copy: Path, variant: str) -> list[dict[str, Any]]:
    overlay = k8s_copy / "overlays" / variant.split(":")[0]
    if ":" in variant:  # prod with another secrets component, as docs/deploy.md tells users to
        kustomization = overlay / "kustomization.yaml"
        text = kustomization.read_text()
        assert "../../components/secrets-aws" in text
        overlay = overlay.with_name(variant.replace(":", "-"))
        shutil.copytree(kustomization.parent, overlay, dirs_exist_ok=True)
        component = variant.split(":")[1]
        swapped = text.replace("../../components/secrets-aws", f"../../components/{component}")
        (overlay / "kustomization.yaml").write_text(swapped)
    result = run([kubectl(), "kustomize", str(overlay)])
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(k8s_copy: Path) -> dict[str, list[dict[str, Any]]]:
    return {variant: render(k8s_copy, variant) for variant in VARIANTS}


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] not in POD_TEMPLATE_KINDS:
            continue
        spec = doc["spec"]
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        yield f"{doc['kind']}/{doc['metadata']['name']}", spec["template"]["spec"]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """One object by kind and name (generated ConfigMaps carry a content-hash suffix)."""
    pattern = re.compile(re.escape(name) + (r"(-[a-z0-9]{10})?" if kind == "ConfigMap" else ""))
    matches = [d for d in docs if d["kind"] == kind and pattern.fullmatch(d["metadata"]["name"])]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_manifest_validates_against_the_kubernetes_schema(
    rendered: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    docs = rendered[variant]
    assert docs
    for doc in docs:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        for field in (doc.get("apiVersion"), doc.get("kind"), doc["metadata"].get("name")):
            assert field, name
        if doc["apiVersion"].startswith(CRD_GROUPS):
            assert isinstance(doc.get("spec"), dict), f"{name}: no spec"
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_namespaced_object_lands_in_the_app_namespace(
    rendered: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    for doc in rendered[variant]:
        if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            where = f"{doc['kind']}/{doc['metadata']['name']}"
            assert doc["metadata"].get("namespace") == "fastapi-secrets-template", where


def test_the_schema_validation_rejects_a_broken_manifest() -> None:
    broken = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "two", "selector": {}, "template": {"spec": {"containers": []}}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    typo = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}, "automount": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_workload_the_base_requires_is_present(
    rendered: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    docs = rendered[variant]
    for kind, name in [
        ("Namespace", "fastapi-secrets-template"),
        ("ServiceAccount", "app"),
        ("Deployment", "app"),
        ("Service", "app"),
        ("ConfigMap", "app-config"),
        ("Job", "app-migrate"),
        ("PodDisruptionBudget", "app"),
        ("HorizontalPodAutoscaler", "app"),
        ("NetworkPolicy", "default-deny"),
        ("NetworkPolicy", "app-egress"),
    ]:
        find(docs, kind, name)
    assert find(docs, "ServiceAccount", "app")["automountServiceAccountToken"] is False
    assert find(docs, "Job", "app-migrate")["spec"]["template"]["spec"]["containers"][0][
        "args"
    ] == ["migrate"]
    default_deny = find(docs, "NetworkPolicy", "default-deny")["spec"]
    assert default_deny["podSelector"] == {}
    assert set(default_deny["policyTypes"]) == {
        "Ingress",
        "Egress",
    }


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pod_is_non_root_read_only_and_without_capabilities(
    rendered: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    for name, spec in pod_specs(rendered[variant]):
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, name
        assert pod.get("runAsUser", 0) > 0, name
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        for container in spec["containers"] + spec.get("initContainers", []):
            where = f"{name}/{container['name']}"
            ctx = container.get("securityContext", {})
            assert ctx.get("readOnlyRootFilesystem") is True, where
            assert ctx.get("allowPrivilegeEscalation") is False, where
            assert ctx.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not ctx.get("capabilities", {}).get("add"), where
            assert ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert not ctx.get("privileged"), where
            resources = container.get("resources", {})
            for field in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(field, {})), f"{where}: {field}"
            image = container["image"]
            assert re.search(r":[\w.-]+$|@sha256:[0-9a-f]{64}$", image), f"{where}: untagged"
            assert not image.endswith(":latest"), where


def _secret_volumes(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result = {}
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            result[volume["name"]] = volume["secret"]
        elif "projected" in volume and any("secret" in s for s in volume["projected"]["sources"]):
            result[volume["name"]] = volume["projected"]
    return result


@pytest.mark.parametrize("variant", VARIANTS)
def test_secrets_are_mounted_read_only_0400_without_sub_path(
    rendered: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    for name, spec in pod_specs(rendered[variant]):
        secret_volumes = _secret_volumes(spec)
        for volume, source in secret_volumes.items():
            assert source.get("defaultMode") == 0o400, f"{name}: {volume} mode"
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                if mount["name"] in secret_volumes:
                    where = f"{name}/{container['name']}:{mount['mountPath']}"
                    assert mount.get("readOnly") is True, where
                    # subPath mounts never see updates: rotation would not reach the pod.
                    assert "subPath" not in mount, where
                    assert "subPathExpr" not in mount, where
            for env in container.get("env", []):
                assert "secretKeyRef" not in env.get("valueFrom", {}), f"{name}: secret in env"
            for source in container.get("envFrom", []):
                assert "secretRef" not in source, f"{name}: secret in env"


def test_the_api_reads_secrets_from_one_projected_volume_at_run_secrets(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    spec = find(rendered["dev"], "Deployment", "app")["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "secrets")["projected"]
    assert [s["secret"]["name"] for s in volume["sources"]] == ["app-secrets", "app-jwt-keys"]
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "secrets")
    assert mount["mountPath"] == "/run/secrets"
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsUser"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_api_has_probes_and_a_graceful_shutdown_budget(
    rendered: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    docs = rendered[variant]
    spec = find(docs, "Deployment", "app")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert spec["automountServiceAccountToken"] is False
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    config = find(docs, "ConfigMap", "app-config")["data"]
    drain = int(config["GRACEFUL_TIMEOUT_SECONDS"])
    assert spec["terminationGracePeriodSeconds"] > int(pre_stop[1]) + drain
    assert config["HOST"] == "0.0.0.0"
    # Every pod workload also has probes (the one-shot Jobs excepted).
    for name, pod in pod_specs(docs):
        if name.startswith(("Deployment/", "StatefulSet/")):
            for c in pod["containers"]:
                assert "livenessProbe" in c, name
                assert "readinessProbe" in c, name


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_secret_values_outside_secrets(
    rendered: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    reference = re.compile(r"^(aws-sm|gcp-sm|azure-kv|vault|file)://")
    for doc in rendered[variant]:
        if doc["kind"] == "ConfigMap":
            for key, value in doc.get("data", {}).items():
                if re.search(r"PASSWORD|JWT_KEYS|CREDENTIALS|TOKEN", key):
                    assert reference.match(value), f"{key} in a ConfigMap is not a reference"
                if "://" in value and "@" in value:
                    assert ":" not in value.split("://", 1)[1].split("@")[0], f"{key} password"
        if doc["kind"] == "Secret":
            # Only the dev overlay generates Secrets, from local files (dummies here).
            assert variant == "dev", f"{variant} must not carry a Secret manifest"
            for key, value in doc.get("data", {}).items():
                assert base64.b64decode(value).decode() == f"dummy-{key}\n", key
            assert "stringData" not in doc


def test_checked_in_manifests_hold_no_secret_material() -> None:
    for path in K8S.rglob("*"):
        if path.is_file() and "secrets" not in path.relative_to(K8S).parts[-2:-1]:
            text = path.read_text()
            assert "BEGIN" not in text or "PRIVATE KEY" not in text, path
            for doc in yaml.safe_load_all(text) if path.suffix == ".yaml" else []:
                if isinstance(doc, dict) and doc.get("kind") == "Secret":
                    pytest.fail(f"{path}: a Secret manifest is committed")
                if isinstance(doc, dict) and "secretGenerator" in doc:
                    for generator in doc["secretGenerator"]:
                        assert "literals" not in generator, f"{path}: secret literals"


def test_dev_secret_generator_reads_git_ignored_local_files() -> None:
    kustomization = yaml.safe_load((K8S / "overlays/dev/kustomization.yaml").read_text())
    generated = {g["name"]: g for g in kustomization["secretGenerator"]}
    assert set(generated) == {"app-secrets", "app-jwt-keys"}
    for generator in generated.values():
        assert generator["options"]["disableNameSuffixHash"] is True  # updated in place
        for entry in generator["files"]:
            assert entry.split("=", 1)[1].startswith("secrets/"), entry
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "k8s/overlays/dev/secrets/jwt_keys"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "k8s/overlays/dev/secrets/ must be git-ignored"


def test_network_policies_allow_only_what_the_api_needs(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    egress = find(rendered["dev"], "NetworkPolicy", "app-egress")["spec"]["egress"]
    ports = {p["port"] for rule in egress for p in rule["ports"]}
    assert ports == {53, 5432, 6379}
    ingress = find(rendered["dev"], "NetworkPolicy", "app-ingress")["spec"]["ingress"]
    assert [p["port"] for rule in ingress for p in rule["ports"]] == ["http"]


def test_rotation_job_may_only_get_and_update_the_key_ring_secret(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["dev"]
    role = find(docs, "Role", "app-jwt-rotator")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["app-jwt-keys"],
            "verbs": ["get", "update"],
        }
    ]
    binding = find(docs, "RoleBinding", "app-jwt-rotator")
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": "app-jwt-rotator",
            "namespace": binding["metadata"]["namespace"],
        }
    ]
    assert binding["roleRef"]["name"] == "app-jwt-rotator"
    cron = find(docs, "CronJob", "app-jwt-rotate")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "app-jwt-rotator"
    args = pod["containers"][0]["args"]
    assert "--secret=app-jwt-keys" in args
    assert "--key=jwt_keys" in args
    assert pod["containers"][0]["command"] == ["python", "/app/docker/rotate_k8s_secret.py"]
    # The API's own identity has no RBAC at all.
    for doc in docs:
        if doc["kind"] == "RoleBinding":
            assert all(s["name"] != "app" for s in doc["subjects"])
    # The app pods mount the ring from the Secret the job updates.
    spec = find(docs, "Deployment", "app")["spec"]["template"]["spec"]
    sources = next(v for v in spec["volumes"] if v["name"] == "secrets")["projected"]["sources"]
    assert {"secret": {"name": "app-jwt-keys"}} in sources


@pytest.mark.parametrize(
    "component", ["secrets-aws", "secrets-gcp", "secrets-azure", "secrets-vault"]
)
def test_external_secrets_produce_the_secrets_the_pods_mount(
    rendered: dict[str, list[dict[str, Any]]], component: str
) -> None:
    docs = rendered[f"prod:{component}"]
    store = find(docs, "SecretStore", "app")
    assert store["apiVersion"] == "external-secrets.io/v1"
    assert len(store["spec"]["provider"]) == 1
    reader = find(docs, "ServiceAccount", "app-secrets-reader")
    assert reader["automountServiceAccountToken"] is False
    targets = {}
    for doc in docs:
        if doc["kind"] == "ExternalSecret":
            assert doc["spec"]["secretStoreRef"] == {"kind": "SecretStore", "name": "app"}
            keys = {item["secretKey"] for item in doc["spec"]["data"]}
            for item in doc["spec"]["data"]:
                assert item["remoteRef"]["key"], item
            targets[doc["spec"]["target"]["name"]] = keys
    assert targets == {
        "app-secrets": {"database_password", "redis_password", "data_keys"},
        "app-jwt-keys": {"jwt_keys"},
    }
    # No ClusterSecretStore: the identity is usable from this namespace only.
    assert not [d for d in docs if d["kind"] == "ClusterSecretStore"]


def test_aws_iam_policy_is_read_only_on_named_secrets() -> None:
    policy = json.loads((K8S / "components/secrets-aws/iam-policy.json").read_text())
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert set(statement["Action"]) <= {
            "secretsmanager:GetSecretValue",
            "secretsmanager:DescribeSecret",
        }
        for resource in statement["Resource"]:
            assert resource.startswith("arn:aws:secretsmanager:")
            assert "*" not in resource, resource
    trust = json.loads((K8S / "components/secrets-aws/trust-policy.json").read_text())
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    subjects = [v for k, v in condition.items() if k.endswith(":sub")]
    assert subjects == ["system:serviceaccount:fastapi-secrets-template:app-secrets-reader"]


def test_vault_policy_reads_exact_paths_only() -> None:
    policy = (K8S / "components/secrets-vault/policy.hcl").read_text()
    paths = re.findall(r'path "([^"]+)"\s*{\s*capabilities\s*=\s*\[([^\]]*)\]', policy)
    assert paths
    for path, capabilities in paths:
        assert "*" not in path, path
        assert "+" not in path, path
        assert capabilities.replace('"', "").split(",") == ["read"], path


def test_in_app_variant_has_no_secret_volume_and_uses_references(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["prod:secrets-in-app"]
    for name, spec in pod_specs(docs):
        assert not _secret_volumes(spec), name
    config = find(docs, "ConfigMap", "app-config")["data"]
    for setting in ("DATABASE_PASSWORD", "REDIS_PASSWORD", "JWT_KEYS", "DATA_KEYS"):
        assert config[setting].startswith("aws-sm://"), setting
    sa = find(docs, "ServiceAccount", "app")
    assert "eks.amazonaws.com/role-arn" in sa["metadata"]["annotations"]
    assert sa["automountServiceAccountToken"] is False


def test_dev_redis_start_script_is_the_compose_one() -> None:
    assert (K8S / "overlays/dev/redis/redis-start.sh").read_bytes() == (
        ROOT / "docker/redis-start.sh"
    ).read_bytes()


def test_prod_runs_production_mode_and_dev_runs_development(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    assert find(rendered["dev"], "ConfigMap", "app-config")["data"]["APP_ENV"] == "development"
    for component in PROD_SECRETS:
        config = find(rendered[f"prod:{component}"], "ConfigMap", "app-config")["data"]
        assert config["APP_ENV"] == "production"
