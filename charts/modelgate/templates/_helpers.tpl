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
{{- if $obs.tracing.enabled }}
{{- $_ := set $doc.spec.observability "tracing" (dict "enabled" true "endpoint" $obs.tracing.endpoint
      "serviceName" $obs.tracing.serviceName "sampleRatio" (float64 $obs.tracing.sampleRatio)) }}
{{- end }}
{{- toYaml $doc }}
{{- end }}
