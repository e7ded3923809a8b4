"""Webhook signing secrets reach biz pods from the release Secret and appear
nowhere else in the rendered chart (a ConfigMap is readable far more widely
than a Secret). The rendered file comes from ci/backing-tls-values.yaml,
which sets webhooks.secrets (scripts/check-deploy.sh).

usage: check_webhook_secrets.py RENDERED.yaml
"""

import sys

import yaml

SECRETS = ["whsec-check-deploy-0123456789", "whsec-check-deploy-older-0123"]
ENV = "ROOMCAST_BIZ_NODE__WEBHOOKS__SECRETS"


def main():
    with open(sys.argv[1]) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for secret in SECRETS:
        holders = sorted({d["kind"] for d in docs if secret in yaml.safe_dump(d)})
        if holders != ["Secret"]:
            sys.exit(f"error: webhook secret {secret!r} is in {holders}, expected only the Secret")
    stored = [(d.get("stringData") or {}).get("webhook-secrets") for d in docs if d["kind"] == "Secret"]
    if stored != [f"[{','.join(SECRETS)}]"]:
        sys.exit(f"error: the Secret's webhook-secrets is {stored}, expected the bracketed list of {SECRETS}")
    pods = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"}
    for name, pod in pods.items():
        refs = [e["valueFrom"]["secretKeyRef"]["key"]
                for c in pod["containers"] for e in c.get("env", []) if e["name"] == ENV]
        expected = ["webhook-secrets"] if name.endswith("-biz") else []
        if refs != expected:
            sys.exit(f"error: {name} gets {ENV} from {refs}, expected {expected}")
    print(f"    webhook secrets: only in the Secret, {ENV} in the biz pods alone")


if __name__ == "__main__":
    main()
