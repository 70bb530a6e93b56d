// What `mesh install --platform kubernetes` renders: the control plane's namespace, RBAC, identity, Deployment,
// Service and injector webhook. Pure: the same values give byte-identical YAML (certificates are inputs).
import {
  CONTROL_NAME, CONTROL_NAMESPACE, CONTROL_PORT, CRD_GROUP, INJECT_ANNOTATION, ISSUER_SECRET, MESH_CONFIGMAP, PART_OF, TRUST_ROOTS_CONFIGMAP,
  TAP_GROUP, WEBHOOK_NAME, WEBHOOK_PORT, WEBHOOK_SECRET, CLIENT_CA_NAMESPACE, CLIENT_CA_READER_ROLE, ownedLabels,
} from './names.js';

export type KubeObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> } } & Record<string, unknown>;

export interface InstallValues {
  version: string;
  image: string;
  trustDomain: string;
  /** Workload certificate lifetime, e.g. 24h. */
  certLifetime: string;
  identity: { trustAnchorsPem: string; issuerCertPem: string; issuerKeyPem: string };
  /** The webhook's serving certificate and the CA the API server trusts it by. */
  webhook: { caPem: string; certPem: string; keyPem: string };
}

/** PEM with LF line ends (node-forge writes CRLF), so YAML shows it as a readable block. */
const pem = (s: string) => s.replace(/\r\n/g, '\n');
const b64 = (s: string) => Buffer.from(pem(s)).toString('base64');
const MOUNT = '/var/run/mesh';

