{{/* Names, labels and the shared pieces of both Deployments. */}}

{{- define "backout.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "backout.fullname" -}}
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

{{- define "backout.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "backout.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "api") */}}
{{- define "backout.selectorLabels" -}}
app.kubernetes.io/name: {{ include "backout.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "backout.workerServiceAccount" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-worker" (include "backout.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "backout.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "backout.wildcard" -}}
{{- if has "*" .Values.allowedNamespaces -}}true{{- end -}}
{{- end -}}

{{/* Checks that values.schema.json cannot express. Only when installing or upgrading (and
`helm template`): `helm lint` renders the chart's own defaults, which name no cluster yet. */}}
{{- define "backout.validate" -}}
{{- if or .Release.IsInstall .Release.IsUpgrade -}}
{{- if not .Values.temporal.address -}}
{{- fail "temporal.address is required: host:port of the Temporal frontend (see the chart README, Production Temporal)" -}}
{{- end -}}
{{- if not .Values.allowedNamespaces -}}
{{- fail "allowedNamespaces is required: the namespaces backout may change (or [\"*\"] for every namespace, on purpose)" -}}
{{- end -}}
{{- if and (has "*" .Values.allowedNamespaces) (gt (len .Values.allowedNamespaces) 1) -}}
{{- fail "allowedNamespaces: \"*\" must be the only entry" -}}
{{- end -}}
{{- if not .Values.secrets.senderToken.existingSecret -}}
{{- fail "secrets.senderToken.existingSecret is required: the API listens beyond loopback and alert sources need their own credential" -}}
{{- end -}}
{{- if not .Values.secrets.databaseUrl.existingSecret -}}
{{- fail "secrets.databaseUrl.existingSecret is required: the API pods and the workers share no disk, so reported changes and culprit labels live in PostgreSQL (a Secret key holding postgresql://USER:PASSWORD@HOST:5432/DATABASE)" -}}
{{- end -}}
{{- if hasKey .Values.config "database_url" -}}
{{- fail "config.database_url: a credential never goes in the settings ConfigMap; give it as secrets.databaseUrl (a Secret key)" -}}
{{- end -}}
{{- if hasKey .Values.config "gitops" -}}
{{- fail "config.gitops: set the GitOps settings through the chart's gitops values (gitops.enabled, gitops.repositories with existingSecret tokens, gitops.settings)" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled (not (or .Values.serviceMonitor.bearerTokenSecret.name .Values.secrets.metricsToken.existingSecret .Values.secrets.operatorToken.existingSecret)) -}}
{{- fail "serviceMonitor.enabled needs a token for /metrics: secrets.metricsToken (or operatorToken, or serviceMonitor.bearerTokenSecret)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* One credential as an env var from its Secret: (dict "name" "BACKOUT_X" "ref" .Values.secrets.x) */}}
{{- define "backout.secretEnv" -}}
{{- if .ref.existingSecret }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.existingSecret }}
      key: {{ .ref.key }}
{{- end }}
{{- end -}}

{{- define "backout.commonEnv" -}}
- name: BACKOUT_CONFIG
  value: /etc/backout/settings/settings.yaml
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "backout.volumeMounts" -}}
- name: settings
  mountPath: /etc/backout/settings
  readOnly: true
- name: state
  mountPath: /var/lib/backout
- name: tmp
  mountPath: /tmp
{{- if or .Values.runbooks .Values.runbooksExistingConfigMap }}
- name: runbooks
  mountPath: /etc/backout/runbooks
  readOnly: true
{{- end }}
{{- if or .Values.ownership.owners .Values.ownership.existingConfigMap }}
- name: owners
  mountPath: /etc/backout/owners
  readOnly: true
{{- end }}
{{- end -}}

{{- define "backout.volumes" -}}
- name: settings
  configMap:
    name: {{ include "backout.fullname" . }}-settings
- name: state
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- if or .Values.runbooks .Values.runbooksExistingConfigMap }}
- name: runbooks
  configMap:
    name: {{ default (printf "%s-runbooks" (include "backout.fullname" .)) .Values.runbooksExistingConfigMap }}
{{- end }}
{{- if or .Values.ownership.owners .Values.ownership.existingConfigMap }}
- name: owners
  configMap:
    name: {{ default (printf "%s-owners" (include "backout.fullname" .)) .Values.ownership.existingConfigMap }}
{{- end }}
{{- end -}}

{{/* A change of these ConfigMaps restarts the pods that read them. */}}
{{- define "backout.configChecksum" -}}
checksum/config: {{ cat (include (print .Template.BasePath "/configmaps.yaml") .) | sha256sum }}
{{- end -}}

{{/* Egress both components need. */}}
{{- define "backout.egressRules" -}}
# DNS
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
# Temporal, the shared store's PostgreSQL, and the ports of Prometheus, PagerDuty, Slack, Git
# and the LLM endpoint
- ports:
    - {port: {{ .Values.networkPolicy.temporalPort }}, protocol: TCP}
    - {port: {{ .Values.networkPolicy.databasePort }}, protocol: TCP}
    {{- range .Values.networkPolicy.egressPorts }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end -}}

{{/* What the GitOps handshake calls (activities/gitops: get and patch of the reconciler objects,
and of the GitRepository it asks to reconcile). */}}
{{- define "backout.gitopsRules" -}}
- apiGroups: [kustomize.toolkit.fluxcd.io]
  resources: [kustomizations]
  verbs: [get, patch]
- apiGroups: [helm.toolkit.fluxcd.io]
  resources: [helmreleases]
  verbs: [get, patch]
- apiGroups: [source.toolkit.fluxcd.io]
  resources: [gitrepositories]
  verbs: [get, patch]
- apiGroups: [argoproj.io]
  resources: [applications]
  verbs: [get, patch]
{{- end -}}

{{/* The Secrets holding the Git and provider tokens of gitops.repositories, one per line. */}}
{{- define "backout.gitopsSecrets" -}}
{{- $names := list -}}
{{- range .Values.gitops.repositories -}}
{{- with .credentials }}{{ $names = append $names .existingSecret }}{{ end -}}
{{- with .provider }}{{ $names = append $names .existingSecret }}{{ end -}}
{{- end -}}
{{- $names | uniq | sortAlpha | join "\n" -}}
{{- end -}}

{{/* A token of gitops.repositories as a settings Credential: a reference to its Secret key. */}}
{{- define "backout.secretRef" -}}
{{- dict "secret_ref" (dict "namespace" .namespace "name" .ref.existingSecret "key" .ref.key) | toJson -}}
{{- end -}}
