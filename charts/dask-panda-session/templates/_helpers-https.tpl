{{/*
HTTPS for JupyterLab: the user's password crosses the network at login, so a session reachable
from outside the cluster should be served over TLS. Two ways, chosen per queue in values:

- With an Ingress, TLS ends at the Ingress: jupyterlab.ingress.tlsSecretName names a certificate
  Secret (a site's wildcard certificate), or jupyterlab.ingress.certManager names a cert-manager
  Issuer or ClusterIssuer, which issues the certificate into that Secret (default
  <release>-jupyterlab-tls).
- Without an Ingress (a LoadBalancer Service), JupyterLab serves TLS itself from
  jupyterlab.tls.secretName, a kubernetes.io/tls Secret with a site certificate. A per-job
  certificate cannot do this: a LoadBalancer's address is known only after the install, and a
  browser would not trust the session's own CA.
*/}}

{{/* Is TLS on at the Ingress? "true" or empty. */}}
{{- define "dps.jupyterlab.ingressTLS" -}}
{{- $i := .Values.jupyterlab.ingress -}}
{{- if and $i.enabled (or $i.tlsSecretName $i.certManager.issuer $i.certManager.clusterIssuer) -}}true{{- end -}}
{{- end -}}

{{/* The Ingress's TLS Secret: the named one, else the one cert-manager fills for this release. */}}
{{- define "dps.jupyterlab.ingressTLSSecret" -}}
{{- .Values.jupyterlab.ingress.tlsSecretName | default (include "dps.name" (dict "root" . "suffix" "jupyterlab-tls")) -}}
{{- end -}}

{{/* The scheme users open: https at the Ingress or from JupyterLab itself, else http. */}}
{{- define "dps.jupyterlab.scheme" -}}
{{- ternary "https" "http" (or (eq (include "dps.jupyterlab.ingressTLS" .) "true") (ne .Values.jupyterlab.tls.secretName "")) -}}
{{- end -}}

{{/* The name of JupyterLab's container and Service port: says which scheme it speaks. */}}
{{- define "dps.jupyterlab.portName" -}}
{{- ternary "https" "http" (ne .Values.jupyterlab.tls.secretName "") -}}
{{- end -}}

{{- define "dps.jupyterlab.tlsDir" -}}/etc/dask-panda-session-jupyter-tls{{- end -}}

{{/* jupyter_server's TLS arguments (args list items); empty without jupyterlab.tls. */}}
{{- define "dps.jupyterlab.tlsArgs" -}}
{{- if .Values.jupyterlab.tls.secretName -}}
- --ServerApp.certfile={{ include "dps.jupyterlab.tlsDir" . }}/tls.crt
- --ServerApp.keyfile={{ include "dps.jupyterlab.tlsDir" . }}/tls.key
{{- end -}}
{{- end -}}

{{/* The site certificate's read-only mount (volumeMounts list item); empty without jupyterlab.tls. */}}
{{- define "dps.jupyterlab.tlsMount" -}}
{{- if .Values.jupyterlab.tls.secretName -}}
- name: jupyter-tls
  mountPath: {{ include "dps.jupyterlab.tlsDir" . | quote }}
  readOnly: true
{{- end -}}
{{- end -}}

{{/* The site certificate's volume (volumes list item); empty without jupyterlab.tls. */}}
{{- define "dps.jupyterlab.tlsVolume" -}}
{{- with .Values.jupyterlab.tls.secretName -}}
- name: jupyter-tls
  secret:
    secretName: {{ . | quote }}
    defaultMode: 0400
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end -}}
{{- end -}}

{{/* The Ingress's annotations: the queue's, plus the cert-manager issuer's (which wins). */}}
{{- define "dps.jupyterlab.ingressAnnotations" -}}
{{- $i := .Values.jupyterlab.ingress -}}
{{- $ann := deepCopy ($i.annotations | default dict) -}}
{{- with $i.certManager.issuer -}}
{{- $_ := set $ann "cert-manager.io/issuer" . -}}
{{- end -}}
{{- with $i.certManager.clusterIssuer -}}
{{- $_ := set $ann "cert-manager.io/cluster-issuer" . -}}
{{- end -}}
{{- with $ann -}}
{{- toYaml . -}}
{{- end -}}
{{- end -}}
