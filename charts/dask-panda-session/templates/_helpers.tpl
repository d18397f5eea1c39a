{{/*
Every label and shared fragment of the chart comes from here, so that selectors never overlap
between components; every object name comes from _helpers-names.tpl.

Helpers that need a component take a dict: (dict "root" $ "component" "scheduler").
*/}}

{{- define "dps.interactive" -}}
{{- if eq .Values.job.mode "interactive" -}}true{{- end -}}
{{- end -}}

{{/* Labels that select one component of one release; never shared by two components. */}}
{{- define "dps.selectorLabels" -}}
app.kubernetes.io/name: dask-panda-session
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
app.kubernetes.io/component: {{ .component | quote }}
{{- end -}}

{{/* The full label set of every object: the recommended Helm labels plus the PanDA identity. */}}
{{- define "dps.labels" -}}
{{ include "dps.selectorLabels" . }}
app.kubernetes.io/part-of: panda
app.kubernetes.io/managed-by: {{ .root.Release.Service | quote }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | quote }}
dask-panda-session/pandaid: {{ .root.Values.job.pandaId | toString | quote }}
dask-panda-session/mode: {{ .root.Values.job.mode | quote }}
dask-panda-session/queue: {{ .root.Values.queue.name | quote }}
{{- with .root.Values.job.harvesterWorkerId }}
dask-panda-session/worker-id: {{ . | toString | quote }}
{{- end }}
{{- end -}}

