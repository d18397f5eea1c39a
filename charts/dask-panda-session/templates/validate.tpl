{{/*
Fail-fast checks that a JSON schema cannot express (cross-field rules). Each message names the
offending value and says how to fix it. Included from NOTES-independent templates via "dps.validate".
*/}}
{{- define "dps.validate" -}}
{{- $v := .Values -}}
{{- if gt (len .Release.Name) 40 -}}
{{- fail (printf "release name %q is %d characters long: at most 40 are allowed, so that every object name (<release>-jupyterlab, ...) stays a valid 63-character DNS label" .Release.Name (len .Release.Name)) -}}
{{- end -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" .Release.Name) -}}
{{- fail (printf "release name %q must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter" .Release.Name) -}}
{{- end -}}
{{- if not (regexMatch "^[1-9][0-9]{0,15}$" (toString $v.job.pandaId)) -}}
{{- fail (printf "job.pandaId: must be the PanDA job ID (digits), got %q" (toString $v.job.pandaId)) -}}
{{- end -}}
{{- if not $v.secrets.existingSecret -}}
{{- fail "secrets.existingSecret: name the per-job Secret holding the job definition (key pandaJobData.out) and, in interactive mode, the JupyterLab password (key jupyter-password); for a manual install make it by hand (chart README)" -}}
{{- end -}}
{{- if not (regexMatch "^[0-9a-f]{64}$" (toString $v.job.definitionSha256)) -}}
{{- fail "job.definitionSha256: required, the sha256 (hex) of the Secret's pandaJobData.out (sha256sum pandaJobData.out)" -}}
{{- end -}}

{{- if and $v.sharedVolume.existingClaim $v.sharedVolume.create.enabled -}}
{{- fail "sharedVolume: set either existingClaim or create.enabled, not both" -}}
{{- end -}}
{{- if not (or $v.sharedVolume.existingClaim $v.sharedVolume.create.enabled) -}}
{{- fail "sharedVolume: no claim: set sharedVolume.existingClaim to an existing ReadWriteMany claim, or sharedVolume.create.enabled=true" -}}
{{- end -}}
{{- if or (lt (int $v.workers.replicas) (int $v.queue.minWorkers)) (gt (int $v.workers.replicas) (int $v.queue.maxWorkers)) -}}
{{- fail (printf "workers.replicas: %d is outside the queue's limits [%d, %d] (queue.minWorkers, queue.maxWorkers)" (int $v.workers.replicas) (int $v.queue.minWorkers) (int $v.queue.maxWorkers)) -}}
{{- end -}}
{{- if gt (int $v.queue.minWorkers) (int $v.queue.maxWorkers) -}}
{{- fail "queue.minWorkers must not exceed queue.maxWorkers" -}}
{{- end -}}
{{- if gt (int $v.timeouts.leaseSeconds) (int $v.timeouts.lifetimeSeconds) -}}
{{- fail "timeouts.leaseSeconds must not exceed timeouts.lifetimeSeconds" -}}
{{- end -}}
{{- if ge (int $v.timeouts.startupSeconds) (int $v.timeouts.lifetimeSeconds) -}}
{{- fail "timeouts.startupSeconds must be shorter than timeouts.lifetimeSeconds" -}}
{{- end -}}
{{- if eq $v.job.mode "interactive" -}}
{{- if and (gt (int $v.timeouts.schedulerIdleSeconds) 0) (lt (int $v.timeouts.schedulerIdleSeconds) (int $v.timeouts.leaseSeconds)) -}}
{{- fail "timeouts.schedulerIdleSeconds: in interactive mode it must be 0 or at least timeouts.leaseSeconds, or the scheduler would end a quiet session before its lease" -}}
{{- end -}}
{{- $svc := $v.jupyterlab.service -}}
{{- if and (eq $svc.type "LoadBalancer") (not $svc.loadBalancerSourceRanges) -}}
{{- fail "jupyterlab.service.loadBalancerSourceRanges: a LoadBalancer must say who may connect (CIDR list); an open JupyterLab is not allowed" -}}
{{- end -}}
{{- if and $v.jupyterlab.ingress.enabled (not $v.jupyterlab.ingress.host) -}}
{{- fail "jupyterlab.ingress.host: required when jupyterlab.ingress.enabled is true" -}}
{{- end -}}
{{- $ing := $v.jupyterlab.ingress -}}
{{- if and $ing.certManager.issuer $ing.certManager.clusterIssuer -}}
{{- fail "jupyterlab.ingress.certManager: name either issuer or clusterIssuer, not both" -}}
{{- end -}}
{{- if and $ing.enabled $v.jupyterlab.tls.secretName -}}
{{- fail "jupyterlab.tls.secretName: with an Ingress, TLS ends at the Ingress (jupyterlab.ingress.tlsSecretName or jupyterlab.ingress.certManager); jupyterlab.tls is for a Service reached without one" -}}
{{- end -}}
{{- if and (not $ing.enabled) (or $ing.tlsSecretName $ing.certManager.issuer $ing.certManager.clusterIssuer) -}}
{{- fail "jupyterlab.ingress: tlsSecretName and certManager take effect only with jupyterlab.ingress.enabled; for a LoadBalancer without an Ingress set jupyterlab.tls.secretName" -}}
{{- end -}}
{{- if and $ing.enabled (not (or (contains .Release.Name $ing.host) (contains .Release.Name $ing.path))) -}}
{{- fail (printf "jupyterlab.ingress.host or jupyterlab.ingress.path must carry the release name %q (e.g. path /%s/ or host %s.example.org), so that no two sessions share a route: got host %q, path %q" .Release.Name .Release.Name .Release.Name $ing.host $ing.path) -}}
{{- end -}}
{{- end -}}
{{- end -}}
