"""Validate rendered Kubernetes manifests offline (scripts/check-deploy.sh).

Every object is checked against the Kubernetes OpenAPI schemas that
kubernetes-validate ships, in strict mode (unknown fields are errors).
ServiceMonitor is a prometheus-operator CRD with no schema there: it is
checked against servicemonitor.schema.json beside this file, which holds the
fields the chart writes. Any other kind without a schema is an error.

Before the real files, a deliberately broken Deployment must be rejected, so a
validator that accepts everything cannot pass the check.

usage: validate_manifests.py K8S_VERSION FILE...
"""

import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.schema.json",
}
HERE = pathlib.Path(__file__).resolve().parent


def problems(doc, version):
    """The validation errors of one object (empty when valid)."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CRD_SCHEMAS:
        schema = json.loads((HERE / CRD_SCHEMAS[key]).read_text())
        validator = jsonschema.Draft7Validator(schema)
        return [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}"
                for e in validator.iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"no schema for this kind: {e}"]
    return []


def self_test(version):
    broken = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "broken"},
        "spec": {"replicas": "two", "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "imagee": "x"}]}}},
    }
    if not problems(broken, version):
        sys.exit("error: the validator accepted a broken Deployment; the check is not working")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    version, files = sys.argv[1], sys.argv[2:]
    self_test(version)
    failed = 0
    checked = 0
    for name in files:
        with open(name) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        if not docs:
            print(f"FAIL {name}: no objects rendered")
            failed += 1
        for doc in docs:
            what = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            errors = problems(doc, version)
            checked += 1
            if errors:
                failed += 1
                for error in errors:
                    print(f"FAIL {name}: {what}: {error}")
    print(f"{checked - failed} passed, {failed} failed "
          f"(Kubernetes {version} schemas, strict; ServiceMonitor against {CRD_SCHEMAS[('monitoring.coreos.com/v1', 'ServiceMonitor')]})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
