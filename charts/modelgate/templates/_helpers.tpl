{{/*
Names and labels shared by every template. Object names follow docs/architecture.md:
"<fullname>-gateway…" and "<fullname>-operator…".
*/}}

{{- define "modelgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name prefix, at most 42 characters so "<fullname>-gateway-upstream-keys" fits 63. */}}
{{- define "modelgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 42 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 42 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 42 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "modelgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "modelgate.labels" -}}
helm.sh/chart: {{ include "modelgate.chart" . }}
{{ include "modelgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "modelgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Component labels: call with (dict "root" $ "component" "gateway"). */}}
{{- define "modelgate.componentLabels" -}}
{{ include "modelgate.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "modelgate.componentSelectorLabels" -}}
{{ include "modelgate.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* --- gateway names --- */}}
{{- define "modelgate.gateway.fullname" -}}
{{- printf "%s-gateway" (include "modelgate.fullname" .) }}
{{- end }}

{{- define "modelgate.gateway.metricsServiceName" -}}
{{- printf "%s-gateway-metrics" (include "modelgate.fullname" .) }}
{{- end }}

{{/* ConfigMap the operator writes (index.json and config.json; shards in configShardNames). */}}
{{- define "modelgate.gateway.configMapName" -}}
{{- printf "%s-gateway-config" (include "modelgate.fullname" .) }}
{{- end }}

{{/* Secret the operator writes with the upstream API keys. */}}
{{- define "modelgate.gateway.upstreamKeysSecretName" -}}
{{- printf "%s-gateway-upstream-keys" (include "modelgate.fullname" .) }}
{{- end }}

{{/* ConfigMaps that may hold shards of a large config: <config>-0 … <config>-(max-1), a JSON list. */}}
{{- define "modelgate.gateway.configShardNames" -}}
{{- $base := include "modelgate.gateway.configMapName" . }}
{{- $names := list }}
{{- range $i := until (int .Values.operator.maxConfigShards) }}
{{- $names = append $names (printf "%s-%d" $base $i) }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/* Further Secrets that may hold upstream keys: <secret>-1 … <secret>-(max-1), a JSON list. */}}
{{- define "modelgate.gateway.upstreamKeysShardNames" -}}
{{- $base := include "modelgate.gateway.upstreamKeysSecretName" . }}
{{- $names := list }}
{{- range $i := until (int .Values.operator.maxConfigShards) }}
{{- if $i }}
{{- $names = append $names (printf "%s-%d" $base $i) }}
{{- end }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{- define "modelgate.gateway.apiKeysSecretName" -}}
{{- if .Values.gateway.apiKeys.existingSecret }}
{{- .Values.gateway.apiKeys.existingSecret }}
{{- else }}
{{- printf "%s-gateway-api-keys" (include "modelgate.fullname" .) }}
{{- end }}
{{- end }}

{{- define "modelgate.gateway.signingKeySecretName" -}}
{{- if .Values.gateway.responseIds.existingSecret }}
{{- .Values.gateway.responseIds.existingSecret }}
{{- else }}
{{- printf "%s-gateway-signing-key" (include "modelgate.fullname" .) }}
{{- end }}
{{- end }}

{{- define "modelgate.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create }}
{{- default (include "modelgate.gateway.fullname" .) .Values.gateway.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.gateway.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* terminationGracePeriodSeconds: preStop sleep + drain + margin. */}}
{{- define "modelgate.gateway.terminationGracePeriodSeconds" -}}
{{- add .Values.gateway.preStopSleepSeconds .Values.gateway.shutdownGraceSeconds .Values.gateway.terminationGraceMarginSeconds }}
{{- end }}

{{/* --- operator names --- */}}
{{- define "modelgate.operator.fullname" -}}
{{- printf "%s-operator" (include "modelgate.fullname" .) }}
{{- end }}

{{- define "modelgate.operator.baseConfigName" -}}
{{- printf "%s-operator-base-config" (include "modelgate.fullname" .) }}
{{- end }}

{{- define "modelgate.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "modelgate.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modelgate.operator.peeringName" -}}
{{- default (include "modelgate.fullname" .) .Values.operator.peering.name }}
{{- end }}

{{/* Image reference: call with (dict "image" .Values.gateway.image "root" $). */}}
{{- define "modelgate.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag }}
{{- if .image.digest }}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The base config document the operator starts from (docs/architecture.md: auth, limits,
observability; the operator fills in deployments and models). Secret values are file
references into the gateway's mounted Secrets, never the values themselves.
*/}}
{{- define "modelgate.operator.baseConfig" -}}
{{- $gw := .Values.gateway }}
{{- $keys := list }}
{{- range $gw.apiKeys.keys }}
{{- $key := dict "name" .name "valueFrom" (dict "file" (printf "/etc/modelgate/api-keys/%s" .name)) "models" (.models | default (list "*")) }}
{{- if .tenant }}
{{- $_ := set $key "tenant" .tenant }}
{{- end }}
{{- $keys = append $keys $key }}
{{- end }}
{{- $obs := $gw.config.observability }}
{{- $doc := dict
  "apiVersion" "config.modelgate.dev/v1alpha1"
  "kind" "GatewayConfig"
  "metadata" (dict "renderedBy" (printf "helm/%s" (include "modelgate.chart" .)))
  "spec" (dict
    "deployments" (list)
    "models" (list)
    "auth" (dict "keys" $keys)
    "responseIds" (dict "signingKey" (dict "file" "/etc/modelgate/response-ids/signing-key"))
    "limits" (dict "maxRequestBodyBytes" (int64 $gw.config.limits.maxRequestBodyBytes))
    "observability" (dict
      "endUserHeader" ($obs.endUserHeader | default nil)
      "endUserLabelLimit" (int64 $obs.endUserLabelLimit)
      "requestLog" (dict "enabled" $obs.requestLog.enabled "includeContent" $obs.requestLog.includeContent))
  ) }}
{{- with include "modelgate.redis.url" . }}
{{- $state := dict "redisUrl" . }}
{{- if include "modelgate.redis.passwordSecretName" $ }}
{{- $_ := set $state "redisPassword" (dict "file" "/etc/modelgate/redis/password") }}
{{- end }}
{{- $_ := set $doc.spec "state" $state }}
{{- end }}
{{- if $obs.tracing.enabled }}
{{- $_ := set $doc.spec.observability "tracing" (dict "enabled" true "endpoint" $obs.tracing.endpoint
      "serviceName" $obs.tracing.serviceName "sampleRatio" (float64 $obs.tracing.sampleRatio)) }}
{{- end }}
{{- toYaml $doc }}
{{- end }}

{{/* --- sidecar mode names (docs/sidecar.md) --- */}}
{{- define "modelgate.sidecar.injectorName" -}}
{{- printf "%s-sidecar-injector" (include "modelgate.fullname" .) }}
{{- end }}

{{- define "modelgate.sidecar.webhookName" -}}
{{- printf "%s-webhook" (include "modelgate.fullname" .) }}
{{- end }}

{{- define "modelgate.sidecar.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "modelgate.fullname" .) }}
{{- end }}

{{- define "modelgate.sidecar.templateName" -}}
{{- printf "%s-sidecar-template" (include "modelgate.fullname" .) }}
{{- end }}

{{/* ClusterRole the operator binds in each sidecar namespace (RoleBinding of the same name). */}}
{{- define "modelgate.sidecar.roleName" -}}
{{- printf "%s-sidecar" (include "modelgate.fullname" .) }}
{{- end }}

{{/* Per-namespace ConfigMap and Secret the operator writes for the sidecars there. */}}
{{- define "modelgate.sidecar.configMapName" -}}
{{- printf "%s-sidecar-config" (include "modelgate.fullname" .) }}
{{- end }}

{{- define "modelgate.sidecar.upstreamKeysSecretName" -}}
{{- printf "%s-sidecar-upstream-keys" (include "modelgate.fullname" .) }}
{{- end }}

{{/* The sidecar template the operator injects from (injection/template.py reads it). */}}
{{- define "modelgate.sidecar.template" -}}
{{- $sc := .Values.sidecar }}
{{- $image := dict "repository" (default .Values.gateway.image.repository $sc.image.repository) "tag" (default .Values.gateway.image.tag $sc.image.tag) "digest" (default .Values.gateway.image.digest $sc.image.digest) }}
{{- $doc := dict
  "image" (include "modelgate.image" (dict "image" $image "root" .))
  "imagePullPolicy" $sc.image.pullPolicy
  "gateway" (include "modelgate.fullname" .)
  "configMap" (include "modelgate.sidecar.configMapName" .)
  "secret" (include "modelgate.sidecar.upstreamKeysSecretName" .)
  "port" (int $sc.port)
  "adminPort" (int $sc.adminPort)
  "resources" $sc.resources
  "securityContext" $sc.securityContext
  "logLevel" $sc.logLevel
  "shutdownGraceSeconds" (int $sc.shutdownGraceSeconds)
  "startupSeconds" (int $sc.startupSeconds) }}
{{- if $sc.apiKeys.secretName }}
{{- $_ := set $doc "apiKeysSecret" $sc.apiKeys.secretName }}
{{- end }}
{{- toJson $doc }}
{{- end }}

{{/* namespaceSelector expressions every injection webhook carries. */}}
{{- define "modelgate.sidecar.namespaceExpressions" -}}
- key: kubernetes.io/metadata.name
  operator: NotIn
  values: [{{ .Release.Namespace | quote }}, "kube-system"]
{{- with .Values.operator.watchNamespaces }}
- key: kubernetes.io/metadata.name
  operator: In
  values:
    {{- toYaml (uniq .) | nindent 4 }}
{{- end }}
{{- end }}

{{/*
What the operator does in a namespace with sidecars: finds the injected pods (their namespaces,
ServiceAccounts and /readyz; watched, by their label, so that a pod appearing, starting or going
away is acted on at once), writes that namespace's ConfigMap and upstream-keys Secret, and
binds the sidecar ClusterRole to the pods' ServiceAccounts (bind: without holding the role's
permissions itself). Create cannot be limited by name; everything else is.
*/}}
{{- define "modelgate.sidecar.operatorNamespaceRules" }}
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["list", "watch"]
  - apiGroups: [""]
    resources: ["configmaps", "secrets"]
    verbs: ["create"]
  - apiGroups: [""]
    resources: ["configmaps"]
    resourceNames: {{ include "modelgate.sidecar.withShards" (dict "name" (include "modelgate.sidecar.configMapName" .) "first" 0 "root" .) }}
    verbs: ["get", "patch", "delete"]
  - apiGroups: [""]
    resources: ["secrets"]
    resourceNames: {{ include "modelgate.sidecar.withShards" (dict "name" (include "modelgate.sidecar.upstreamKeysSecretName" .) "first" 1 "root" .) }}
    verbs: ["get", "patch", "delete"]
  - apiGroups: ["rbac.authorization.k8s.io"]
    resources: ["rolebindings"]
    verbs: ["create"]
  - apiGroups: ["rbac.authorization.k8s.io"]
    resources: ["rolebindings"]
    resourceNames: [{{ include "modelgate.sidecar.roleName" . | quote }}]
    verbs: ["get", "patch", "delete"]
  - apiGroups: ["rbac.authorization.k8s.io"]
    resources: ["clusterroles"]
    resourceNames: [{{ include "modelgate.sidecar.roleName" . | quote }}]
    verbs: ["bind"]
{{- end }}

{{/* Operator environment in sidecar mode (injection/settings.py). */}}
{{- define "modelgate.sidecar.operatorEnv" -}}
- name: MODELGATE_OPERATOR_SIDECAR_TEMPLATE
  value: /etc/modelgate-operator/sidecar/sidecar.json
- name: MODELGATE_OPERATOR_SIDECAR_CLUSTERROLE
  value: {{ include "modelgate.sidecar.roleName" . | quote }}
- name: MODELGATE_OPERATOR_WEBHOOK_CONFIGURATION
  value: {{ include "modelgate.sidecar.injectorName" . | quote }}
- name: MODELGATE_OPERATOR_WEBHOOK_SERVICE
  value: {{ include "modelgate.sidecar.webhookName" . | quote }}
- name: MODELGATE_OPERATOR_WEBHOOK_SECRET
  value: {{ include "modelgate.sidecar.webhookSecretName" . | quote }}
- name: MODELGATE_OPERATOR_WEBHOOK_PORT
  value: {{ .Values.sidecar.webhook.port | quote }}
- name: MODELGATE_OPERATOR_SIDECAR_SHARING_NAMESPACES
  value: {{ join "," (.Values.sidecar.sharingNamespaces | default (list .Release.Namespace)) | quote }}
{{- if .Values.sidecar.webhook.certManager.enabled }}
- name: MODELGATE_OPERATOR_WEBHOOK_CERT_DIR
  value: /etc/modelgate-operator/webhook-tls
{{- end }}
{{- end }}

{{/* A name and its shard names <name>-<first> … <name>-(max-1), as a JSON list: call with
(dict "name" NAME "first" 0|1 "root" $). Sidecar documents are sharded like the gateway's. */}}
{{- define "modelgate.sidecar.withShards" -}}
{{- $names := list .name }}
{{- range $i := until (int .root.Values.operator.maxConfigShards) }}
{{- if ge $i (int $.first) }}
{{- $names = append $names (printf "%s-%d" $.name $i) }}
{{- end }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/* --- the gateway's Redis (values `redis`; docs/operations.md, "Redis") --- */}}
{{- define "modelgate.redis.fullname" -}}
{{- printf "%s-redis" (include "modelgate.fullname" .) }}
{{- end }}

{{/* The URL the gateway (and the operator, for key statuses) uses; empty: no Redis. */}}
{{- define "modelgate.redis.url" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s.%s.svc:6379/0" (include "modelgate.redis.fullname" .) .Release.Namespace }}
{{- else }}
{{- .Values.redis.url }}
{{- end }}
{{- end }}

{{/* Secret holding the Redis password; empty: the Redis needs none. */}}
{{- define "modelgate.redis.passwordSecretName" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecret }}
{{- else if .Values.redis.enabled }}
{{- printf "%s-redis" (include "modelgate.fullname" .) }}
{{- end }}
{{- end }}

{{- define "modelgate.redis.passwordKey" -}}
{{- if .Values.redis.existingSecret }}{{ .Values.redis.passwordKey }}{{ else }}password{{ end }}
{{- end }}
