"""The reference configurations a team deploys from (docs/deploy.md) parse and agree with each other and
with what ran here: the spark-operator SparkApplication and the spark-submit settings (infra/k8s/), the
Kubernetes profile (infra/config/kubernetes.yaml), the container images (infra/docker/). None of them
is applied to a cluster or built here (no Kubernetes, no Docker daemon, no GPU); these tests are what
keeps them from drifting away from the code, the lock file and infra/bootstrap.sh.

The Helm chart's values (infra/airflow/helm-values.yaml) are checked in tests/airflow_server/test_airflow_ops.py.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

from lakecart.cli import build_parser
from lakecart.config import get_settings
from lakecart.errors import ConfigError
from lakecart.spark import driver_java_options

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "infra" / "k8s"
DOCKER = REPO / "infra" / "docker"
MANIFEST = K8S / "spark-application.yaml"
SUBMIT_PROPERTIES = K8S / "spark-submit.properties"
PIPELINE_DOCKERFILE = DOCKER / "pipeline.Dockerfile"
GPU_DOCKERFILE = DOCKER / "gpu-training.Dockerfile"
BOOTSTRAP = REPO / "infra" / "bootstrap.sh"
LOCK = REPO / "requirements" / "pipeline.lock"
MAVEN = "https://repo1.maven.org/maven2"
IMAGE_ROOT = "/opt/lakecart"  # where both Dockerfiles copy the repository (checked below)
# What lakecart/storage.py and hadoop-aws read from each JVM's environment; only ever from a Secret.
KEY_VARIABLES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL", re.IGNORECASE)

# A subset of the SparkApplication CRD's OpenAPI schema (kubeflow/spark-operator,
# config/crd/bases/sparkoperator.k8s.io_sparkapplications.yaml at 38082f33, version v1beta2): its
# required keys, the enums and types of the fields used here, and every property name of spec, driver
# and executor. The API server prunes unknown fields silently, so a misspelt key would just vanish;
# here it is an error.
_SPEC_KEYS = """arguments batchScheduler batchSchedulerOptions deps driver driverIngressOptions
driverPodDisruptionBudget dynamicAllocation executor failureRetries hadoopConf hadoopConfigMap image
imagePullPolicy imagePullSecrets mainApplicationFile mainClass memoryOverheadFactor mode monitoring
nodeSelector proxyUser pythonVersion restartPolicy retryInterval sparkConf sparkConfigMap sparkUIOptions
sparkVersion suspend timeToLiveSeconds type volumes""".split()
_POD_KEYS = """affinity annotations configMaps coreLimit coreRequest cores dnsConfig env envFrom envSecretKeyRefs
envVars gpu hostAliases hostNetwork image initContainers javaOptions kubernetesMaster labels lifecycle memory
memoryLimit memoryOverhead nodeSelector podSecurityContext ports priorityClassName schedulerName secrets
securityContext serviceAccount shareProcessNamespace sidecars template terminationGracePeriodSeconds
tolerations volumeMounts""".split()
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_ENV = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "value": {"type": "string"},
            "valueFrom": {
                "type": "object",
                "properties": {
                    "secretKeyRef": {
                        "type": "object",
                        "required": ["key"],
                        "properties": {"key": {"type": "string"}, "name": {"type": "string"}},
                    }
                },
            },
        },
        "additionalProperties": False,
    },
}
_MOUNTS = {"type": "array", "items": {"type": "object", "required": ["mountPath", "name"]}}


def _pod(extra: tuple[str, ...]) -> dict:
    return {
        "type": "object",
        "properties": {
            **{key: {} for key in (*_POD_KEYS, *extra)},
            "cores": {"type": "integer", "minimum": 1},
            "instances": {"type": "integer", "minimum": 1},
            "coreLimit": {"type": "string"},
            "memory": {"type": "string"},
            "serviceAccount": {"type": "string"},
            "labels": _STRING_MAP,
            "env": _ENV,
            "volumeMounts": _MOUNTS,
        },
        "additionalProperties": False,
    }


SPARK_APPLICATION_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "sparkoperator.k8s.io/v1beta2"},
        "kind": {"const": "SparkApplication"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["driver", "executor", "mainApplicationFile", "sparkVersion", "type"],
            "properties": {
                **{key: {} for key in _SPEC_KEYS},
                "type": {"enum": ["Java", "Python", "Scala", "R"]},
                "mode": {"enum": ["cluster", "client"]},
                "pythonVersion": {"enum": ["2", "3"]},
                "image": {"type": "string"},
                "mainApplicationFile": {"type": "string"},
                "sparkVersion": {"type": "string"},
                "arguments": {"type": "array", "items": {"type": "string"}},
                "sparkConf": _STRING_MAP,
                "hadoopConf": _STRING_MAP,
                "timeToLiveSeconds": {"type": "integer"},
                "restartPolicy": {
                    "type": "object",
                    "properties": {
                        "type": {"enum": ["Never", "Always", "OnFailure"]},
                        "onFailureRetries": {"type": "integer", "minimum": 0},
                        "onFailureRetryInterval": {"type": "integer", "minimum": 1},
                        "onSubmissionFailureRetries": {"type": "integer", "minimum": 0},
                        "onSubmissionFailureRetryInterval": {"type": "integer", "minimum": 1},
                    },
                    "additionalProperties": False,
                },
                "volumes": {"type": "array", "items": {"type": "object", "required": ["name"]}},
                "driver": _pod(("podName", "serviceAnnotations", "serviceLabels")),
                "executor": _pod(("instances", "deleteOnTermination")),
            },
            "additionalProperties": False,
        },
    },
}


def _manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def _spec() -> dict:
    return _manifest()["spec"]


def _properties(path: Path) -> dict[str, str]:
    """A Spark properties file (spark-defaults.conf format: key, whitespace, value; # comments)."""
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            pairs[key] = value.strip()
    return pairs


def _lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith("#"):
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def _profile_source() -> tuple[str, str, Path]:
    """(ConfigMap name, key, repository file) from the manifest's `kubectl create configmap` line."""
    found = re.search(r"create configmap (\S+) .*--from-file=([^=\s]+)=(\S+)", MANIFEST.read_text())
    assert found, "the manifest's header must say how its ConfigMap is made"
    return found[1], found[2], REPO / found[3]


@pytest.fixture()
def load_profile(monkeypatch):
    """Settings exactly as a job sees them with LAKECART_CONFIG=<file> and no other LAKECART_* variable."""
    for name in list(os.environ):
        if name.startswith("LAKECART_"):
            monkeypatch.delenv(name)

    def load(path: Path):
        monkeypatch.setenv("LAKECART_CONFIG", str(path))
        get_settings.cache_clear()
        return get_settings()

    yield load
    get_settings.cache_clear()


# --- every YAML file under infra/ -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted((REPO / "infra").rglob("*.yaml")), ids=lambda p: str(p.relative_to(REPO / "infra"))
)
def test_every_yaml_file_under_infra_parses(path):
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert documents and all(isinstance(d, dict) for d in documents)


