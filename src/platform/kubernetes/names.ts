// Names, labels and ports the Kubernetes manifests, inject and the webhook agree on.
import { VERSION } from '../../version.js';

export const CONTROL_NAMESPACE = 'mesh-system';
export const CONTROL_NAME = 'mesh-control';
export const WEBHOOK_NAME = 'mesh-proxy-injector';
export const MESH_CONFIGMAP = 'mesh-config';
export const TRUST_ROOTS_CONFIGMAP = 'mesh-identity-trust-roots';
export const ISSUER_SECRET = 'mesh-identity-issuer';
export const WEBHOOK_SECRET = 'mesh-webhook-tls';
export const CRD_GROUP = 'mesh.io';
export const CRD_VERSION = 'v1alpha1';
/** RBAC on tap: verb watch on deployments/tap, pods/tap, services/tap, namespaces/tap (Linkerd: tap.linkerd.io). */
export const TAP_GROUP = 'tap.mesh.io';
/** Where the API server publishes the CA it verifies client certificates with, and the built-in Role that reads it. */
export const CLIENT_CA_NAMESPACE = 'kube-system';
export const CLIENT_CA_CONFIGMAP = 'extension-apiserver-authentication';
export const CLIENT_CA_READER_ROLE = 'extension-apiserver-authentication-reader';

export const DEFAULT_IMAGE_REPO = 'ghcr.io/mesh/mesh';
export const defaultImage = (version = VERSION) => `${DEFAULT_IMAGE_REPO}:${version}`;

/** Linkerd's ports and proxy uid, so operators' habits (and firewall rules) carry over. */
export const PROXY_PORTS = { inbound: 4143, outbound: 4140, admin: 4191 } as const;
export const PROXY_UID = 2102;
export const CONTROL_PORT = 8443;
export const WEBHOOK_PORT = 9443;

export const PART_OF = 'app.kubernetes.io/part-of';
export const MANAGED_BY = 'app.kubernetes.io/managed-by';
/** Everything install creates carries both; uninstall deletes by them. */
export const OWNED_SELECTOR = `${PART_OF}=mesh,${MANAGED_BY}=mesh`;
export const ownedLabels = (version = VERSION, component?: string): Record<string, string> => ({
  [PART_OF]: 'mesh',
  [MANAGED_BY]: 'mesh',
  'app.kubernetes.io/version': version,
  ...(component ? { 'app.kubernetes.io/component': component } : {}),
});

export const INJECT_ANNOTATION = 'mesh.io/inject';
export const INJECT_LABEL = 'mesh.io/inject';
export const PROXY_VERSION_ANNOTATION = 'mesh.io/proxy-version';
/** Ports whose traffic is opaque TCP, never sniffed for HTTP (Linkerd: config.linkerd.io/opaque-ports). */
export const OPAQUE_PORTS_ANNOTATION = 'mesh.io/opaque-ports';
export const OPAQUE_PORTS_ENV = 'MESH_OPAQUE_PORTS';
/** An OTLP/HTTP collector of the pod's own for its proxy's spans (as --trace-collector; default: mesh-control's). */
export const TRACE_COLLECTOR_ANNOTATION = 'mesh.io/trace-collector';
export const TRACE_COLLECTOR_ENV = 'MESH_TRACE_COLLECTOR';
/** The pod's ServiceAccount, recorded by inject where Prometheus' pod discovery can see it (the identity label). */
export const SERVICE_ACCOUNT_ANNOTATION = 'mesh.io/service-account';
export const CONTROL_NS_LABEL = 'mesh.io/control-plane-ns';
export const PROXY_CONTAINER = 'mesh-proxy';
export const INIT_CONTAINER = 'mesh-init';
export const TOKEN_VOLUME = 'mesh-identity-token';
export const TOKEN_AUDIENCE = 'mesh.io';
export const TOKEN_PATH = '/var/run/secrets/mesh.io/serviceaccount';

/** Service DNS name of the control plane as proxies reach it. */
export const controlHost = (clusterDomain = 'cluster.local') => `${CONTROL_NAME}.${CONTROL_NAMESPACE}.svc.${clusterDomain}`;
export const webhookDnsNames = () => [
  `${CONTROL_NAME}.${CONTROL_NAMESPACE}.svc`, `${CONTROL_NAME}.${CONTROL_NAMESPACE}.svc.cluster.local`,
];
