"""Check the Grafana dashboard and the Prometheus rules against a live server
(scripts/check-deploy.sh).

1. Shape: the dashboard is valid JSON with panels whose targets carry PromQL;
   the rules file is YAML with groups of alerting rules (alert, expr, for,
   labels.severity, annotations.summary) and nothing else.
2. Metric names: every metric a query uses (histograms by their _bucket,
   _sum or _count series) exists in the /metrics output of a real
   `roomcast standalone` after some traffic: a room created, a listener, a
   few comments, a refused comment, a route, a client-stats report, a long
   poll, and a room that switches to broadcast (threshold 2).

usage: check_metrics.py --roomcast BIN DASHBOARD.json RULES.yml
"""

import argparse
import base64
import hashlib
import hmac
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml

SECRET = "check-deploy-secret"
# PromQL words that look like metric names but are not.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
            "and", "or", "unless", "offset", "inf", "nan"}
# Series Prometheus makes itself (not in any /metrics output).
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
SEVERITIES = {"critical", "warning", "info"}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
ALERT_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
RECORD_KEYS = {"record", "expr", "labels"}


def fail(message):
    sys.exit(f"error: {message}")


def metric_names(expr):
    """Metric names a PromQL expression reads (a lexer's view, not a parser's)."""
    text = re.sub(r'"(\\.|[^"\\])*"', '""', expr)        # string literals (label values)
    text = re.sub(r"\$\{?\w+\}?", "", text)               # Grafana variables
    text = re.sub(r"\{[^}]*\}", "", text)                 # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)                # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        rest = text[match.end():].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue  # a function or an operator
        if re.fullmatch(r"[0-9.e+-]+", word):
            continue
        names.add(word)
    return names


def balanced(expr):
    depth = {"(": 0, "{": 0, "[": 0}
    closing = {")": "(", "}": "{", "]": "["}
    for ch in re.sub(r'"(\\.|[^"\\])*"', '""', expr):
        if ch in depth:
            depth[ch] += 1
        elif ch in closing:
            depth[closing[ch]] -= 1
            if depth[closing[ch]] < 0:
                return False
    return all(v == 0 for v in depth.values())


def dashboard_exprs(path):
    try:
        with open(path) as f:
            dashboard = json.load(f)
    except ValueError as e:
        fail(f"{path} is not valid JSON: {e}")
    for key in ("uid", "title", "panels", "schemaVersion"):
        if key not in dashboard:
            fail(f"{path}: no {key!r}")
    exprs = []
    ids = set()
    panels = list(dashboard["panels"])
    for panel in panels:
        panels.extend(panel.get("panels", []))  # panels inside collapsed rows
        if panel.get("id") in ids:
            fail(f"{path}: panel id {panel.get('id')} used twice")
        ids.add(panel.get("id"))
        if panel.get("type") == "row":
            continue
        title = panel.get("title") or fail(f"{path}: a panel without a title")
        if "gridPos" not in panel:
            fail(f"{path}: panel {title!r} has no gridPos")
        targets = panel.get("targets") or fail(f"{path}: panel {title!r} has no query")
        for target in targets:
            expr = target.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                fail(f"{path}: panel {title!r} has a target without expr")
            if not balanced(expr):
                fail(f"{path}: panel {title!r}: unbalanced brackets in {expr}")
            exprs.append((f"panel {title!r}", expr))
    return exprs


def rule_exprs(path):
    try:
        with open(path) as f:
            rules = yaml.safe_load(f)
    except yaml.YAMLError as e:
        fail(f"{path} is not valid YAML: {e}")
    if not isinstance(rules, dict) or set(rules) != {"groups"}:
        fail(f"{path}: the top level must be exactly {{groups: [...]}}")
    exprs = []
    names = set()
    for group in rules["groups"]:
        name = group.get("name") or fail(f"{path}: a group without a name")
        if name in names:
            fail(f"{path}: group {name!r} twice")
        names.add(name)
        unknown = set(group) - {"name", "interval", "rules", "limit"}
        if unknown:
            fail(f"{path}: group {name!r}: unknown keys {sorted(unknown)}")
        for rule in group.get("rules") or fail(f"{path}: group {name!r} has no rules"):
            what = rule.get("alert") or rule.get("record") or fail(f"{path}: a rule of {name!r} is neither alert nor record")
            allowed = ALERT_KEYS if "alert" in rule else RECORD_KEYS
            unknown = set(rule) - allowed
            if unknown:
                fail(f"{path}: rule {what!r}: unknown keys {sorted(unknown)}")
            expr = rule.get("expr")
            if not isinstance(expr, str) or not balanced(expr):
                fail(f"{path}: rule {what!r}: missing or unbalanced expr")
            if "alert" in rule:
                if rule.get("labels", {}).get("severity") not in SEVERITIES:
                    fail(f"{path}: alert {what!r}: labels.severity must be one of {sorted(SEVERITIES)}")
                if not rule.get("annotations", {}).get("summary"):
                    fail(f"{path}: alert {what!r}: no annotations.summary")
                if "for" in rule and not DURATION.match(str(rule["for"])):
                    fail(f"{path}: alert {what!r}: 'for' is not a duration: {rule['for']}")
            exprs.append((f"rule {what!r}", expr))
    return exprs