# --- the SparkApplication ---------------------------------------------------------------------------


def test_the_spark_application_fits_the_crd_schema():
    jsonschema.validate(_manifest(), SPARK_APPLICATION_SCHEMA)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda m: m["spec"].pop("sparkVersion"),  # required by the CRD
        lambda m: m["spec"]["driver"].update(serviceAcount="spark"),  # misspelt: the API server would drop it
        lambda m: m["spec"].update(mode="Cluster"),  # not in the enum
        lambda m: m["spec"]["executor"].update(instances="6"),  # a string where the CRD wants an integer
    ],
    ids=["missing-required", "misspelt-key", "bad-enum", "wrong-type"],
)
def test_the_schema_rejects_a_broken_manifest(break_it):
    broken = copy.deepcopy(_manifest())
    break_it(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SPARK_APPLICATION_SCHEMA)


def test_the_spark_application_runs_the_lakecart_command_from_the_image():
    spec = _spec()
    main = spec["mainApplicationFile"]
    assert main.startswith(f"local://{IMAGE_ROOT}/")
    main_file = REPO / main.removeprefix(f"local://{IMAGE_ROOT}/")
    assert main_file.is_file(), f"{main} is not in the repository, so not in the image"
    assert "from lakecart.cli import run" in main_file.read_text()
    # The arguments are a valid lakecart command line (a typo here would fail only on the cluster).
    args = build_parser().parse_args(spec["arguments"])
    assert (args.command, args.date.isoformat()) == ("features", "2026-01-14")
    assert spec["sparkVersion"] == _lock_pins()["pyspark"]
    assert spec["image"].rsplit(":", 1)[1] == re.search(r'version="([^"]+)"', (REPO / "setup.py").read_text())[1]


