// The sample's workloads (bookinfo's apps in demo/), the same on every platform. ratings serves
// reviews v2/v3 over gRPC (HTTP/2 cleartext), so the sample shows a gRPC hop beside HTTP/1.1 ones.
export const DEMO_APPS: readonly { service: string; version: string; script: string; appProtocol?: 'h2c' }[] = [
  { service: 'details', version: 'v1', script: 'details.js' },
  { service: 'ratings', version: 'v1', script: 'ratings.js', appProtocol: 'h2c' },
  { service: 'reviews', version: 'v1', script: 'reviews.js' },
  { service: 'reviews', version: 'v2', script: 'reviews.js' },
  { service: 'reviews', version: 'v3', script: 'reviews.js' },
  { service: 'productpage', version: 'v1', script: 'productpage.js' },
];
