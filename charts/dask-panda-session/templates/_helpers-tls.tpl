{{/*
Per-session dask TLS: every piece of it lives here, and each component template includes it with
one line. Why: the dask comm runs whatever a connected client sends; with tls.enabled the scheduler
accepts only peers holding the session's certificate, signed by the session's own CA, so another
tenant is refused even where the cluster does not enforce NetworkPolicies.

The three PEM files come from the per-job Secret (keys tls-ca.pem, tls-cert.pem, tls-key.pem),
which the orchestrator makes before the install; they never travel in values. One certificate
serves the scheduler, the workers and the clients (server and client auth).
*/}}

{{/* The comm scheme of every scheduler address: tls or tcp. */}}
{{- define "dps.tls.scheme" -}}
{{- ternary "tls" "tcp" (.Values.tls.enabled | default false) -}}
{{- end -}}

{{- define "dps.tls.dir" -}}/etc/dask-panda-session-tls{{- end -}}

{{/* dask's configuration for the session's credentials (env list items); empty without TLS. */}}
{{- define "dps.tls.env" -}}
{{- if .Values.tls.enabled -}}
{{- $d := include "dps.tls.dir" . -}}
- name: DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION
  value: "True"
- name: DASK_DISTRIBUTED__COMM__DEFAULT_SCHEME
  value: "tls"
- name: DASK_DISTRIBUTED__COMM__TLS__CA_FILE
  value: {{ printf "%s/ca.pem" $d | quote }}
{{- range $role := list "SCHEDULER" "WORKER" "CLIENT" }}
- name: {{ printf "DASK_DISTRIBUTED__COMM__TLS__%s__CERT" $role }}
  value: {{ printf "%s/cert.pem" $d | quote }}
- name: {{ printf "DASK_DISTRIBUTED__COMM__TLS__%s__KEY" $role }}
  value: {{ printf "%s/key.pem" $d | quote }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* The read-only mount of the credentials (volumeMounts list item); empty without TLS. */}}
{{- define "dps.tls.mount" -}}
{{- if .Values.tls.enabled -}}
- name: dask-tls
  mountPath: {{ include "dps.tls.dir" . | quote }}
  readOnly: true
{{- end -}}
{{- end -}}

{{/* The credentials' volume from the per-job Secret (volumes list item); empty without TLS. */}}
{{- define "dps.tls.volume" -}}
{{- if .Values.tls.enabled -}}
- name: dask-tls
  secret:
    secretName: {{ include "dps.secretName" . | quote }}
    defaultMode: 0400
    items:
      - key: tls-ca.pem
        path: ca.pem
      - key: tls-cert.pem
        path: cert.pem
      - key: tls-key.pem
        path: key.pem
{{- end -}}
{{- end -}}

