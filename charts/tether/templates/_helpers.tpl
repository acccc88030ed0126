{{/* The release's name prefix for every object. */}}
{{- define "tether.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 52 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "tether.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tether.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* tether's own image: the tag is the chart's appVersion unless set; "latest" is refused. */}}
{{- define "tether.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if eq $tag "latest" }}{{ fail "image.tag: \"latest\" is not allowed; pin a version" }}{{ end -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}

{{/* The Secret that holds config.yaml and the backends' key files. */}}
{{- define "tether.configSecret" -}}
{{- .Values.existingSecret | default (printf "%s-config" (include "tether.fullname" .)) -}}
{{- end -}}

{{/* Whether the controller mounts NFS exports (and so must be privileged). */}}
{{- define "tether.controllerPrivileged" -}}
{{- if kindIs "bool" .Values.controller.privileged -}}{{ .Values.controller.privileged }}
{{- else -}}
{{- $nfs := false -}}{{- range .Values.config.backends }}{{ if eq .type "nfs" }}{{ $nfs = true }}{{ end }}{{ end -}}{{ $nfs }}
{{- end -}}
{{- end -}}

{{/* A kubernetes-csi sidecar of the controller: .name, .image, .args beyond the shared ones. */}}
{{- define "tether.sidecar" -}}
- name: {{ .name }}
  image: {{ .image }}
  args:
    - --csi-address=/csi/csi.sock
    - --v=2
    {{- if .root.Values.controller.leaderElection }}
    - --leader-election
    - --leader-election-namespace={{ .root.Release.Namespace }}
    {{- end }}
    {{- range .args }}
    - {{ . }}
    {{- end }}
  {{- with .root.Values.controller.env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
  volumeMounts:
    - name: socket-dir
      mountPath: /csi
{{- end -}}

{{/* The config volume: the Secret, read-only, files 0400. */}}
{{- define "tether.configVolume" -}}
- name: config
  secret:
    secretName: {{ include "tether.configSecret" . }}
    defaultMode: 256    # 0400, written in decimal: YAML 1.1 and 1.2 read a leading 0 differently
{{- end -}}

{{/*
tether's container, for --mode controller or node (.mode), with its /healthz on .healthPort. Without the
livenessprobe sidecar tether serves /healthz itself; without node-driver-registrar the node plugin
registers itself with the kubelet through the plugins_registry directory, mounted at /registration.
*/}}
{{/* The image's entrypoint with Node.js flags before the script (V8 flags such as --optimize-for-size are refused in NODE_OPTIONS); nothing when there are none. */}}
{{- define "tether.command" -}}
{{- with . }}
command:
  - node
  {{- range splitList " " . }}
  - {{ . | quote }}
  {{- end }}
  - /app/dist/src/main.js
{{- end }}
{{- end }}

{{- define "tether.container" -}}
{{- $selfRegistering := and (eq .mode "node") (not .root.Values.sidecars.nodeDriverRegistrar.enabled) }}
- name: tether
  image: {{ include "tether.image" .root }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  {{- include "tether.command" .nodeFlags | nindent 2 }}
  args:
    - --mode={{ .mode }}
    - --endpoint=unix:///csi/csi.sock
    - --config=/etc/tether/config.yaml
    - --driver-name={{ .root.Values.driverName }}
    - --log-level={{ .root.Values.logLevel }}
    {{- if eq .mode "node" }}
    - --node-id=$(NODE_NAME)
    {{- if .root.Values.mountKeeper.enabled }}
    - --mount-keeper=unix:///csi/keeper/keeper.sock
    {{- end }}
    {{- end }}
    {{- if and .root.Values.metrics.enabled (eq .mode "controller") }}
    - --metrics-address=0.0.0.0:{{ .root.Values.metrics.port }}
    {{- end }}
    {{- if not .root.Values.sidecars.livenessProbe.enabled }}
    - --health-address=0.0.0.0:{{ .healthPort }}
    {{- end }}
    {{- if $selfRegistering }}
    - --kubelet-registration-dir=/registration
    - --kubelet-registration-path={{ .root.Values.node.kubeletDir }}/plugins/{{ .root.Values.driverName }}/csi.sock
    {{- end }}
  env:
    - name: NODE_NAME
      valueFrom:
        fieldRef:
          fieldPath: spec.nodeName
    {{- if eq .mode "controller" }}
    {{- with .root.Values.controller.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- end }}
  ports:
    - name: healthz
      containerPort: {{ .healthPort }}
    {{- if and .root.Values.metrics.enabled (eq .mode "controller") }}
    - name: metrics
      containerPort: {{ .root.Values.metrics.port }}
    {{- end }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: healthz
    initialDelaySeconds: 10
    timeoutSeconds: 5
    periodSeconds: 10
    failureThreshold: 5
  {{- with .resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .privileged }}
  securityContext:
    privileged: true
  {{- else }}
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
  {{- end }}
  volumeMounts:
    - name: socket-dir
      mountPath: /csi
    - name: config
      mountPath: /etc/tether
      readOnly: true
    - name: runtime-dir
      mountPath: /run/tether
    {{- if eq .mode "node" }}
    - name: kubelet-dir
      mountPath: {{ .root.Values.node.kubeletDir }}
      mountPropagation: Bidirectional
    - name: dev-fuse
      mountPath: /dev/fuse
    {{- end }}
    {{- if $selfRegistering }}
    - name: registration-dir
      mountPath: /registration
    {{- end }}
{{- end -}}

{{/* The livenessprobe sidecar (sidecars.livenessProbe.enabled): calls Probe through the socket and serves /healthz on .port. */}}
{{- define "tether.livenessProbe" -}}
{{- if .root.Values.sidecars.livenessProbe.enabled }}
- name: liveness-probe
  image: {{ .root.Values.sidecars.livenessProbe.image }}
  args:
    - --csi-address=/csi/csi.sock
    - --health-port={{ .port }}
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
  volumeMounts:
    - name: socket-dir
      mountPath: /csi
{{- end }}
{{- end -}}
