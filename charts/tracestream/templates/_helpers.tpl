{{/* fullname: the release name, or release-chart when the release name lacks the chart name. */}}
{{- define "tracestream.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tracestream.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end -}}

{{- define "tracestream.labels" -}}
{{ include "tracestream.selectorLabels" . }}
app.kubernetes.io/part-of: tracestream
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "tracestream.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (printf "%s-manager" (include "tracestream.fullname" .)) -}}
{{- end -}}

{{- define "tracestream.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* managerRules: the rules controller-gen generated (config/rbac/role.yaml, synced by make manifests). */}}
{{- define "tracestream.managerRules" -}}
{{- (.Files.Get "files/manager-role.yaml" | fromYaml).rules | toYaml -}}
{{- end -}}
