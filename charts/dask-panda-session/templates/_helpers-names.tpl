{{/*
Every object name of the chart, in one place. Each object of a release is named
<release>-<suffix>, so that two releases sharing a namespace never collide; the orchestrator
builds the same names (orchestrator/names.py) and a chart test checks every rendered object
against it. Templates never build a name by hand: they include one of these.

Helpers take the root context, except where a second argument is needed (a dict, as noted).
*/}}

{{/* The release name is the prefix of every object name. Checked once in validate.tpl. */}}
{{- define "dps.fullname" -}}
{{- .Release.Name -}}
{{- end -}}

{{/* <release>-<suffix>: (dict "root" $ "suffix" "...") */}}
{{- define "dps.name" -}}
{{- printf "%s-%s" (include "dps.fullname" .root) .suffix -}}
{{- end -}}

{{/* The scheduler's Pod, Service and ingress NetworkPolicy. */}}
{{- define "dps.schedulerName" -}}{{ include "dps.name" (dict "root" . "suffix" "scheduler") }}{{- end -}}
{{/* JupyterLab's Pod, Service, Ingress and ingress NetworkPolicy. */}}
{{- define "dps.jupyterName" -}}{{ include "dps.name" (dict "root" . "suffix" "jupyterlab") }}{{- end -}}
{{/* The pilot's Pod and ingress NetworkPolicy. */}}
{{- define "dps.pilotName" -}}{{ include "dps.name" (dict "root" . "suffix" "pilot") }}{{- end -}}
{{/* Dask worker <index>: (dict "root" $ "index" $i) */}}
{{- define "dps.workerName" -}}{{ include "dps.name" (dict "root" .root "suffix" (printf "worker-%d" (int .index))) }}{{- end -}}
{{/* The workers' ingress NetworkPolicy. */}}
{{- define "dps.workersPolicyName" -}}{{ include "dps.name" (dict "root" . "suffix" "worker") }}{{- end -}}
{{/* The egress NetworkPolicy of every pod (no component), or a component's own endpoints: (dict "root" $ "component" "pilot") */}}
{{- define "dps.egressPolicyName" -}}
{{- if .component -}}
{{- include "dps.name" (dict "root" .root "suffix" (printf "%s-egress" .component)) -}}
{{- else -}}
{{- include "dps.name" (dict "root" .root "suffix" "egress") -}}
{{- end -}}
{{- end -}}
{{/* The pre-install (prepare) and pre-delete (cleanup) hook Jobs: (dict "root" $ "hook" "prepare") */}}
{{- define "dps.hookName" -}}{{ include "dps.name" (dict "root" .root "suffix" .hook) }}{{- end -}}
{{/* The pilot's address gate: ServiceAccount, Role, RoleBinding and API-server egress NetworkPolicy. */}}
{{- define "dps.addressGateName" -}}{{ include "dps.name" (dict "root" . "suffix" "address-gate") }}{{- end -}}
{{/* The `helm test` pod. */}}
{{- define "dps.testName" -}}{{ include "dps.name" (dict "root" . "suffix" "test") }}{{- end -}}
{{/* The shared claim: the queue's existing claim, or the one this release makes. */}}
{{- define "dps.claimName" -}}
{{- if .Values.sharedVolume.existingClaim -}}
{{- .Values.sharedVolume.existingClaim -}}
{{- else -}}
{{- include "dps.name" (dict "root" . "suffix" "shared") -}}
{{- end -}}
{{- end -}}
{{/* The per-job Secret (job definition, JupyterLab password, session TLS): made before the
install by the orchestrator as <release>-secret, never by the chart. */}}
{{- define "dps.secretName" -}}
{{- .Values.secrets.existingSecret -}}
{{- end -}}
