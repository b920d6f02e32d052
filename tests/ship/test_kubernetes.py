"""The Kubernetes manifests (deploy/kubernetes/), as the cluster would receive them: both overlays
render, validate against the API schemas of every supported Kubernetes version, keep the
hardened defaults, hold references and no secret, carry a gateway config the gateway itself
accepts, and pass checkov (with the Dockerfile) with no failed check and every skip justified.

No cluster runs here, so what an API server, a kubelet or a CNI would then do with them is not
exercised: see docs/deploy.md, "What is tested".
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from gateway.providers import egress
from gateway.serve import parse_config
from tests.ship.kubernetes import (
    KUBECTL_VERSION,
    KUBERNETES,
    OVERLAYS,
    REPO,
    checkov,
    kubectl,
    one,
    render,
    sha256,
    write_rendered,
)

# The Kubernetes minor versions Sealgate's manifests support (docs/deploy.md): the three that
# upstream supports as of this release and the two before them, which managed services still run.
SUPPORTED = ("1.33", "1.34", "1.35", "1.36", "1.37")
ADMISSION = KUBERNETES / "admission" / "clusterimagepolicy.yaml"
CRD = REPO / "tests" / "assets" / "kubernetes" / "policy-controller" / "300-clusterimagepolicy.yaml"
CRD_SHA256 = "e23467593124763d9937b1180d48cefe89dc72cf04e9bcf84cbf29822d51b20c"
RELEASE = REPO / ".github" / "workflows" / "release.yml"
# checkov checks skipped on purpose; each would carry its reason in the manifest
# (a checkov.io/skipN annotation). None is needed today.
EXPECTED_SKIPS: set[str] = set()
UID = 10001


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


def pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def gateway_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = pod(docs)["containers"]
    return dict(container)


def test_the_kubectl_that_renders_is_the_upstream_release_byte_for_byte() -> None:
    done = subprocess.run(
        [str(kubectl()), "version", "--client"], capture_output=True, text=True, check=True
    )
    assert f"Client Version: {KUBECTL_VERSION}" in done.stdout
    assert "Kustomize Version: v5." in done.stdout


@pytest.mark.parametrize("version", SUPPORTED)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_validates_strictly_against_the_api_schema(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, version: str
) -> None:
    """Strict: an unknown field (a typo) is an error, not silently dropped as kubectl would."""
    for doc in rendered[overlay]:
        validated = kubernetes_validate.validate(doc, version, strict=True)
        assert validated == version, (doc["kind"], validated)


def test_the_schema_check_refuses_a_misspelt_field_and_a_wrong_type(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    deployment = one(rendered["postgres-redis"], "Deployment")
    typo = json.loads(json.dumps(deployment))
    context = typo["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    context["readOnlyRootFileSystem"] = context.pop("readOnlyRootFilesystem")
    wrong = json.loads(json.dumps(deployment))
    wrong["spec"]["replicas"] = "two"
    for bad in (typo, wrong):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, SUPPORTED[-1], strict=True)


def test_the_scaled_out_overlay_runs_at_least_two_spread_replicas_with_a_budget_and_an_hpa(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["postgres-redis"]
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    selector = deployment["spec"]["selector"]["matchLabels"]
    spread = pod(docs)["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    assert all(c["labelSelector"]["matchLabels"] == selector for c in spread)
    budget = one(docs, "PodDisruptionBudget")["spec"]
    assert budget["selector"]["matchLabels"] == selector and budget["maxUnavailable"] == 1
    hpa = one(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    service = one(docs, "Service")["spec"]
    assert service["selector"] == selector


def test_the_embedded_overlay_runs_exactly_one_replica_on_its_own_volume(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """SQLite has one writer and in-process counters are exact for one process only."""
    docs = rendered["embedded"]
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not [d for d in docs if d["kind"] in ("HorizontalPodAutoscaler", "PodDisruptionBudget")]
    volumes = {v["name"]: v for v in pod(docs)["volumes"]}
    claim = volumes["data"]["persistentVolumeClaim"]["claimName"]
    assert set(volumes["data"]) == {"name", "persistentVolumeClaim"}
    assert one(docs, "PersistentVolumeClaim")["metadata"]["name"] == claim


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_map_to_the_health_routes_and_start_up_leaves_time_for_the_integrity_check(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    container = gateway_container(rendered[overlay])
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/health/live"
    # The self-check reads every installed file before the port opens; two minutes at least.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    # readiness waits up to 2 s for Vault: the probe must not time out before it answers.
    assert container["readinessProbe"]["timeoutSeconds"] > 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_image_is_named_by_digest_and_resources_are_bounded(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    container = gateway_container(rendered[overlay])
    assert re.fullmatch(r"[a-z0-9./-]+@sha256:[0-9a-f]{64}", container["image"])
    assert "args" not in container or container["args"] == ["serve"]
    assert "command" not in container  # the image's own entrypoint
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][bound])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_is_hardened_by_default(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    spec = pod(rendered[overlay])
    assert (
        spec["securityContext"]
        | {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        == spec["securityContext"]
    )
    for container in spec["containers"] + spec.get("initContainers", []):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["privileged"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert context.get("runAsUser", UID) == UID
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(key)
    namespace = one(rendered[overlay], "Namespace")["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_only_token_is_projected_for_vault_and_the_only_writable_path_is_the_data_dir(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    spec = pod(docs)
    assert one(docs, "ServiceAccount")["automountServiceAccountToken"] is False
    assert spec["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in spec["volumes"]}
    tokens = [
        source["serviceAccountToken"]
        for volume in volumes.values()
        for source in volume.get("projected", {}).get("sources", [])
        if "serviceAccountToken" in source
    ]
    assert tokens == [{"audience": "vault", "expirationSeconds": 600, "path": "vault"}]
    writable = {
        m["mountPath"] for m in gateway_container(docs)["volumeMounts"] if not m.get("readOnly")
    }
    assert writable == {"/var/lib/sealgate"}
    for volume in volumes.values():
        assert "hostPath" not in volume


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_credentials_are_references_and_no_secret_is_in_the_manifests(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    assert not [d for d in docs if d["kind"] == "Secret"]
    container = gateway_container(docs)
    assert "envFrom" not in container
    for variable in container["env"]:
        assert "valueFrom" not in variable, variable  # secrets come as mounted files
        assert not re.search(r"(?i)sk-|sga-|hvs\.|password", variable["value"]), variable
    text = yaml.safe_dump_all(docs)
    assert not re.search(r"sk-[A-Za-z0-9]{8}|hvs\.|BEGIN [A-Z ]*PRIVATE KEY|password=", text)


def config_of(docs: list[dict[str, Any]]) -> str:
    data: dict[str, str] = one(docs, "ConfigMap")["data"]
    assert set(data) == {"config.yaml"}
    return data["config.yaml"]


def named_paths(node: Any) -> set[str]:
    """Every file a config names: absolute paths, file: references, and paths in URL queries."""
    if isinstance(node, dict):
        return {p for value in node.values() for p in named_paths(value)}
    if isinstance(node, list):
        return {p for value in node for p in named_paths(value)}
    if not isinstance(node, str):
        return set()
    if node.startswith("/"):
        return {node}
    if node.startswith("file:"):
        return {node.removeprefix("file:")}
    query = urllib.parse.urlsplit(node).query if "://" in node else ""
    return {v for _, v in urllib.parse.parse_qsl(query) if v.startswith("/")}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_accepts_the_overlay_config_and_every_file_it_names_is_mounted(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    text = config_of(docs)
    config = parse_config(text, f"{overlay}/config.yaml")  # strict: refuses literals, typos
    egress.enforce(config.deployments, REPO / "policies")
    container = gateway_container(docs)
    env = {v["name"]: v["value"] for v in container["env"]}
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    config_mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert env["SEALGATE_CONFIG"] == config_mount["mountPath"] + "/config.yaml"
    # Every absolute path the config or the environment names, except the image's own files,
    # lies under a mount of the pod.
    image_files = ("/etc/sealgate/requirements.lock", "/etc/sealgate/policies")
    named = named_paths(yaml.safe_load(text)) | {env["SEALGATE_ADMIN_KEY_FILE"]}
    assert len(named) > 3
    for path in named - set(image_files):
        assert any(path.startswith(mount + "/") for mount in mounts), path
    # The image's verify section, kept: the self-check must find the locks and policies.
    shipped = yaml.safe_load((REPO / "docker" / "config.yaml").read_text())["verify"]
    assert yaml.safe_load(text)["verify"] == shipped


def test_the_scaled_out_config_shares_postgresql_and_redis_and_puts_no_password_in_a_url(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    config = parse_config(config_of(rendered["postgres-redis"]), "postgres-redis/config.yaml")
    assert config.storage.url is not None and config.storage.url.startswith("postgresql://")
    assert "sslmode=verify-full" in config.storage.url
    assert config.governance.counters == "redis" and config.governance.redis is not None
    assert config.governance.redis.url.startswith("rediss://")
    assert config.governance.redis.on_down == "fail_closed"
    # previous_response_id's state: in Redis, with one key for every replica
    assert config.conversations.shared(redis_configured=True)
    assert (config.conversations.encryption_key or "").startswith("vault:")
    assert not re.search(r"://[^/@]*:[^/@]*@", config.storage.url)


def policies(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d["spec"] for d in docs if d["kind"] == "NetworkPolicy"]


def egress_ports(docs: list[dict[str, Any]]) -> set[int]:
    rules = [rule for spec in policies(docs) for rule in spec.get("egress", [])]
    return {port["port"] for rule in rules for port in rule["ports"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_network_policy_denies_by_default_and_admits_only_labelled_clients(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    labels = (
        pod(docs).get("labels") or one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    )
    found = policies(docs)
    assert found and all(
        set(spec["podSelector"]["matchLabels"].items()) <= set(labels.items()) for spec in found
    )
    assert any(set(spec["policyTypes"]) == {"Ingress", "Egress"} for spec in found)
    for spec in found:
        for rule in spec.get("ingress", []):
            assert rule["from"] and rule["ports"] == [{"port": "http", "protocol": "TCP"}]
            for peer in rule["from"]:
                assert "ipBlock" not in peer
                assert peer["podSelector"]["matchLabels"], peer  # labelled clients only
        for rule in spec.get("egress", []):
            assert rule.get("to") and rule.get("ports"), rule  # no rule opens everything


def test_egress_is_dns_vault_providers_and_for_the_scaled_out_overlay_postgresql_and_redis(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    assert egress_ports(rendered["embedded"]) == {53, 8200, 443}
    assert egress_ports(rendered["postgres-redis"]) == {53, 8200, 443, 5432, 6379}
    metadata = ipaddress.ip_address("169.254.169.254")
    for docs in rendered.values():
        for spec in policies(docs):
            for rule in spec.get("egress", []):
                for peer in rule["to"]:
                    if "ipBlock" not in peer:
                        continue
                    assert [p["port"] for p in rule["ports"]] == [443]
                    block = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                    excluded = [ipaddress.ip_network(c) for c in peer["ipBlock"]["except"]]
                    for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"):
                        if block.version == 4:
                            assert ipaddress.ip_network(private) in excluded
                    if block.version == 4:
                        assert any(metadata in net for net in excluded)


def cluster_image_policy_schema() -> dict[str, Any]:
    assert sha256(CRD) == CRD_SHA256, "the vendored CRD is not the one its README names"
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def unknown_fields(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Fields the structural schema does not declare: the API server prunes them (or, with
    strict field validation, refuses them), so a typo would silently weaken the policy."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict) and "properties" in schema:
        found = []
        for key, item in value.items():
            if key not in schema["properties"]:
                found.append(f"{where}.{key}")
            else:
                found += unknown_fields(item, schema["properties"][key], f"{where}.{key}")
        return found
    if isinstance(value, list) and "items" in schema:
        items = schema["items"]
        return [f for i, v in enumerate(value) for f in unknown_fields(v, items, f"{where}[{i}]")]
    return []


def admission_policy() -> dict[str, Any]:
    policy: dict[str, Any] = yaml.safe_load(ADMISSION.read_text())
    return policy


def test_the_admission_policy_is_a_valid_cluster_image_policy_with_no_unknown_field() -> None:
    policy = admission_policy()
    schema = cluster_image_policy_schema()
    assert policy["apiVersion"] == "policy.sigstore.dev/v1beta1"
    jsonschema.validate({"spec": policy["spec"]}, schema)
    assert unknown_fields({"spec": policy["spec"]}, schema) == []
    misspelt = {"spec": {**policy["spec"], "authorites": policy["spec"]["authorities"]}}
    assert unknown_fields(misspelt, schema) == [".spec.authorites"]


def release_identity(repository: str, ref: str) -> str:
    """The certificate identity of a keyless signature made by release.yml, as GitHub's OIDC
    token names it (workflow file at a ref)."""
    return f"https://github.com/{repository}/.github/workflows/{RELEASE.name}@{ref}"


def test_the_admission_policy_admits_exactly_the_release_workflows_signature_and_sbom() -> None:
    spec = admission_policy()["spec"]
    assert spec["mode"] == "enforce"
    (authority,) = spec["authorities"]
    (identity,) = authority["keyless"]["identities"]
    assert identity["issuer"] == "https://token.actions.githubusercontent.com"
    subject = re.compile(identity["subjectRegExp"])
    repository = "your-org/sealgate"
    assert subject.fullmatch(release_identity(repository, "refs/tags/v1.2.3"))
    for other in (
        release_identity(repository, "refs/heads/main"),
        release_identity("someone-else/sealgate", "refs/tags/v1.2.3"),
        release_identity(repository, "refs/tags/v1.2.3-evil"),
        f"https://github.com/{repository}/.github/workflows/ci.yml@refs/tags/v1.2.3",
    ):
        assert not subject.fullmatch(other), other
    assert [a["predicateType"] for a in authority["attestations"]] == ["https://cyclonedx.org/bom"]
    # The image the overlays deploy is one the policy covers.
    base = yaml.safe_load((KUBERNETES / "base" / "kustomization.yaml").read_text())
    (image,) = base["images"]
    assert [i["glob"] for i in spec["images"]] == [image["newName"] + "**"]


def test_the_release_workflow_signs_and_attests_the_sbom_by_digest_on_version_tags() -> None:
    workflow = yaml.safe_load(RELEASE.read_text())
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key "on" as True
    job = workflow["jobs"]["image"]
    assert job["permissions"]["id-token"] == "write"
    runs = [str(step.get("run", "")) for step in job["steps"]]
    assert 'cosign sign --yes "${IMAGE}@${DIGEST}"' in runs
    sbom = "--type cyclonedx --predicate sbom/sealgate.cdx.json"
    assert f'cosign attest --yes {sbom} "${{IMAGE}}@${{DIGEST}}"' in runs
    for step in job["steps"]:
        if "cosign" in str(step.get("run", "")):
            assert step["env"]["DIGEST"] == "${{ steps.push.outputs.digest }}"


def scan(directory: Path) -> dict[str, dict[str, Any]]:
    """checkov's JSON report of ``directory``, by framework."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_"))}
    done = subprocess.run(
        [
            str(checkov()),
            "--directory",
            str(directory),
            "--framework",
            "kubernetes",
            "dockerfile",
            "--skip-download",  # no policy download from the vendor's platform: offline, as here
            "--compact",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=directory,
        timeout=600,
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return {report["check_type"]: report for report in reports}


@pytest.mark.slow
def test_checkov_finds_no_failed_check_in_the_manifests_or_the_dockerfile_and_each_skip_says_why(
    tmp_path: Path,
) -> None:
    # One directory to scan: what the cluster receives, the admission policy, the Dockerfile.
    write_rendered(tmp_path)
    shutil.copy2(ADMISSION, tmp_path / ADMISSION.name)
    shutil.copy2(REPO / "Dockerfile", tmp_path / "Dockerfile")
    by_type = scan(tmp_path)
    assert set(by_type) == {"kubernetes", "dockerfile"}
    skipped = set()
    for report in by_type.values():
        summary = report["summary"]
        assert summary["failed"] == 0 and summary["parsing_errors"] == 0, summary
        assert summary["passed"] > 0, summary
        for check in report["results"]["skipped_checks"]:
            assert check["check_result"]["suppress_comment"].strip(), check["check_id"]
            skipped.add(check["check_id"])
    assert skipped == EXPECTED_SKIPS


@pytest.mark.slow
def test_checkov_fails_a_writable_root_filesystem_and_an_image_named_by_tag(
    tmp_path: Path, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    """The counter-example: the scan above passes because the manifests are right, not because
    checkov looked at nothing."""
    docs = json.loads(json.dumps(rendered["postgres-redis"]))
    deployment = one(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["image"] = container["image"].split("@")[0] + ":1.0.0"
    container["securityContext"]["readOnlyRootFilesystem"] = False
    (tmp_path / "weakened.yaml").write_text(yaml.safe_dump_all(docs))
    report = scan(tmp_path)["kubernetes"]
    failed = {check["check_id"] for check in report["results"]["failed_checks"]}
    # 15: IfNotPresent is no longer safe without the digest; 43: no digest; 22: writable root.
    assert failed == {"CKV_K8S_15", "CKV_K8S_22", "CKV_K8S_43"}