def http(method, url, body=None, token=None, ok=(200, 201, 202, 204)):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        if e.code in ok:
            return e.code, e.read().decode()
        raise RuntimeError(f"{method} {url}: HTTP {e.code}: {e.read().decode()[:200]}") from e


def jwt(uid):
    def b64(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": uid, "iat": now, "exp": now + 600}).encode())
    signature = hmac.new(SECRET.encode(), f"{head}.{claims}".encode(), hashlib.sha256).digest()
    return f"{head}.{claims}.{b64(signature)}"


def exposed_series(text):
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def wait_until(what, predicate, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, RuntimeError):
            pass
        time.sleep(0.2)
    fail(f"timed out waiting for {what}")


def live_series(roomcast):
    """Start standalone on free ports, drive traffic, return its /metrics series names."""
    server = subprocess.Popen(
        [roomcast, "--secret", SECRET, "standalone", "--bind", "127.0.0.1",
         "--router-port", "0", "--ws-port", "0", "--biz-port", "0", "--backend-port", "0",
         "--metrics-port", "0",
         "--quic-port", "0", "--admin-port", "0", "--broadcast-threshold", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    listener = None
    try:
        urls = {}
        for line in server.stdout:
            match = re.match(r"\s+(router|room API|client API|metrics)\s+(\S+)", line)
            if match:
                urls[match.group(1)] = match.group(2)
            if len(urls) == 4:
                break
        if len(urls) != 4:
            fail(f"roomcast standalone printed no URLs (exit {server.poll()})")
        router, backend, metrics = urls["router"], urls["room API"], urls["metrics"]
        biz = urls["client API"]
        # The backend URL with standalone's development API key (the CLI's default).
        cli = [roomcast, "--secret", SECRET, "--router-url", router, "--backend-url", backend]

        room = subprocess.run(cli + ["room", "create", "--title", "check-deploy"], check=True,
                              capture_output=True, text=True, timeout=30).stdout.strip()
        listener = subprocess.Popen(cli + ["listen", "--room", room, "--uid", "bob", "--count", "3"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until("the listener to join",
                   lambda: "roomcast_conn_connections 1" in http("GET", metrics)[1])
        for text in ("hello", "everyone", "again"):
            subprocess.run(cli + ["say", "--room", room, "--uid", "alice", text], check=True,
                           capture_output=True, timeout=30)
        # Refused: longer than comment_max_chars.
        subprocess.run(cli + ["say", "--room", room, "--uid", "carol", "x" * 2000],
                       capture_output=True, timeout=30)
        http("GET", f"{router}/v1/route?uid=dave&platform=linux")
        http("POST", f"{router}/v1/client-stats",
             {"transport": "ws", "connect_ms": 40, "rtt_ms": 20, "failures": {"quic": 1}},
             token=jwt("dave"))
        http("GET", f"{biz}/v1/rooms/{room}/messages?wait=0", token=jwt("erin"), ok=range(200, 600))
        listener.wait(timeout=30)
        return exposed_series(http("GET", metrics)[1])
    finally:
        if listener and listener.poll() is None:
            listener.kill()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--roomcast", required=True)
    parser.add_argument("dashboard")
    parser.add_argument("rules")
    args = parser.parse_args()

    used = {}
    for where, expr in dashboard_exprs(args.dashboard) + rule_exprs(args.rules):
        for name in metric_names(expr):
            used.setdefault(name, []).append(where)
    if len(used) < 20:
        fail(f"only {len(used)} metric names found in the queries: the extraction is broken")

    series = live_series(args.roomcast)
    missing = {n: w for n, w in used.items() if n not in series and n not in SYNTHETIC}
    for name, where in sorted(missing.items()):
        print(f"MISSING {name} (used by {', '.join(sorted(set(where)))})")
    print(f"{len(used) - len(missing)} passed, {len(missing)} failed: metric names used by "
          f"{args.dashboard} and {args.rules}, against {len(series)} live series")
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    main()
