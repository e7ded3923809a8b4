{{/* Names and labels. */}}
{{- define "roomcast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "roomcast.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels every pod of the release carries (the NetworkPolicy admits them). */}}
{{- define "roomcast.selectorLabels" -}}
app.kubernetes.io/name: {{ include "roomcast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "roomcast.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "roomcast.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: roomcast
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one service: (dict "root" $ "component" "conn"). */}}
{{- define "roomcast.componentSelectorLabels" -}}
{{ include "roomcast.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "roomcast.componentLabels" -}}
{{ include "roomcast.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "roomcast.componentName" -}}
{{- printf "%s-%s" (include "roomcast.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "roomcast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "roomcast.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "roomcast.secretName" -}}
{{- default (include "roomcast.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "roomcast.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Required values, checked once (NOTES.txt includes it). */}}
{{- define "roomcast.validate" -}}
{{- if not .Values.etcd.endpoints -}}
{{- fail "etcd.endpoints is required: the host:port of each etcd member" -}}
{{- end -}}
{{- if not .Values.secrets.existingSecret -}}
{{- if not .Values.redis.urls -}}
{{- fail "redis.urls is required (or secrets.existingSecret with a redis-urls key)" -}}
{{- end -}}
{{- if and (eq .Values.redis.mode "standalone") (gt (len .Values.redis.urls) 1) -}}
{{- fail "redis.mode standalone takes one URL; several URLs are the seeds of a Redis Cluster (redis.mode: cluster)" -}}
{{- end -}}
{{- if and .Values.postgresql.enabled (not .Values.postgresql.url) -}}
{{- fail "postgresql.url is required when postgresql.enabled" -}}
{{- end -}}
{{- if .Values.redis.tls.secretName -}}
{{- range .Values.redis.urls -}}
{{- if not (hasPrefix "rediss://" .) -}}
{{- fail "redis.tls.secretName is set: every redis.urls entry must be a rediss:// URL" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.secrets.etcdPassword (not .Values.etcd.username) -}}
{{- fail "secrets.etcdPassword is set without etcd.username" -}}
{{- end -}}
{{- if dig "node" "webhooks" "secrets" list .Values.biz.config -}}
{{- fail "biz.config.node.webhooks.secrets would be written into a ConfigMap: put webhook signing secrets in webhooks.secrets (the release Secret)" -}}
{{- end -}}
{{- if and .Values.conn.hostPorts (eq .Values.conn.advertise "podIP") -}}
{{- fail "conn.hostPorts: true serves clients on the node's IP: set conn.advertise: hostIP" -}}
{{- end -}}
{{- end -}}

{{/*
TOML of a map. Helm reads every YAML number as a float, and toToml writes
2000 as 2000.0, which an integer setting refuses: this renderer writes
integral numbers as integers. Arguments: (dict "table" MAP "prefix" "").
*/}}
{{- define "roomcast.toml" -}}
{{- $prefix := .prefix -}}
{{- range $key, $value := .table -}}
{{- if and (not (kindIs "map" $value)) (not (kindIs "invalid" $value)) }}
{{ include "roomcast.tomlKey" $key }} = {{ include "roomcast.tomlValue" $value }}
{{- end -}}
{{- end -}}
{{- range $key, $value := .table -}}
{{- if kindIs "map" $value }}

[{{ $prefix }}{{ include "roomcast.tomlKey" $key }}]
{{- include "roomcast.toml" (dict "table" $value "prefix" (printf "%s%s." $prefix (include "roomcast.tomlKey" $key))) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "roomcast.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{- define "roomcast.tomlValue" -}}
{{- if kindIs "string" . -}}
{{ toJson . }}
{{- else if kindIs "bool" . -}}
{{ . }}
{{- else if or (kindIs "float64" .) (kindIs "float32" .) -}}
{{- if eq (float64 .) (float64 (int64 .)) -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else if kindIs "slice" . -}}
[{{- range $i, $item := . -}}{{ if $i }}, {{ end }}{{ include "roomcast.tomlValue" $item }}{{- end -}}]
{{- else -}}
{{ . }}
{{- end -}}
{{- end -}}

{{/* Pod anti-affinity from <service>.antiAffinity unless <service>.affinity is given. */}}
{{- define "roomcast.affinity" -}}
{{- $values := .values -}}
{{- if $values.affinity -}}
{{ toYaml $values.affinity }}
{{- else if eq $values.antiAffinity "hard" -}}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "roomcast.componentSelectorLabels" . | nindent 10 }}
{{- else if eq $values.antiAffinity "soft" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "roomcast.componentSelectorLabels" . | nindent 12 }}
{{- end -}}
{{- end -}}

{{/* Settings shared by every service's TOML: discovery, with the etcd TLS
files and user when set (the password comes from the Secret as env). */}}
{{- define "roomcast.discoveryConfig" -}}
{{- $discovery := dict "etcd_endpoints" .Values.etcd.endpoints "prefix" .Values.etcd.prefix "lease_ttl_secs" .Values.etcd.leaseTtlSecs -}}
{{- $etcd := dict -}}
{{- if .Values.etcd.tls.secretName -}}
{{- $etcd = include "roomcast.clientTlsFiles" (dict "tls" .Values.etcd.tls "dir" "/etc/roomcast/etcd-tls") | fromJson -}}
{{- end -}}
{{- with .Values.etcd.username }}{{ $_ := set $etcd "username" . }}{{ end -}}
{{- if $etcd }}{{ $_ := set $discovery "etcd" $etcd }}{{ end -}}
{{- $discovery | toJson -}}
{{- end -}}

{{/*
The pod template every service shares. Arguments (dict):
  root, component, binary, values (the service's values), ports (list of
  container ports), probePort (name of the port serving /livez and /readyz),
  env (extra env list), args (extra args list), volumes, volumeMounts,
  lifecycle, terminationGracePeriodSeconds.
*/}}
{{- define "roomcast.podTemplate" -}}
{{- $root := .root -}}
{{- $values := .values -}}
metadata:
  labels:
    {{- include "roomcast.componentLabels" . | nindent 4 }}
    {{- with $values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Roll the pods when their settings change.
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
    {{- with $values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "roomcast.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  {{- with (include "roomcast.affinity" .) }}
  affinity:
    {{- . | nindent 4 }}
  {{- end }}
  {{- with $values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "roomcast.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command: [{{ .binary | quote }}]
      args:
        - --config=/etc/roomcast/{{ .component }}.toml
        # Pod name and IP: a restarted container keeps its node id, and
        # peers reach the pod directly.
        - --node-id=$(POD_NAME)
        - --advertise-host=$(ADVERTISE_HOST)
        {{- with .args }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: ADVERTISE_HOST
          valueFrom:
            fieldRef:
              fieldPath: {{ .advertiseField | default "status.podIP" }}
        - name: RUST_LOG
          value: {{ $root.Values.logLevel | quote }}
        {{- include "roomcast.workerThreadsEnv" . | nindent 8 }}
        {{- with .env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $values.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        {{- toYaml .ports | nindent 8 }}
      startupProbe:
        httpGet:
          path: /livez
          port: {{ .probePort }}
        periodSeconds: 2
        failureThreshold: 30
      livenessProbe:
        httpGet:
          path: /livez
          port: {{ .probePort }}
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /readyz
          port: {{ .probePort }}
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 2
      {{- with .lifecycle }}
      lifecycle:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml $values.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/roomcast/{{ .component }}.toml
          subPath: {{ .component }}.toml
          readOnly: true
        # The root filesystem is read-only; scratch space, should anything need it.
        - name: tmp
          mountPath: /tmp
        {{- with .volumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "roomcast.fullname" $root }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- with .volumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* Env from the release Secret: (dict "root" $ "name" ENV "key" KEY "optional" BOOL). */}}
{{- define "roomcast.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "roomcast.secretName" .root }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/*
The TLS Secret volumes and mounts of a service: its own certificate
(tls.<component>.secretName), the etcd client TLS files (every service), the
Redis client TLS files (push and biz), the webhook receivers' CA (biz). Arguments: (dict "root" $ "component" "conn").
*/}}
{{- define "roomcast.tlsVolumes" -}}
{{- $secret := dig .component "secretName" "" .root.Values.tls -}}
{{- if $secret }}
- name: tls
  secret:
    secretName: {{ $secret }}
{{- end }}
{{- with .root.Values.etcd.tls.secretName }}
- name: etcd-tls
  secret:
    secretName: {{ . }}
{{- end }}
{{- if include "roomcast.usesRedisTls" . }}
- name: redis-tls
  secret:
    secretName: {{ .root.Values.redis.tls.secretName }}
{{- end }}
{{- if include "roomcast.usesWebhooksTls" . }}
- name: webhooks-tls
  secret:
    secretName: {{ .root.Values.webhooks.tls.secretName }}
{{- end }}
{{- end -}}

{{- define "roomcast.tlsMounts" -}}
{{- $secret := dig .component "secretName" "" .root.Values.tls -}}
{{- if $secret }}
- name: tls
  mountPath: /etc/roomcast/tls/{{ .component }}
  readOnly: true
{{- end }}
{{- if .root.Values.etcd.tls.secretName }}
- name: etcd-tls
  mountPath: /etc/roomcast/etcd-tls
  readOnly: true
{{- end }}
{{- if include "roomcast.usesRedisTls" . }}
- name: redis-tls
  mountPath: /etc/roomcast/redis-tls
  readOnly: true
{{- end }}
{{- if include "roomcast.usesWebhooksTls" . }}
- name: webhooks-tls
  mountPath: /etc/roomcast/webhooks-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* Non-empty when the component talks to Redis and Redis TLS files are set. */}}
{{- define "roomcast.usesRedisTls" -}}
{{- if and (has .component (list "push" "biz")) .root.Values.redis.tls.secretName -}}yes{{- end -}}
{{- end -}}

{{/* Non-empty for biz pods when a CA Secret for webhook receivers is set. */}}
{{- define "roomcast.usesWebhooksTls" -}}
{{- if and (eq .component "biz") .root.Values.webhooks.tls.secretName -}}yes{{- end -}}
{{- end -}}

{{/* The TLS files of a client connection mounted from (dict "tls" VALUES "dir" DIR): ca_file, and cert_file/key_file with clientCert. */}}
{{- define "roomcast.clientTlsFiles" -}}
{{- $files := dict "ca_file" (printf "%s/ca.crt" .dir) -}}
{{- if .tls.clientCert -}}
{{- $_ := set $files "cert_file" (printf "%s/tls.crt" .dir) -}}
{{- $_ := set $files "key_file" (printf "%s/tls.key" .dir) -}}
{{- end -}}
{{- $files | toJson -}}
{{- end -}}

{{/* The etcd password env of a service, when etcd.username is set: (dict "root" $ "prefix" "ROOMCAST_CONN"). */}}
{{- define "roomcast.etcdPasswordEnv" -}}
{{- if .root.Values.etcd.username -}}
{{ include "roomcast.secretEnv" (dict "root" .root "name" (printf "%s_DISCOVERY__ETCD__PASSWORD" .prefix) "key" "etcd-password" "optional" true) }}
{{- end -}}
{{- end -}}

{{/*
ROOMCAST_WORKER_THREADS of a service's container (arguments as podTemplate):
workerThreads when set; else, with a CPU request and no CPU limit, the request
rounded up (the downward API rounds CPU up), since without a limit the runtime
would start a worker per CPU of the node and pay cross-thread wakeups for CPUs
it is not meant to use; with a CPU limit nothing (the runtime reads the quota).
*/}}
{{- define "roomcast.workerThreadsEnv" -}}
{{- $values := .values -}}
{{- $resources := $values.resources | default dict -}}
{{- if $values.workerThreads -}}
- name: ROOMCAST_WORKER_THREADS
  value: {{ $values.workerThreads | int | quote }}
{{- else if and ($resources.requests | default dict).cpu (not ($resources.limits | default dict).cpu) -}}
- name: ROOMCAST_WORKER_THREADS
  valueFrom:
    resourceFieldRef:
      containerName: {{ .component }}
      resource: requests.cpu
      divisor: "1"
{{- end -}}
{{- end -}}