/** The control plane's objects in apply order: namespace first, webhook last. */
export function renderControlPlane(v: InstallValues): KubeObject[] {
  const labels = (component?: string) => ownedLabels(v.version, component);
  const ns = CONTROL_NAMESPACE;
  const selector = { [PART_OF]: 'mesh', 'app.kubernetes.io/component': 'control' };
  return [
    {
      apiVersion: 'v1', kind: 'Namespace',
      metadata: { name: ns, labels: { ...labels(), 'mesh.io/is-control-plane': 'true' }, annotations: { [INJECT_ANNOTATION]: 'disabled' } },
    },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: CONTROL_NAME, namespace: ns, labels: labels('control') } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole',
      metadata: { name: `mesh:${CONTROL_NAME}`, labels: labels('control') },
      rules: [
        { apiGroups: [''], resources: ['pods', 'services', 'namespaces'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [CRD_GROUP], resources: ['routes', 'policies'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
        // Who may tap what: each tap's caller is checked with a SubjectAccessReview (tap-access.ts).
        { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
        { apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], verbs: ['get', 'list', 'watch'] },
      ],
    },
    {
      // Tap is RBAC on this API group, as Linkerd's tap.linkerd.io: bind it to who may see live requests
      // (a RoleBinding for one namespace). mesh tap also needs get and create on pods/portforward in the control namespace.
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole',
      metadata: { name: 'mesh:tap-admin', labels: labels('control') },
      rules: [{ apiGroups: [TAP_GROUP], resources: ['*'], verbs: ['watch'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding',
      metadata: { name: `mesh:${CONTROL_NAME}`, labels: labels('control') },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `mesh:${CONTROL_NAME}` },
      subjects: [{ kind: 'ServiceAccount', name: CONTROL_NAME, namespace: ns }],
    },
    {
      // The cluster's client CA (client-ca-file), which tap callers' client certificates are verified by: the API
      // server's built-in Role for reading it, as every extension API server is granted it.
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding',
      metadata: { name: `mesh:${CONTROL_NAME}:client-ca`, namespace: CLIENT_CA_NAMESPACE, labels: labels('control') },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: CLIENT_CA_READER_ROLE },
      subjects: [{ kind: 'ServiceAccount', name: CONTROL_NAME, namespace: ns }],
    },
    {
      // What mesh inject needs from the cluster besides the trust roots: which image and trust domain proxies get.
      apiVersion: 'v1', kind: 'ConfigMap',
      metadata: { name: MESH_CONFIGMAP, namespace: ns, labels: labels('control') },
      data: { trustDomain: v.trustDomain, image: v.image, version: v.version, certLifetime: v.certLifetime },
    },
    {
      apiVersion: 'v1', kind: 'ConfigMap',
      metadata: { name: TRUST_ROOTS_CONFIGMAP, namespace: ns, labels: labels('identity') },
      data: { 'ca-bundle.crt': pem(v.identity.trustAnchorsPem) },
    },
    {
      apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls',
      metadata: { name: ISSUER_SECRET, namespace: ns, labels: labels('identity') },
      data: { 'tls.crt': b64(v.identity.issuerCertPem), 'tls.key': b64(v.identity.issuerKeyPem) },
    },
    {
      apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls',
      metadata: { name: WEBHOOK_SECRET, namespace: ns, labels: labels('webhook') },
      data: { 'tls.crt': b64(v.webhook.certPem), 'tls.key': b64(v.webhook.keyPem), 'ca.crt': b64(v.webhook.caPem) },
    },
    {
      apiVersion: 'apps/v1', kind: 'Deployment',
      metadata: { name: CONTROL_NAME, namespace: ns, labels: labels('control') },
      spec: {
        replicas: 1,
        selector: { matchLabels: selector },
        template: {
          metadata: { labels: { ...labels('control'), ...selector }, annotations: { [INJECT_ANNOTATION]: 'disabled' } },
          spec: {
            serviceAccountName: CONTROL_NAME,
            automountServiceAccountToken: true,
            securityContext: { runAsNonRoot: true, runAsUser: 2103, runAsGroup: 2103, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [{
              name: 'control',
              image: v.image,
              imagePullPolicy: 'IfNotPresent',
              args: ['control', '--platform', 'kubernetes', '--port', String(CONTROL_PORT), '--webhook-port', String(WEBHOOK_PORT)],
              env: [
                { name: 'MESH_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                { name: 'MESH_TRUST_DOMAIN', value: v.trustDomain },
                { name: 'MESH_CERT_LIFETIME', value: v.certLifetime },
                { name: 'MESH_PROXY_IMAGE', value: v.image },
                { name: 'MESH_IDENTITY_DIR', value: `${MOUNT}/identity` },
                { name: 'MESH_WEBHOOK_DIR', value: `${MOUNT}/webhook` },
              ],
              ports: [
                { name: 'control', containerPort: CONTROL_PORT, protocol: 'TCP' },
                { name: 'webhook', containerPort: WEBHOOK_PORT, protocol: 'TCP' },
              ],
              readinessProbe: { httpGet: { path: '/ready', port: 'control', scheme: 'HTTPS' }, periodSeconds: 5, failureThreshold: 3 },
              livenessProbe: { httpGet: { path: '/ready', port: 'control', scheme: 'HTTPS' }, initialDelaySeconds: 10, periodSeconds: 10 },
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              volumeMounts: [
                { name: 'trust-roots', mountPath: `${MOUNT}/identity/trust-roots`, readOnly: true },
                { name: 'issuer', mountPath: `${MOUNT}/identity/issuer`, readOnly: true },
                { name: 'webhook-tls', mountPath: `${MOUNT}/webhook`, readOnly: true },
              ],
            }],
            volumes: [
              { name: 'trust-roots', configMap: { name: TRUST_ROOTS_CONFIGMAP } },
              { name: 'issuer', secret: { secretName: ISSUER_SECRET } },
              { name: 'webhook-tls', secret: { secretName: WEBHOOK_SECRET } },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1', kind: 'Service',
      metadata: { name: CONTROL_NAME, namespace: ns, labels: labels('control') },
      spec: {
        type: 'ClusterIP',
        selector,
        ports: [
          { name: 'control', port: CONTROL_PORT, targetPort: 'control', protocol: 'TCP' },
          { name: 'webhook', port: 443, targetPort: 'webhook', protocol: 'TCP' },
        ],
      },
    },
    {
      apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration',
      metadata: { name: WEBHOOK_NAME, labels: labels('webhook') },
      webhooks: [{
        name: 'inject.mesh.io',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        // Ignore: a control plane that is down must not stop pods from starting; they start unmeshed.
        failurePolicy: 'Ignore',
        timeoutSeconds: 10,
        reinvocationPolicy: 'Never',
        clientConfig: { service: { name: CONTROL_NAME, namespace: ns, path: '/inject', port: 443 }, caBundle: b64(v.webhook.caPem) },
        // The handler decides by the pod annotation or the namespace label; never the control plane or the system.
        namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [ns, 'kube-system', 'kube-node-lease'] }] },
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
      }],
    },
  ];
}
