{{/*
Names and labels shared by every template. The names are fixed (one gitseal per cluster):
the controller's Lease is "gitseal-controller", and the kustomize base uses the same names.
*/}}
{{- define "gitseal.name" -}}gitseal-controller{{- end -}}

{{- define "gitseal.selectorLabels" -}}
app.kubernetes.io/name: gitseal
app.kubernetes.io/component: controller
{{- end -}}

{{- define "gitseal.labels" -}}
{{ include "gitseal.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "gitseal.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{/* The controller's flags, in the order the kustomize base lists them. */}}
{{- define "gitseal.args" -}}
{{- $c := .Values.controller -}}
- controller
- --log-format={{ $c.logFormat }}
- --lease-duration={{ $c.leaseDuration }}
- --key-renew-interval={{ $c.keyRenewInterval }}
{{- if ne (int .Values.metricsPort) 8080 }}
- --metrics-addr=0.0.0.0:{{ .Values.metricsPort }}
{{- end }}
{{- if $c.concurrency }}
- --concurrency={{ $c.concurrency }}
{{- end }}
{{- range $c.watchNamespaces }}
- --watch-namespace={{ . }}
{{- end }}
{{- range $c.policy.allowSecretTypes }}
- --allow-secret-type={{ . }}
{{- end }}
{{- range $c.policy.denySecretTypes }}
- --deny-secret-type={{ . }}
{{- end }}
{{- range $c.policy.allowTemplateKeys }}
- --allow-template-key={{ . }}
{{- end }}
{{- range $c.policy.denyTemplateKeys }}
- --deny-template-key={{ . }}
{{- end }}
{{- range $c.policy.allowNamespaces }}
- --allow-namespace={{ . }}
{{- end }}
{{- range $c.policy.denyNamespaces }}
- --deny-namespace={{ . }}
{{- end }}
{{- range $c.takeOver.from }}
- --take-over-from={{ . }}
{{- end }}
{{- range $c.takeOver.namespaces }}
- --take-over-namespace={{ . }}
{{- end }}
{{- range $c.extraArgs }}
- {{ . }}
{{- end }}
{{- end -}}

{{/* A controller duration (30d, 12h, 15m, 10s, or plain seconds) in seconds. */}}
{{- define "gitseal.seconds" -}}
{{- $s := toString . -}}
{{- $units := dict "d" 86400 "h" 3600 "m" 60 "s" 1 -}}
{{- $unit := regexFind "[a-z]+$" $s -}}
{{- $n := regexFind "^[0-9]+" $s | int64 -}}
{{- if eq $unit "" -}}{{ $n }}{{- else -}}{{ mul $n (get $units $unit) }}{{- end -}}
{{- end -}}
