{{/* The chart's name. */}}
{{- define "lakeprobe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's objects (63 characters: a DNS label). */}}
{{- define "lakeprobe.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "lakeprobe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lakeprobe.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{- define "lakeprobe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lakeprobe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lakeprobe.labels" -}}
helm.sh/chart: {{ include "lakeprobe.chart" . }}
{{ include "lakeprobe.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "lakeprobe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lakeprobe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "lakeprobe.image" -}}
{{- $repository := .Values.image.repository }}
{{- if .Values.image.registry }}
{{- $repository = printf "%s/%s" .Values.image.registry .Values.image.repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where the config file comes from: "configMap" (rendered or existing) or "secret". */}}
{{- define "lakeprobe.configSource" -}}
{{- if and .Values.configExistingSecretName .Values.configExistingConfigMapName }}
{{- fail "set one of configExistingSecretName and configExistingConfigMapName, not both" }}
{{- end }}
{{- if .Values.configExistingSecretName }}secret{{ else }}configMap{{ end }}
{{- end }}

{{- define "lakeprobe.configName" -}}
{{- coalesce .Values.configExistingSecretName .Values.configExistingConfigMapName (include "lakeprobe.fullname" .) }}
{{- end }}

{{- define "lakeprobe.existingConfig" -}}
{{- if or .Values.configExistingSecretName .Values.configExistingConfigMapName }}true{{ end }}
{{- end }}

{{/* The lakeprobe config from `config`, with what the chart owns set: the listen address
(the container port), the state directory (the state volume) and, per site, the site. */}}
{{- define "lakeprobe.config" -}}
{{- $config := deepCopy .Values.config }}
{{- if not $config.sites }}
{{- fail "config: set the lakeprobe config (sites and probes), or configExistingSecretName / configExistingConfigMapName" }}
{{- end }}
{{- $server := deepCopy (default dict $config.server) }}
{{- $_ := set $server "listen" (printf "%s:%d" .Values.server.listenHost (int .Values.containerPort)) }}
{{- $_ = set $server "state_dir" .Values.persistence.mountPath }}
{{- if eq .Values.mode "site" }}
{{- $_ = set $server "site" .Values.server.site }}
{{- end }}
{{- $_ = set $config "server" $server }}
{{- toYaml $config }}
{{- end }}

{{- define "lakeprobe.checkMode" -}}
{{- if and (eq .Values.mode "site") (not .Values.server.site) }}
{{- fail "server.site: a per-site install (mode site) needs the site it runs for" }}
{{- end }}
{{- if and (eq .Values.mode "site") (ne (int .Values.replicas) 1) }}
{{- fail "replicas: a per-site install (mode site) runs one replica; use mode sharded to split work" }}
{{- end }}
{{- end }}

{{/* The volume of the CA directory, if one is configured. */}}
{{- define "lakeprobe.caVolume" -}}
{{- $ca := .Values.caDir }}
{{- $set := 0 }}
{{- range (list $ca.configMapName $ca.secretName $ca.hostPath) }}{{ if . }}{{ $set = add1 $set }}{{ end }}{{ end }}
{{- if gt $set 1 }}
{{- fail "caDir: set one of configMapName, secretName and hostPath" }}
{{- end }}
{{- if $ca.configMapName }}
configMap:
  name: {{ $ca.configMapName }}
{{- else if $ca.secretName }}
secret:
  secretName: {{ $ca.secretName }}
{{- else if $ca.hostPath }}
hostPath:
  path: {{ $ca.hostPath }}
  type: Directory
{{- end }}
{{- end }}

{{/* The pod template shared by the Deployment and the StatefulSet. */}}
{{- define "lakeprobe.podTemplate" -}}
{{- $caVolume := include "lakeprobe.caVolume" . -}}
metadata:
  labels:
    {{- include "lakeprobe.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- if not (include "lakeprobe.existingConfig" .) }}
    # A changed config rolls the pods (an existing Secret/ConfigMap: SIGHUP or a restart).
    checksum/config: {{ include "lakeprobe.config" . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "lakeprobe.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.automountServiceAccountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  containers:
    - name: lakeprobe
      image: {{ include "lakeprobe.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --log-level={{ .Values.logLevel }}
        - serve
        - --config=/etc/lakeprobe/config/{{ .Values.configKey }}
        {{- if eq .Values.mode "site" }}
        - --site={{ .Values.server.site }}
        {{- else }}
        # The ordinal comes from the pod's host name (<name>-<ordinal>).
        - --shard=hostname/{{ int .Values.replicas }}
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        - name: TMPDIR
          value: /tmp
        {{- if $caVolume }}
        - name: X509_CERT_DIR
          value: {{ .Values.caDir.mountPath | quote }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: {{ .Values.containerPort }}
          protocol: TCP
      livenessProbe:
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: /etc/lakeprobe/config
          readOnly: true
        - name: state
          mountPath: {{ .Values.persistence.mountPath }}
        - name: tmp
          mountPath: /tmp
        {{- if $caVolume }}
        - name: ca-certificates
          mountPath: {{ .Values.caDir.mountPath }}
          readOnly: true
        {{- end }}
        {{- range .Values.extraSecretMounts }}
        - name: {{ .name }}
          mountPath: {{ .mountPath }}
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      {{- if eq (include "lakeprobe.configSource" .) "secret" }}
      secret:
        secretName: {{ include "lakeprobe.configName" . }}
      {{- else }}
      configMap:
        name: {{ include "lakeprobe.configName" . }}
      {{- end }}
    {{- if not (and .Values.persistence.enabled (eq .Values.mode "sharded")) }}
    - name: state
      {{- if and .Values.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ .Values.persistence.existingClaim | default (printf "%s-state" (include "lakeprobe.fullname" .)) }}
      {{- else }}
      emptyDir:
        sizeLimit: {{ .Values.persistence.emptyDirSizeLimit }}
      {{- end }}
    {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 256Mi
    {{- if $caVolume }}
    - name: ca-certificates
      {{- $caVolume | nindent 6 }}
    {{- end }}
    {{- range .Values.extraSecretMounts }}
    - name: {{ .name }}
      secret:
        secretName: {{ .secretName }}
        defaultMode: {{ .defaultMode | default 288 }}
        {{- with .items }}
        items:
          {{- toYaml . | nindent 10 }}
        {{- end }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* storageClassName of the state claims: "" the cluster default (omitted), "-" none. */}}
{{- define "lakeprobe.storageClass" -}}
{{- if eq .Values.persistence.storageClass "-" }}
storageClassName: ""
{{- else if .Values.persistence.storageClass }}
storageClassName: {{ .Values.persistence.storageClass | quote }}
{{- end }}
{{- end }}
