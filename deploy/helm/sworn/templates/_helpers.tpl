{{/* The agent's objects are <release>-agent: sworn-agent for release "sworn", as in deploy/kubernetes. */}}
{{- define "sworn.fullname" -}}
{{- printf "%s-agent" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sworn.selectorLabels" -}}
app.kubernetes.io/name: sworn-agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sworn.labels" -}}
{{ include "sworn.selectorLabels" . }}
app.kubernetes.io/part-of: sworn
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "sworn.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The Secret-backed credential file, by backend and method; empty when none. */}}
{{- define "sworn.secretName" -}}
{{- $v := .Values.ca.vault -}}
{{- if and (eq .Values.ca.backend "vault") (has $v.auth.method (list "approle" "token")) -}}
{{ required "ca.vault.auth.existingSecret is required for approle and token auth" $v.auth.existingSecret }}
{{- else if eq .Values.ca.backend "stepca" -}}
{{ required "ca.stepca.passwordSecret is required with backend stepca" .Values.ca.stepca.passwordSecret }}
{{- end -}}
{{- end -}}

{{- define "sworn.secretKey" -}}
{{- if eq .Values.ca.backend "stepca" -}}
{{ .Values.ca.stepca.passwordKey }}
{{- else -}}
{{ .Values.ca.vault.auth.secretKey | default (ternary "secret-id" "token" (eq .Values.ca.vault.auth.method "approle")) }}
{{- end -}}
{{- end -}}

{{- define "sworn.projectedToken" -}}
{{- if and (eq .Values.ca.backend "vault") (has .Values.ca.vault.auth.method (list "kubernetes" "jwt")) -}}true{{- end -}}
{{- end -}}

{{/* The ca section of agent.yaml. */}}
{{- define "sworn.caConfig" -}}
{{- $b := .Values.ca.backend -}}
type: {{ $b }}
{{- if eq $b "vault" }}
{{- $v := .Values.ca.vault }}
vault:
  {{- if $v.addresses }}
  addresses:
    {{- range $v.addresses }}
    - {{ . | quote }}
    {{- end }}
  {{- else }}
  address: {{ required "ca.vault.address (or ca.vault.addresses) is required with backend vault" $v.address | quote }}
  {{- end }}
  {{- if $v.caCert }}
  ca_cert_file: /etc/sworn/vault-ca.pem
  {{- end }}
  {{- with $v.namespace }}
  namespace: {{ . | quote }}
  {{- end }}
  pki_mount: {{ $v.pkiMount | quote }}
  role: {{ $v.role | quote }}
  mode: {{ $v.mode }}
  auth:
    method: {{ $v.auth.method }}
    {{- with $v.auth.mount }}
    mount: {{ . | quote }}
    {{- end }}
    {{- if include "sworn.projectedToken" . }}
    role: {{ required "ca.vault.auth.role is required for kubernetes and jwt auth" $v.auth.role | quote }}
    jwt_file: /var/run/secrets/tokens/vault
    {{- else if eq $v.auth.method "approle" }}
    role_id: {{ required "ca.vault.auth.roleID is required for approle auth" $v.auth.roleID | quote }}
    secret_id_file: /var/run/secrets/sworn/{{ include "sworn.secretKey" . }}
    {{- else if eq $v.auth.method "token" }}
    token_file: /var/run/secrets/sworn/{{ include "sworn.secretKey" . }}
    {{- end }}
{{- else if eq $b "stepca" }}
{{- $s := .Values.ca.stepca }}
stepca:
  url: {{ required "ca.stepca.url is required with backend stepca" $s.url | quote }}
  {{- if eq (empty $s.rootFingerprint) (empty $s.rootCert) }}
  {{- fail "ca.stepca: give exactly one of rootFingerprint and rootCert" }}
  {{- end }}
  {{- if $s.rootCert }}
  root_file: /etc/sworn/stepca-root.pem
  {{- else }}
  root_fingerprint: {{ $s.rootFingerprint | quote }}
  {{- end }}
  provisioner: {{ required "ca.stepca.provisioner is required with backend stepca" $s.provisioner | quote }}
  provisioner_password_file: /var/run/secrets/sworn/{{ include "sworn.secretKey" . }}
{{- end }}
{{- end -}}

{{/* agent.yaml: what the chart builds, with .Values.agentConfig merged over it. */}}
{{- define "sworn.agentConfig" -}}
{{- $base := printf `
trust_domain: %q
socket_path: /run/sworn/workload.sock
admin_socket_path: /run/sworn/admin/admin.sock
data_dir: /var/lib/sworn
health_addr: "0.0.0.0:%d"
log:
  level: %s
  format: %s
svid:
  ttl: %s
kubernetes:
  enabled: true
  pod_source: apiserver
  default_identity: %t
` .Values.trustDomain (int .Values.healthPort) .Values.log.level .Values.log.format .Values.svid.ttl .Values.kubernetes.defaultIdentity | fromYaml -}}
{{- $c := .Values.kubernetes.clusterSPIFFEIDs -}}
{{- $_ := set $base.kubernetes "cluster_spiffeids" (dict "enabled" $c.enabled "class_name" $c.className "watch_classless" $c.watchClassless "ignore_namespaces" $c.ignoreNamespaces "cluster_name" $c.clusterName "cluster_domain" $c.clusterDomain) -}}
{{- $_ = set $base "ca" (include "sworn.caConfig" . | fromYaml) -}}
{{- $_ = set $base "rules" .Values.rules -}}
{{- mergeOverwrite $base (deepCopy .Values.agentConfig) | toYaml -}}
{{- end -}}
