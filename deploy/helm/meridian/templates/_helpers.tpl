{{/*
Helpers of the Meridian chart. Object names are fixed (meridian-controller, meridian-gateway, ...):
Meridian's components find each other by these names, so one cluster holds at most one release
per role.
*/}}

{{/* The namespace every namespaced object goes into. */}}
{{- define "meridian.namespace" -}}
{{ .Release.Namespace }}
{{- end }}

{{/* Labels of every object of one component; the argument is (list $ "component"). */}}
{{- define "meridian.labels" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
app.kubernetes.io/name: meridian-{{ $component }}
app.kubernetes.io/component: {{ $component }}
app.kubernetes.io/part-of: meridian
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of objects that belong to no single component (Namespace, CRDs). */}}
{{- define "meridian.commonLabels" -}}
app.kubernetes.io/part-of: meridian
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The selector of one component's pods: stable across chart versions. */}}
{{- define "meridian.selector" -}}
app.kubernetes.io/name: meridian-{{ . }}
{{- end }}

{{/* The image of one component; the argument is (list $ "component"). */}}
{{- define "meridian.image" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{ trimSuffix "/" $root.Values.image.registry }}/meridian-{{ $component }}:{{ $root.Values.image.tag | default $root.Chart.AppVersion }}
{{- end }}

{{/*
Pod-level settings shared by every component: pull secrets, scheduling, security context. Takes
(list $ sysctls): the pod's sysctls, a list of {name, value}, empty for none.
*/}}
{{- define "meridian.podSpec" -}}
{{- $root := index . 0 -}}
{{- $sysctls := index . 1 -}}
{{- with $root.Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile: { type: RuntimeDefault }
  {{- with $sysctls }}
  sysctls:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
Spreads one component's replicas over nodes and then zones, so that losing one node (or one zone,
where the cluster has several) leaves a replica running. A preference, not a rule: a cluster with
fewer nodes than replicas still schedules them all. The argument is the component's name.
*/}}
{{- define "meridian.spread" -}}
{{- $component := . -}}
topologySpreadConstraints:
{{- range list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
  - maxSkew: 1
    topologyKey: {{ . }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "meridian.selector" $component | nindent 8 }}
{{- end }}
{{- end }}

{{/* Container-level security context shared by every component. */}}
{{- define "meridian.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: { drop: ["ALL"] }
{{- end }}

{{/*
Checks what the schema cannot express; each failure says which value to set and how. Rendered
once, from templates/validate.yaml.
*/}}
{{- define "meridian.validate" -}}
{{- $v := .Values -}}
{{- if not (has $v.role (list "hub" "member")) -}}
{{- fail (printf "role must be \"hub\" or \"member\" (got %q): install the hub role once, in the hub cluster (--set role=hub), and the member role in every member cluster (--set role=member); see deploy/helm/meridian/examples/" (toString $v.role)) -}}
{{- end -}}
{{- if and (eq $v.role "member") (ne .Release.Namespace "meridian-system") -}}
{{- fail (printf "the member role must be installed in the namespace meridian-system (got %q): the controller writes the gateway's peer list there and looks for the gateway's Service there; use -n meridian-system --create-namespace" .Release.Namespace) -}}
{{- end -}}
{{- if and (eq $v.role "member") $v.gateway.enabled -}}
{{- if not $v.clusterID -}}
{{- fail "the member role's gateway needs clusterID: the ID this cluster joined with (meridian join <name>) and its gateway certificate names, e.g. --set clusterID=member-a (or gateway.enabled=false where every export is flat)" -}}
{{- end -}}
{{- if not $v.clusterset -}}
{{- fail "the member role's gateway needs clusterset: the clusterset name its certificate was signed for (meridian gateway sign --clusterset), e.g. --set clusterset=prod" -}}
{{- end -}}
{{- end -}}
{{- if and (eq $v.role "hub") (gt (int $v.controller.replicas) 1) (not $v.controller.leaderElect) -}}
{{- fail (printf "controller.replicas is %d but controller.leaderElect is false: replicas would all write to the members at once; set controller.leaderElect=true or controller.replicas=1" (int $v.controller.replicas)) -}}
{{- end -}}
{{- end }}
