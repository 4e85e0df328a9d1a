{{/* The chart name, or nameOverride. */}}
{{- define "fednano.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every resource name: fullnameOverride, else <release>-<name> (just <release> if it holds <name>). */}}
{{- define "fednano.fullname" -}}
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

{{/* chart label value: <name>-<version>. */}}
{{- define "fednano.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the operator's pods. */}}
{{- define "fednano.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fednano.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels on everything the chart creates. */}}
{{- define "fednano.labels" -}}
helm.sh/chart: {{ include "fednano.chart" . }}
{{ include "fednano.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: fednano
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The operator's ServiceAccount. */}}
{{- define "fednano.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fednano.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* An image reference. Call with (dict "root" $ "image" "operator"|"llmHost"|"aggregator"|"clientAgent"). */}}
{{- define "fednano.image" -}}
{{- $images := .root.Values.images -}}
{{- $image := index $images .image -}}
{{- $tag := $image.tag | default $images.tag | default .root.Chart.AppVersion -}}
{{- if $images.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $images.registry) $image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* "true" when leader election is on: asked for, or more than one replica. */}}
{{- define "fednano.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) -}}
true
{{- else -}}
false
{{- end -}}
{{- end -}}

{{/* The Lease namespace. */}}
{{- define "fednano.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace -}}
{{- end -}}

{{/* Egress to DNS (UDP and TCP 53, any destination), when networkPolicies.allowDns. */}}
{{- define "fednano.dnsEgress" -}}
{{- if .Values.networkPolicies.allowDns -}}
- ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end }}
{{- end -}}

{{/* Egress to NATS. */}}
{{- define "fednano.natsEgress" -}}
- ports:
    - protocol: TCP
      port: {{ .Values.networkPolicies.nats.port }}
  {{- with .Values.networkPolicies.nats.peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