{{/* Addresses every component and the orchestrator agree on. */}}
{{- define "dps.schedulerHost" -}}
{{- printf "%s.%s.svc.%s" (include "dps.schedulerName" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}
{{- define "dps.schedulerAddress" -}}
{{- printf "%s://%s:%d" (include "dps.tls.scheme" .) (include "dps.schedulerHost" .) (int .Values.scheduler.port) -}}
{{- end -}}
{{/*
The scheduler dashboard's path under JupyterLab's base URL (interactive mode): a named
jupyter-server-proxy entry, so the address holds no ':' that the lab's login redirect would
mangle. The orchestrator reports <jupyter-url>dask/status (orchestrator/session/services.py,
DASHBOARD_PROXY_NAME): keep the two equal.
*/}}
{{- define "dps.jupyterlab.dashboardProxyName" -}}dask{{- end -}}
{{- define "dps.dashboardUrl" -}}
{{- printf "http://%s:%d/status" (include "dps.schedulerHost" .) (int .Values.scheduler.dashboardPort) -}}
{{- end -}}
{{/*
The JupyterLab URL as known at render time: Ingress host, static LoadBalancer IP, or Service DNS;
https where TLS is on (dps.jupyterlab.scheme, templates/_helpers-https.tpl).
*/}}
{{- define "dps.jupyterUrl" -}}
{{- $j := .Values.jupyterlab -}}
{{- $scheme := include "dps.jupyterlab.scheme" . -}}
{{- if $j.ingress.enabled -}}
{{- printf "%s://%s%s" $scheme $j.ingress.host $j.ingress.path -}}
{{- else if and (eq $j.service.type "LoadBalancer") $j.service.loadBalancerIP -}}
{{- printf "%s://%s:%d/" $scheme $j.service.loadBalancerIP (int $j.service.port) -}}
{{- else -}}
{{- printf "%s://%s.%s.svc.%s:%d/" $scheme (include "dps.jupyterName" .) .Release.Namespace .Values.clusterDomain (int $j.service.port) -}}
{{- end -}}
{{- end -}}

{{/* image reference: repository[:tag][@digest]; an empty tag means the chart's appVersion. */}}
{{- define "dps.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{- if .image.digest -}}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Annotations the orchestrator reads back from the pods (one LIST per namespace, no helm call). */}}
{{- define "dps.sessionAnnotations" -}}
dask-panda-session/scheduler-address: {{ include "dps.schedulerAddress" . | quote }}
dask-panda-session/dashboard-url: {{ include "dps.dashboardUrl" . | quote }}
{{- if include "dps.interactive" . }}
dask-panda-session/jupyter-url: {{ include "dps.jupyterUrl" . | quote }}
{{- end }}
dask-panda-session/workers-wanted: {{ .Values.workers.replicas | int | toString | quote }}
dask-panda-session/startup-seconds: {{ .Values.timeouts.startupSeconds | int | toString | quote }}
dask-panda-session/lease-seconds: {{ .Values.timeouts.leaseSeconds | int | toString | quote }}
dask-panda-session/lifetime-seconds: {{ .Values.timeouts.lifetimeSeconds | int | toString | quote }}
{{- end -}}

{{/* Pod metadata of a session pod: labels + per-component and common extras. */}}
{{- define "dps.podMetadata" -}}
{{- $root := .root -}}
labels:
  {{- include "dps.labels" . | nindent 2 }}
  {{- with $root.Values.commonPodLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with .extraLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  {{- include "dps.sessionAnnotations" $root | nindent 2 }}
  {{- with $root.Values.commonPodAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with .extraAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* The restricted Pod Security Standard, pod level. */}}
{{- define "dps.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The restricted Pod Security Standard, container level. */}}
{{- define "dps.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Scheduling knobs of one component. */}}
{{- define "dps.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "dps.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . | quote }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* The job's directory name: one per release (PandaID and attempt), never shared by two attempts. */}}
{{- define "dps.jobDirName" -}}
{{- printf "%s-%d" (toString .Values.job.pandaId) (int .Values.job.attempt) -}}
{{- end -}}

{{/* The job's own directory on the shared volume, relative to the volume root. */}}
{{- define "dps.jobSubPath" -}}
{{- if .Values.sharedVolume.jobsDirectory -}}
{{- printf "%s/%s" (trimSuffix "/" .Values.sharedVolume.jobsDirectory) (include "dps.jobDirName" .) -}}
{{- else -}}
{{- include "dps.jobDirName" . -}}
{{- end -}}
{{- end -}}

{{/* The pilot's private working directory (its --workdir and cwd; holds its pandaJobData.out). */}}
{{- define "dps.pilotRunDir" -}}/home/pilot/run{{- end -}}

{{/* Volume and mount of the job's directory: every component sees only its own job. */}}
{{- define "dps.sharedVolume" -}}
- name: shared
  persistentVolumeClaim:
    claimName: {{ include "dps.claimName" . | quote }}
{{- end -}}
{{/*
The only part of the job directory the session shares: <job dir>/data. Workers, the scheduler and
JupyterLab mount nothing else, so the user cannot reach the pilot's directory or its definition.
*/}}
{{- define "dps.sharedMount" -}}
- name: shared
  mountPath: {{ .Values.sharedVolume.mountPath | quote }}
  subPath: {{ printf "%s/data" (include "dps.jobSubPath" .) | quote }}
{{- end -}}
{{/* <job dir>/pilot: the pilot's private directory, mounted into the pilot pod only. */}}
{{- define "dps.pilotRunMount" -}}
- name: shared
  mountPath: {{ include "dps.pilotRunDir" . | quote }}
  subPath: {{ printf "%s/pilot" (include "dps.jobSubPath" .) | quote }}
{{- end -}}

{{/* Env every session container gets: the scheduler address and the job's identity. */}}
{{- define "dps.commonEnv" -}}
- name: DASK_SCHEDULER_ADDRESS
  value: {{ include "dps.schedulerAddress" . | quote }}
- name: DASK_SHARED_FILESYSTEM_PATH
  value: {{ .Values.sharedVolume.mountPath | quote }}
- name: PANDA_ID
  value: {{ .Values.job.pandaId | toString | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{ include "dps.tls.env" . }}
{{- end -}}

{{/*
Start gate: an init container that blocks until the scheduler accepts TCP connections, so the
workers, the pilot and JupyterLab start after the scheduler (the seed's order), without racing it.
*/}}
{{- define "dps.schedulerGate" -}}
- name: wait-for-scheduler
  image: {{ include "dps.image" (dict "root" . "image" .Values.images.dask) | quote }}
  imagePullPolicy: {{ .Values.images.dask.pullPolicy }}
  # files/wait-for-scheduler.py
  command: ["python", "-c"]
  args:
    - |
      {{- .Files.Get "files/wait-for-scheduler.py" | nindent 6 }}
  env:
    - name: GATE_HOST
      value: {{ include "dps.schedulerHost" . | quote }}
    - name: GATE_PORT
      value: {{ .Values.scheduler.port | int | toString | quote }}
    - name: GATE_TIMEOUT_SECONDS
      value: {{ .Values.timeouts.gateSeconds | int | toString | quote }}
  resources:
    {{- toYaml .Values.hooks.resources | nindent 4 }}
  securityContext:
    {{- include "dps.containerSecurityContext" . | nindent 4 }}
{{- end -}}

{{/*
The pilot also waits for its job definition, placed by the pre-install hook into the pilot's
private directory, and checks it against job.definitionSha256 before the pilot may read it.
*/}}
{{- define "dps.jobDefinitionGate" -}}
- name: wait-for-job-definition
  image: {{ include "dps.image" (dict "root" . "image" .Values.images.dask) | quote }}
  imagePullPolicy: {{ .Values.images.dask.pullPolicy }}
  # files/wait-for-job-definition.py
  command: ["python", "-c"]
  args:
    - |
      {{- .Files.Get "files/wait-for-job-definition.py" | nindent 6 }}
  env:
    - name: PILOT_RUN_DIR
      value: {{ include "dps.pilotRunDir" . | quote }}
    - name: JOB_DEFINITION_SHA256
      value: {{ .Values.job.definitionSha256 | quote }}
    - name: GATE_TIMEOUT_SECONDS
      value: {{ .Values.timeouts.gateSeconds | int | toString | quote }}
  volumeMounts:
    - name: shared
      mountPath: {{ include "dps.pilotRunDir" . | quote }}
      subPath: {{ printf "%s/pilot" (include "dps.jobSubPath" .) | quote }}
      readOnly: true
  resources:
    {{- toYaml .Values.hooks.resources | nindent 4 }}
  securityContext:
    {{- include "dps.containerSecurityContext" . | nindent 4 }}
{{- end -}}

{{/*
The pilot's --lifetime: the pod's deadline counts from pod start, so the pilot gets the lifetime
minus image pulls, its start gates (two; three with the address gate) and a graceful end (final
update, log stage-out); a session too short for that reserve (tests, demos) gives the pilot half
its lifetime.
*/}}
{{- define "dps.pilotLifetime" -}}
{{- $t := .Values.timeouts -}}
{{- $gates := ternary 3 2 (eq (include "dps.addressGate" .) "true") -}}
{{- $left := sub (int $t.lifetimeSeconds) (add (int $t.pullSeconds) (mul $gates (int $t.gateSeconds)) (int $t.pilotEndSeconds)) -}}
{{- max $left (div (int $t.lifetimeSeconds) 2) -}}
{{- end -}}

{{/* Peers of this release only: pods with its instance label and one of the given components. */}}
{{- define "dps.releasePeers" -}}
- podSelector:
    matchExpressions:
      - key: app.kubernetes.io/instance
        operator: In
        values: [{{ .root.Release.Name | quote }}]
      - key: app.kubernetes.io/component
        operator: In
        values: {{ toJson .components }}
{{- end -}}

{{/* GTAG: the pilot-log link on the PanDA job page (Harvester's form), else the pilot pod's name. */}}
{{- define "dps.pilotLogUrl" -}}
{{- if .Values.pilot.logsFrontend -}}
{{- printf "%s/%s_%s_gz.out" (trimSuffix "/" .Values.pilot.logsFrontend) (toString .Values.job.harvesterId) (toString .Values.job.harvesterWorkerId) -}}
{{- else -}}
{{- include "dps.pilotName" . -}}
{{- end -}}
{{- end -}}
