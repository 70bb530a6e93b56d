// The sample's workloads (bookinfo's apps in demo/), the same on every platform.
export const DEMO_APPS: readonly { service: string; version: string; script: string }[] = [
  { service: 'details', version: 'v1', script: 'details.js' },
  { service: 'ratings', version: 'v1', script: 'ratings.js' },
  { service: 'reviews', version: 'v1', script: 'reviews.js' },
  { service: 'reviews', version: 'v2', script: 'reviews.js' },
  { service: 'reviews', version: 'v3', script: 'reviews.js' },
  { service: 'productpage', version: 'v1', script: 'productpage.js' },
];
