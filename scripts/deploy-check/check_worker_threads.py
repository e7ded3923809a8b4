"""Each service's ROOMCAST_WORKER_THREADS follows its values: `workerThreads`
when set; else, with a CPU request and no CPU limit, the request rounded up
(downward API); with a CPU limit, nothing (the runtime reads the cgroup quota).
The rendered file comes from the default values plus the settings below
(scripts/check-deploy.sh).

usage: check_worker_threads.py RENDERED.yaml
"""

import sys

import yaml

from check_configs import resource_field

ENV = "ROOMCAST_WORKER_THREADS"
# What scripts/check-deploy.sh sets, and what each pod must get from it.
SET = ["push.workerThreads=3", "conn.resources.limits.cpu=2", "biz.resources.requests.cpu=1500m"]
EXPECTED = {"push": "3", "conn": None, "biz": "2", "router": "1"}


def main():
    with open(sys.argv[1]) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    seen = set()
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        component = doc["metadata"]["name"].rsplit("-", 1)[-1]
        for container in doc["spec"]["template"]["spec"]["containers"]:
            found = [e for e in container.get("env", []) if e["name"] == ENV]
            if len(found) > 1:
                sys.exit(f"error: {component} sets {ENV} {len(found)} times")
            got = None
            if found:
                var = found[0]
                got = var["value"] if "value" in var else resource_field(container, var["valueFrom"]["resourceFieldRef"])
            if got != EXPECTED[component]:
                sys.exit(f"error: {component} gets {ENV}={got}, expected {EXPECTED[component]} (with {SET})")
            seen.add(component)
    if seen != set(EXPECTED):
        sys.exit(f"error: found the services {sorted(seen)}, expected {sorted(EXPECTED)}")
    print(f"    worker threads: workerThreads, else the CPU request rounded up, none under a CPU limit")


if __name__ == "__main__":
    main()
