{{/*
The pilot's address gate. The pilot reports session_ip to the PanDA job page only from what its
job definition holds when it starts. With an Ingress or a reserved loadBalancerIP the URL is known
before the install and the orchestrator writes it into the definition. With a LoadBalancer whose
address the cloud assigns after the install it is not: then the pilot pod gets one more init
container (files/wait-for-address.py, after the scheduler and job-definition gates) that waits for
the Service's status.loadBalancer.ingress and rewrites session_ip in the pilot's copy of the
definition.

The init container alone holds an API token: a short-lived projected token of the release's own
ServiceAccount (<release>-address-gate), whose Role allows `get` on this release's JupyterLab
Service and nothing else. The pod does not automount a token, and the pilot container mounts none.
*/}}

{{/* Is the address gate on? "true" or empty. jupyterlab.addressGate.enabled: auto (on exactly when
the URL is unknown before the install), true (also with a reserved IP), false (never). Interactive
mode only: a batch pilot has no session_ip. */}}
{{- define "dps.addressGate" -}}
{{- if include "dps.interactive" . -}}
{{- $j := .Values.jupyterlab -}}
{{- $mode := toString $j.addressGate.enabled -}}
{{- $lb := and (eq $j.service.type "LoadBalancer") (not $j.ingress.enabled) -}}
{{- if eq $mode "true" -}}
{{- if not $lb -}}
{{- fail "jupyterlab.addressGate.enabled: true needs jupyterlab.service.type LoadBalancer without an Ingress (the gate waits for the LoadBalancer's address); use auto or false" -}}
{{- end -}}
true
{{- else if and (eq $mode "auto") $lb (not $j.service.loadBalancerIP) -}}
true
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Where the gate's token, CA and namespace are mounted: a directory of the chart's own (like the
password's), named to the script by ADDRESS_GATE_CREDENTIALS. */}}
{{- define "dps.addressGate.credentialsDir" -}}/etc/dask-panda-session-address-gate{{- end -}}

{{/* The init container (initContainers list item); empty when the gate is off. */}}
{{- define "dps.addressGate.container" -}}
{{- if include "dps.addressGate" . -}}
- name: wait-for-address
  image: {{ include "dps.image" (dict "root" . "image" .Values.images.dask) | quote }}
  imagePullPolicy: {{ .Values.images.dask.pullPolicy }}
  # files/wait-for-address.py
  command: ["python", "-c"]
  args:
    - |
      {{- .Files.Get "files/wait-for-address.py" | nindent 6 }}
  env:
    - name: PILOT_RUN_DIR
      value: {{ include "dps.pilotRunDir" . | quote }}
    - name: JOB_DEFINITION_SHA256
      value: {{ .Values.job.definitionSha256 | quote }}
    - name: JUPYTER_SERVICE
      value: {{ include "dps.jupyterName" . | quote }}
    - name: GATE_TIMEOUT_SECONDS
      value: {{ .Values.timeouts.gateSeconds | int | toString | quote }}
    - name: ADDRESS_GATE_CREDENTIALS
      value: {{ include "dps.addressGate.credentialsDir" . | quote }}
  volumeMounts:
    # writable here only: the gate replaces pandaJobData.out (the other gate mounts it read-only)
    - name: shared
      mountPath: {{ include "dps.pilotRunDir" . | quote }}
      subPath: {{ printf "%s/pilot" (include "dps.jobSubPath" .) | quote }}
    - name: address-gate-token
      mountPath: {{ include "dps.addressGate.credentialsDir" . | quote }}
      readOnly: true
  resources:
    {{- toYaml .Values.hooks.resources | nindent 4 }}
  securityContext:
    {{- include "dps.containerSecurityContext" . | nindent 4 }}
{{- end -}}
{{- end -}}

{{/* The token volume (volumes list item): a bound token of the gate's ServiceAccount (600 s, the
shortest the API server issues; the kubelet renews it and the script reads it on every request),
the cluster's CA and the namespace. Empty when the gate is off. */}}
{{- define "dps.addressGate.volume" -}}
{{- if include "dps.addressGate" . -}}
- name: address-gate-token
  projected:
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 600
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                fieldPath: metadata.namespace
{{- end -}}
{{- end -}}

{{/* The pilot pod's ServiceAccount (pod spec lines); empty when the gate is off (the namespace's
default account, with no token mounted). */}}
{{- define "dps.addressGate.serviceAccount" -}}
{{- if include "dps.addressGate" . -}}
serviceAccountName: {{ include "dps.addressGateName" . | quote }}
{{- end -}}
{{- end -}}
