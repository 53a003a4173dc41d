/** The east-west gateway: what other components (controller, CLI, status) use. */
export { Gateway } from "./gateway.js";
export type { GatewayLimits, GatewayOptions, ProbeOptions, ServiceRouting } from "./gateway.js";
export { GatewayMetrics } from "./metrics.js";
export { GATEWAY_NODE_FLAGS } from "./node-flags.js";
export type { AccessDecision, AccessDefault, AccessEntry } from "./access.js";
export { decideAccess } from "./access.js";
export type {
  ClusterCandidate,
  ClusterWeight,
  FailoverTier,
  Locality,
  OutlierDetectionSpec,
  RoutedCluster,
  Tier,
  TrafficPolicySpec,
} from "./policy.js";
export { computeTiers, effectiveRouting, validatePolicy, WeightedPicker } from "./policy.js";
export type {
  Endpoint,
  ExportRoute,
  ImportRoute,
  PeerGateway,
  RoutingSource,
  RoutingTable,
} from "./routes.js";
export { JsonFileRoutingSource, StaticRoutingSource, validateRoutingTable } from "./routes.js";
export type {
  CertificateSigner,
  GatewayCredentials,
  PeerIdentity,
  RefusalReason,
  TrustBundle,
  TrustRoot,
} from "./trust.js";
export {
  classifyPeer,
  createGatewayKeyRequest,
  createTrustRoot,
  gatewayDnsName,
  identityUri,
  LocalSigner,
  parseIdentityUri,
  signGatewayRequest,
} from "./trust.js";
export type { IdentitySource } from "./identity.js";
export { FileIdentity, RenewingIdentity } from "./identity.js";