def test_the_jars_on_the_class_path_are_where_the_image_puts_them():
    venv = _dockerfile_env(PIPELINE_DOCKERFILE)["VENV"]
    expected = f"{venv}/share/lakecart/jars/*:{venv}/share/lakecart/jars-s3/*"
    conf = _spec()["sparkConf"]
    assert conf["spark.driver.extraClassPath"] == expected
    assert conf["spark.executor.extraClassPath"] == expected
    fetch = " ".join(args for kind, args in _instructions(PIPELINE_DOCKERFILE) if kind == "RUN")
    assert '"$VENV/share/lakecart/jars" "io.delta:delta-spark' in fetch
    assert '"$VENV/share/lakecart/jars-s3" "org.apache.hadoop:hadoop-aws:' in fetch
    # The driver JVM starts before get_spark() runs: what it would give that JVM comes from here instead.
    lakecart_options = driver_java_options("k8s://x", quick_jit=False).split()
    assert set(lakecart_options) <= set(conf["spark.driver.extraJavaOptions"].split())


def test_the_mounted_profile_loads_and_agrees_with_the_manifest(load_profile):
    spec = _spec()
    config_map, key, source = _profile_source()
    volume = next(v for v in spec["volumes"] if v.get("configMap", {}).get("name") == config_map)
    for role in ("driver", "executor"):
        env = {e["name"]: e for e in spec[role]["env"]}
        mount = next(m for m in spec[role]["volumeMounts"] if m["name"] == volume["name"])
        assert env["LAKECART_CONFIG"]["value"] == f"{mount['mountPath']}/{key}"
    settings = load_profile(source)
    conf = settings.spark.conf
    assert settings.spark.master.startswith("k8s://") and settings.lake.root.startswith("s3a://")
    assert conf["spark.kubernetes.container.image"] == spec["image"]
    assert conf["spark.kubernetes.namespace"] == _manifest()["metadata"]["namespace"]
    assert conf["spark.kubernetes.authenticate.driver.serviceAccountName"] == spec["driver"]["serviceAccount"]
    # The profile's values reach SparkConf after the operator's: they must not contradict them.
    assert settings.spark.driver_memory == spec["driver"]["memory"]
    assert conf["spark.executor.instances"] == str(spec["executor"]["instances"])
    assert conf["spark.executor.cores"] == str(spec["executor"]["cores"])
    assert conf["spark.executor.memory"] == spec["executor"]["memory"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl on this machine")
def test_the_documented_configmap_command_makes_a_profile_that_loads(load_profile, tmp_path):
    """The manifest header's `kubectl create configmap` line, run client-side (no cluster needed)."""
    line = next(line for line in MANIFEST.read_text().splitlines() if "kubectl create configmap" in line)
    command = line.lstrip("# ").split() + ["--dry-run=client", "-o", "yaml"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    config_map = yaml.safe_load(done.stdout)
    name, key, source = _profile_source()
    assert config_map["metadata"]["name"] == name and config_map["data"][key] == source.read_text()
    mounted = tmp_path / key
    mounted.write_text(config_map["data"][key])
    assert load_profile(mounted).lake.root == load_profile(source).lake.root


def test_a_misspelt_key_in_the_profile_fails_to_load(load_profile, tmp_path):
    _, _, source = _profile_source()
    typo = tmp_path / "kubernetes.yaml"
    typo.write_text(source.read_text().replace("  shuffle_partitions:", "  shuffle_partition:"))
    with pytest.raises(ConfigError, match="unknown key spark.shuffle_partition"):
        load_profile(typo)


def test_the_service_account_and_namespace_exist_in_the_rbac_manifest():
    spec = _spec()
    documents = {d["kind"]: d for d in yaml.safe_load_all((K8S / "rbac.yaml").read_text())}
    account = documents["ServiceAccount"]["metadata"]
    assert (account["name"], account["namespace"]) == (spec["driver"]["serviceAccount"], "data")
    assert documents["RoleBinding"]["subjects"][0]["name"] == account["name"]
    assert {"create", "delete", "watch"} <= set(documents["Role"]["rules"][0]["verbs"])


# --- secrets: from Kubernetes Secrets only ---------------------------------------------------------


def literal_secrets(env: list[dict]) -> list[str]:
    """Names of env entries that look like credentials but carry a literal value, not a secretKeyRef."""
    return [
        e["name"]
        for e in env
        if SECRET_NAME.search(e["name"]) and ("value" in e or "secretKeyRef" not in e.get("valueFrom", {}))
    ]


def key_material_in_conf(conf: dict[str, str]) -> list[str]:
    """Settings that would put keys into Spark's configuration (which the UI and event logs show): the
    s3a key settings, or a credential passed as a literal environment variable of the driver or executors."""
    literal_env = ("spark.executorEnv.", "spark.kubernetes.driverEnv.", "spark.yarn.appMasterEnv.")
    return [
        k
        for k in conf
        if re.search(r"(access|secret)\.key|session\.token", k)
        or (k.startswith(literal_env) and SECRET_NAME.search(k.rsplit(".", 1)[-1]))
    ]


def test_the_checks_for_literal_keys_can_fail():
    assert literal_secrets([{"name": "AWS_SECRET_ACCESS_KEY", "value": "abc"}]) == ["AWS_SECRET_ACCESS_KEY"]
    ref = {"secretKeyRef": {"name": "s", "key": "k"}}
    assert literal_secrets([{"name": "AWS_SESSION_TOKEN", "value": "abc", "valueFrom": ref}]) == ["AWS_SESSION_TOKEN"]
    assert key_material_in_conf({"spark.hadoop.fs.s3a.secret.key": "abc"}) == ["spark.hadoop.fs.s3a.secret.key"]
    env_conf = {"spark.executorEnv.AWS_SECRET_ACCESS_KEY": "abc", "spark.executorEnv.AWS_REGION": "x"}
    assert key_material_in_conf(env_conf) == ["spark.executorEnv.AWS_SECRET_ACCESS_KEY"]


def test_keys_come_from_one_secret_for_driver_and_executors(load_profile):
    spec = _spec()
    driver = {e["name"]: e for e in spec["driver"]["env"]}
    executor_env = {e["name"] for e in spec["executor"]["env"]}
    assert literal_secrets(spec["driver"]["env"]) == [] and literal_secrets(spec["executor"]["env"]) == []
    refs = {n: e["valueFrom"]["secretKeyRef"] for n, e in driver.items() if "valueFrom" in e}
    assert set(refs) == KEY_VARIABLES
    # Executors get the same keys through the profile (the driver creates their pods), exactly once.
    conf = load_profile(_profile_source()[2]).spark.conf
    prefix = "spark.kubernetes.executor.secretKeyRef."
    executor_refs = {k.removeprefix(prefix): v for k, v in conf.items() if k.startswith(prefix)}
    assert executor_refs == {n: f"{r['name']}:{r['key']}" for n, r in refs.items()}
    assert not executor_env & set(executor_refs), "a key given twice to the executor pods"
    for settings_conf in (spec["sparkConf"], spec.get("hadoopConf", {}), conf, _properties(SUBMIT_PROPERTIES)):
        assert key_material_in_conf(settings_conf) == []


def test_the_object_store_profiles_carry_no_keys(load_profile):
    """Every shipped profile with a bucket lake: keys from the environment only, never in its settings."""
    for profile in sorted((REPO / "infra" / "config").glob("*.yaml")):
        settings = load_profile(profile)
        assert key_material_in_conf(settings.spark.conf) == [], profile.name
        if settings.lake.root.startswith("s3a://"):
            provider = settings.spark.conf.get("spark.hadoop.fs.s3a.aws.credentials.provider", "")
            assert provider.startswith("software.amazon.awssdk.auth.credentials."), profile.name


# --- spark-submit on Kubernetes ----------------------------------------------------------------------


def test_the_spark_submit_settings_agree_with_the_spark_application():
    props = _properties(SUBMIT_PROPERTIES)
    spec = _spec()
    assert props["spark.kubernetes.container.image"] == spec["image"]
    assert props["spark.kubernetes.namespace"] == _manifest()["metadata"]["namespace"]
    assert props["spark.kubernetes.authenticate.driver.serviceAccountName"] == spec["driver"]["serviceAccount"]
    assert (props["spark.driver.cores"], props["spark.driver.memory"]) == (
        str(spec["driver"]["cores"]),
        spec["driver"]["memory"],
    )
    for key in ("instances", "cores", "memory"):
        assert props[f"spark.executor.{key}"] == str(spec["executor"][key])
    for key in ("spark.driver.extraClassPath", "spark.executor.extraClassPath", "spark.driver.extraJavaOptions"):
        assert props[key] == spec["sparkConf"][key]
    driver_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in spec["driver"]["env"] if "valueFrom" in e}
    for name, ref in driver_refs.items():
        assert props[f"spark.kubernetes.driver.secretKeyRef.{name}"] == f"{ref['name']}:{ref['key']}"
    # No ConfigMap with plain spark-submit: the profile copy in the image, which is this repository's file.
    for key in ("spark.kubernetes.driverEnv.LAKECART_CONFIG", "spark.executorEnv.LAKECART_CONFIG"):
        assert props[key] == f"{IMAGE_ROOT}/infra/config/kubernetes.yaml"
    command = " ".join(line.lstrip("# ") for line in SUBMIT_PROPERTIES.read_text().splitlines()[:6])
    assert "--master k8s://" in command and "--deploy-mode cluster" in command
    assert spec["mainApplicationFile"] in command


def test_spark_submit_runs_the_lakecart_command_line(tmp_path):
    """spark-submit of the SparkApplication's main file is the lakecart CLI, exit status included:
    a usage error exits 2 (what the operator's restart policy and Airflow see)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKECART_")}
    env["PYSPARK_PYTHON"] = sys.executable
    done = subprocess.run(
        [
            Path(sys.executable).parent / "spark-submit",
            "--master",
            "local[1]",
            str(K8S / "lakecart_job.py"),
            "ingest",
            "x",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    # spark-submit passes the Python process's stderr on to its stdout.
    assert "lakecart ingest: error: argument LAYER: invalid choice: 'x'" in done.stdout + done.stderr


@pytest.mark.slow
def test_spark_submit_with_the_manifests_class_path_runs_a_job(tmp_path):
    """The driver as the operator starts it: spark-submit first, the jars only on the class path the
    manifest gives (paths of this environment instead of the image's), then the job's own session."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKECART_")}
    env.update(PYSPARK_PYTHON=sys.executable, LAKECART_LAKE__ROOT=str(tmp_path / "lake"))
    lakecart = [sys.executable, "-m", "lakecart.cli"]
    generate = ["generate", "--users", "20", "--items", "10", "--days", "1", "--start-date", "2026-01-01"]
    subprocess.run([*lakecart, *generate], env=env, check=True, capture_output=True, cwd=tmp_path)
    venv = _dockerfile_env(PIPELINE_DOCKERFILE)["VENV"]
    conf = {k: v.replace(venv, sys.prefix) for k, v in _spec()["sparkConf"].items() if "extraClassPath" in k}
    submit = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[1]"]
    for key, value in conf.items():
        submit += ["--conf", f"{key}={value}"]
    done = subprocess.run(
        [*submit, str(K8S / "lakecart_job.py"), "--json", "ingest", "bronze", "--date", "2026-01-01"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert '"2026-01-01":' in done.stdout


# --- the container images ----------------------------------------------------------------------------

INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER", "WORKDIR",
    "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: comments dropped, continuation lines joined."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        kind, _, args = pending.partition(" ")
        out.append((kind.upper(), args.strip()))
        pending = ""
    assert not pending, f"{path.name}: a continuation line runs off the end"
    return out


def _dockerfile_env(path: Path) -> dict[str, str]:
    env = {}
    for kind, args in _instructions(path):
        if kind == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", args))
    return env


def _horovod_flags(text: str) -> dict[str, str]:
    return dict(re.findall(r"\b(HOROVOD_\w+)=(\S+)", text))


def _bootstrap_value(name: str) -> str:
    return re.search(rf'^{name}="([^"]+)"', BOOTSTRAP.read_text(), re.MULTILINE)[1]


def _ignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` (relative to the repository) out of the build context: a
    pattern matches the path or a folder above it; ``**/`` matches in any folder."""
    patterns = [p for p in (REPO / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    parts = Path(path).parts
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
    return False


@pytest.mark.parametrize("dockerfile", [PIPELINE_DOCKERFILE, GPU_DOCKERFILE], ids=lambda p: p.name)
def test_a_dockerfile_parses_and_copies_what_the_repository_has(dockerfile):
    steps = _instructions(dockerfile)
    assert {kind for kind, _ in steps} <= INSTRUCTIONS
    assert steps[0][0] == "FROM"
    copies = [args.split() for kind, args in steps if kind == "COPY" and not args.startswith("--from")]
    assert ["requirements/pipeline.lock", "/tmp/pipeline.lock"] in copies
    assert [".", IMAGE_ROOT] in copies and ("WORKDIR", IMAGE_ROOT) in steps
    for *sources, _ in copies:
        for source in sources:
            assert (REPO / source).exists(), f"{dockerfile.name} copies {source}, which is not in the repository"
            assert source == "." or not _ignored(source), f"{source} is excluded by .dockerignore"
    run = " ".join(args for kind, args in steps if kind == "RUN")
    assert 'pip" install -r /tmp/pipeline.lock' in run
    assert 'pip" install --no-deps -e /opt/lakecart' in run or "pip install --no-deps -e /opt/lakecart" in run


@pytest.mark.parametrize("dockerfile", [PIPELINE_DOCKERFILE, GPU_DOCKERFILE], ids=lambda p: p.name)
def test_every_run_step_is_valid_shell(dockerfile):
    """Both base images run RUN steps with Debian's/Ubuntu's /bin/sh (dash): a lost ``\\`` or ``;`` fails here."""
    for kind, args in _instructions(dockerfile):
        if kind == "RUN":
            script = re.sub(r"^--mount=\S+\s+", "", args)
            done = subprocess.run(["dash", "-n", "-c", script], capture_output=True, text=True)
            assert done.returncode == 0, f"{dockerfile.name}: {done.stderr}\n{script[:300]}"


def _bootstrap_artifacts() -> list[str]:
    """group:name:version of every jar infra/bootstrap.sh fetches, from its own definitions (bash evaluates them)."""
    definitions = re.search(r"^DELTA_VERSION=.*?(?=^WANT=)", BOOTSTRAP.read_text(), re.MULTILINE | re.DOTALL)[0]
    script = definitions + '\nprintf "%s\\n" "${DELTA_ARTIFACTS[@]}" "${S3_ARTIFACTS[@]}"'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.split()


def test_the_cpu_image_fetches_exactly_the_jars_bootstrap_fetches(tmp_path):
    """The image's jar step, run with a stand-in curl that records URLs: the same Maven Central files as
    bootstrap.sh (its fetch_jars paths), Delta's in jars/ and the S3 set in jars-s3/, as lakecart.spark expects."""
    steps = _instructions(PIPELINE_DOCKERFILE)
    step = next(re.sub(r"^--mount=\S+\s+", "", a) for k, a in steps if k == "RUN" and "fetch()" in a)
    args = dict(a.split("=", 1) for k, a in steps if k == "ARG" and "=" in a)
    venv = tmp_path / "venv"
    (venv / "lib/python3.11/site-packages/pyspark/jars").mkdir(parents=True)
    (venv / f"lib/python3.11/site-packages/pyspark/jars/hadoop-client-api-{args['HADOOP_VERSION']}.jar").touch()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text('#!/bin/sh\n# curl -fsSL -o FILE URL\necho "$4" >> "$URLS"; touch "$3"\n')
    (bin_dir / "curl").chmod(0o755)
    env = {
        **{k: v.strip('"') for k, v in args.items()},
        "VENV": str(venv),
        "URLS": str(tmp_path / "urls"),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    done = subprocess.run(["dash", "-c", step], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    expected = []
    for artifact in _bootstrap_artifacts():  # bootstrap's path: ${group//.//}/${name}/${version}/${name}-${version}.jar
        group, name, version = artifact.split(":")
        expected.append(
            f"https://repo1.maven.org/maven2/{group.replace('.', '/')}/{name}/{version}/{name}-{version}.jar"
        )
    assert sorted((tmp_path / "urls").read_text().split()) == sorted(expected)
    assert len(expected) == 37  # 2 Delta + hadoop-aws + 3 helpers + 31 AWS SDK modules
    delta = sorted(p.name for p in (venv / "share/lakecart/jars").iterdir())
    assert delta == [f"delta-spark_4.1_2.13-{args['DELTA_VERSION']}.jar", f"delta-storage-{args['DELTA_VERSION']}.jar"]
    assert len(list((venv / "share/lakecart/jars-s3").iterdir())) == 35


def test_the_dockerignore_keeps_environments_and_data_out_but_not_the_code():
    for excluded in (".venv/pipeline/bin/python", "data/raw/x.jsonl", ".git/HEAD", "lakecart.egg-info/PKG-INFO"):
        assert _ignored(excluded), excluded
    for kept in ("requirements/pipeline.lock", "lakecart/cli.py", "infra/k8s/lakecart_job.py", "setup.py"):
        assert not _ignored(kept), kept


def test_the_cpu_image_builds_horovod_and_fetches_jars_as_bootstrap_does():
    run = " ".join(args for kind, args in _instructions(PIPELINE_DOCKERFILE) if kind == "RUN")
    flags = _horovod_flags(run)
    assert flags == _horovod_flags(BOOTSTRAP.read_text())  # Gloo, TensorFlow, no MPI/PyTorch/MXNet
    assert flags["HOROVOD_WITH_GLOO"] == "1" and "HOROVOD_GPU_OPERATIONS" not in flags
    assert re.search(r"horovod==([\d.]+)", run)[1] == re.search(r"horovod==([\d.]+)", BOOTSTRAP.read_text())[1]
    args = dict(a.split("=", 1) for kind, a in _instructions(PIPELINE_DOCKERFILE) if kind == "ARG" and "=" in a)
    for name in ("DELTA_VERSION", "HADOOP_VERSION", "AWS_SDK_VERSION"):
        assert args[name] == _bootstrap_value(name), name
    modules = re.search(r"^AWS_SDK_MODULES=\(([^)]*)\)", BOOTSTRAP.read_text(), re.MULTILINE)[1].split()
    assert args["AWS_SDK_MODULES"].strip('"').split() == modules
    # The jars beyond the SDK modules, and the artifact names, as bootstrap spells them.
    extra = re.findall(r'"((?:org|software)\.[\w.]+:[\w-]+:[\d.]+)"', BOOTSTRAP.read_text())
    for artifact in extra:
        assert f'"{artifact}"' in run, artifact
    assert "delta-spark_4.1_2.13" in BOOTSTRAP.read_text() and "io.delta:delta-spark_4.1_2.13:" in run
    base = next(a for kind, a in _instructions(PIPELINE_DOCKERFILE) if kind == "FROM")
    assert base.startswith("python:3.11-") and 'python_requires=">=3.11,<3.12"' in (REPO / "setup.py").read_text()
    assert "openjdk-17-jre-headless" in run  # Spark 4.1 needs Java 17 (bootstrap checks the same)


def test_the_gpu_image_builds_horovod_with_nccl_on_tensorflow_2_15s_cuda():
    steps = _instructions(GPU_DOCKERFILE)
    run = " ".join(args for kind, args in steps if kind == "RUN")
    flags = _horovod_flags(run)
    assert flags["HOROVOD_GPU_OPERATIONS"] == "NCCL" and flags["HOROVOD_WITH_TENSORFLOW"] == "1"
    assert flags["HOROVOD_WITHOUT_MPI"] == "1" and flags["HOROVOD_WITH_GLOO"] == "1"
    assert r"grep -q '\[X\] NCCL'" in run  # the build fails unless Horovod really has NCCL
    assert re.search(r"horovod==([\d.]+)", run)[1] == "0.28.1"
    # TensorFlow comes from the lock (no other pin in the image); 2.15 was built against CUDA 12.2 and
    # cuDNN 8.9 (TensorFlow's tested build configurations), which the base image must provide.
    assert _lock_pins()["tensorflow"] == "2.15.1"
    assert not re.search(r"tensorflow[\[\w\-,\]]*==", run)
    base = steps[0][1]
    assert re.fullmatch(r"nvidia/cuda:12\.2\.\d+-cudnn8-devel-ubuntu22\.04", base), base
    assert "python3.11-dev" in run  # Horovod compiles against Python's headers


def test_the_pinned_versions_in_the_images_agree_with_the_lock():
    pins = _lock_pins()
    for dockerfile in (PIPELINE_DOCKERFILE, GPU_DOCKERFILE):
        run = " ".join(args for kind, args in _instructions(dockerfile) if kind == "RUN")
        for name, version in re.findall(r"\b([A-Za-z][\w.-]*)==([\w.]+)", run):
            if name.lower() in pins:
                assert pins[name.lower()] == version, (
                    f"{dockerfile.name}: {name}=={version}, lock has {pins[name.lower()]}"
                )


def test_the_helm_values_find_the_pipeline_environment_where_the_image_has_it():
    """Airflow's worker image (the chart's values) carries the pipeline environment as this image lays it out."""
    values = yaml.safe_load((REPO / "infra" / "airflow" / "helm-values.yaml").read_text())
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["LAKECART_PIPELINE_BIN"] == f"{_dockerfile_env(PIPELINE_DOCKERFILE)['VENV']}/bin"
    config = env["LAKECART_CONFIG"]
    assert config.startswith(f"{IMAGE_ROOT}/") and (REPO / config.removeprefix(f"{IMAGE_ROOT}/")).is_file()


def test_the_entry_point_passes_other_commands_through():
    entrypoint = DOCKER / "spark-entrypoint.sh"
    assert os.access(entrypoint, os.X_OK)
    assert ("ENTRYPOINT", f'["{IMAGE_ROOT}/infra/docker/spark-entrypoint.sh"]') in _instructions(PIPELINE_DOCKERFILE)
    done = subprocess.run(
        [str(entrypoint), "printf", "%s", "ran"],
        env={**os.environ, "SPARK_HOME": "/nowhere"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout) == (0, "ran"), done.stderr


def test_the_entry_point_speaks_the_installed_sparks_pod_protocol():
    """The variables the entry point reads and the executor options it passes are the ones the installed
    Spark's Kubernetes backend sets and parses (its constants and KubernetesExecutorBackend's options)."""
    import pyspark

    text = (DOCKER / "spark-entrypoint.sh").read_text()
    (jar,) = (Path(pyspark.__file__).parent / "jars").glob("spark-kubernetes_*.jar")
    with zipfile.ZipFile(jar) as archive:
        names = [n for n in archive.namelist() if n.endswith(".class")]
        constants = b"".join(archive.read(n) for n in names if n.startswith("org/apache/spark/deploy/k8s/Constants"))
        backend = b"".join(archive.read(n) for n in names if "/k8s/KubernetesExecutorBackend" in n)
    assert backend, "the installed Spark has no KubernetesExecutorBackend"
    ours = {"SPARK_HOME", "SPARK_DIST_CLASSPATH", "SPARK_EXTRA_CLASSPATH", "SPARK_EXECUTOR_JAVA_OPTS"}
    variables = set(re.findall(r"\$\{?!?(SPARK_[A-Z_]+)", text)) - ours
    assert {"SPARK_DRIVER_BIND_ADDRESS", "SPARK_EXECUTOR_MEMORY", "SPARK_DRIVER_URL"} <= variables
    assert [v for v in sorted(variables) if v.encode() not in constants] == []
    options = re.findall(r"(--[A-Za-z-]+) \"\$SPARK_", text)
    assert len(options) == 7 and [o for o in options if o.encode() not in backend] == []
