"""Run every container the chart renders the way Kubernetes would, up to
configuration: its binary with its args (`$(VAR)` expanded) and env (values,
Secret keys, downward API fields), its ConfigMap file mounted where the args
point (and a Secret volume as a throwaway certificate, key and CA in PEM, which
is what every Secret the chart mounts holds), plus `--print-config --check-config`. Each binary must accept its
configuration as a start would (exit 0: names, types, values, required and
strong-enough secrets), so a setting the chart writes wrong fails here, not in
a crash-looping pod (scripts/check-deploy.sh).

usage: check_configs.py BIN_DIR RENDERED.yaml...
"""

import base64
import math
import os
import shutil
import re
import subprocess
import sys
import tempfile

import yaml

# Stand-ins for what the cluster provides.
FIELDS = {"metadata.name": "roomcast-conn-5d8f7-abcde", "status.podIP": "10.1.2.3",
          "status.hostIP": "192.0.2.10"}
# Keys of an existing Secret (secrets.existingSecret) the chart does not render.
EXTERNAL_SECRET = {"token-secret": "external-secret-0123456789abcdef0123456789",
                   "admin-token": "external-admin-0123456789",
                   "internal-token": "external-internal-0123456789",
                   "redis-urls": "[redis://:pw@redis-0:6379,redis://:pw@redis-1:6379]",
                   "postgresql-url": "postgresql://roomcast:pw@postgres:5432/roomcast",
                   "webhook-secrets": "[whsec-external-0123456789abcdef]"}


def secret_values(docs):
    values = {}
    for doc in docs:
        if doc.get("kind") == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
            data.update(doc.get("stringData") or {})
            values[doc["metadata"]["name"]] = data
    return values


def cpu_cores(quantity):
    """A Kubernetes CPU quantity ("500m", "2", "1.5") in cores."""
    quantity = str(quantity)
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def resource_field(container, ref):
    """What the downward API gives for a CPU resourceFieldRef: the quantity
    divided by the divisor, rounded up (at least 1)."""
    kind, _, name = ref["resource"].partition(".")
    if name != "cpu":
        raise SystemExit(f"error: check_configs.py cannot stand in for resourceFieldRef {ref['resource']}")
    quantity = container.get("resources", {}).get(kind, {}).get("cpu")
    if quantity is None:
        raise SystemExit(f"error: resourceFieldRef {ref['resource']} of a container without it")
    return str(max(1, math.ceil(cpu_cores(quantity) / cpu_cores(ref.get("divisor", "1")))))


def env_of(container, secrets):
    env = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[var["name"]] = FIELDS[source["fieldRef"]["fieldPath"]]
        elif "resourceFieldRef" in source:
            env[var["name"]] = resource_field(container, source["resourceFieldRef"])
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            data = secrets.get(ref["name"], EXTERNAL_SECRET)
            if ref["key"] in data:
                env[var["name"]] = data[ref["key"]]
            elif not ref.get("optional"):
                raise SystemExit(f"error: Secret {ref['name']} has no key {ref['key']}")
    return env


def make_pem_files(directory):
    """A self-signed certificate and its key, as ca.crt, tls.crt and tls.key:
    what a mounted TLS or CA Secret holds."""
    key, cert = os.path.join(directory, "tls.key"), os.path.join(directory, "tls.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=check-deploy"],
                   check=True, capture_output=True)
    shutil.copy(cert, os.path.join(directory, "ca.crt"))


def check(path, bin_dir, pem_dir):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    configmaps = {d["metadata"]["name"]: d["data"] for d in docs if d.get("kind") == "ConfigMap"}
    secrets = secret_values(docs)
    failed = 0
    checked = 0
    for doc in docs:
        if doc.get("kind") != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            env = env_of(container, secrets)
            with tempfile.TemporaryDirectory() as tmp:
                mounts = {}
                for mount in container.get("volumeMounts", []):
                    if "secret" in volumes[mount["name"]]:
                        mounts[mount["mountPath"]] = pem_dir
                secret_mounts = dict(mounts)
                for mount in container.get("volumeMounts", []):
                    volume = volumes[mount["name"]]
                    if "configMap" in volume:
                        data = configmaps[volume["configMap"]["name"]][mount["subPath"]]
                        # The config file names the Secret files where the pod mounts them.
                        for mount_path, local in secret_mounts.items():
                            data = data.replace(mount_path + "/", local + "/")
                        local = os.path.join(tmp, mount["subPath"])
                        with open(local, "w") as f:
                            f.write(data)
                        mounts[mount["mountPath"]] = local
                args = []
                for arg in container.get("args", []):
                    arg = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), arg)
                    for mount_path, local in mounts.items():
                        arg = arg.replace(mount_path, local)
                    args.append(arg)
                binary = os.path.join(bin_dir, container["command"][0])
                run_env = {"PATH": os.environ.get("PATH", ""), **env}
                result = subprocess.run([binary, *args, "--print-config", "--check-config"], env=run_env,
                                        capture_output=True, text=True, timeout=60)
                checked += 1
                if result.returncode != 0:
                    failed += 1
                    print(f"FAIL {path}: {doc['metadata']['name']}: {container['command'][0]} "
                          f"refused its configuration (exit {result.returncode}):\n{result.stderr.strip()}")
    return checked, failed


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    bin_dir, files = sys.argv[1], sys.argv[2:]
    checked = failed = 0
    with tempfile.TemporaryDirectory() as pem_dir:
        make_pem_files(pem_dir)
        for path in files:
            c, f = check(path, bin_dir, pem_dir)
            checked += c
            failed += f
    if checked == 0:
        sys.exit("error: no Deployment found in the rendered files")
    print(f"{checked - failed} passed, {failed} failed: service containers accept the configuration the chart gives them")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
