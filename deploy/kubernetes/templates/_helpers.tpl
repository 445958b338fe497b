{{/* Labels of the project's own objects; app.kubernetes.io/component is what Prometheus selects by. */}}
{{- define "asteroid.labels" -}}
app.kubernetes.io/part-of: asteroid
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "asteroid.selector" -}}
app.kubernetes.io/part-of: asteroid
app.kubernetes.io/component: {{ .component }}
{{- end }}
