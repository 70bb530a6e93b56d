// How node runs a sidecar, on every platform: `mesh run` spawns it with these flags, an injected
// Kubernetes proxy container gets them in NODE_OPTIONS.

/**
 * A sidecar's garbage is short-lived (one request's objects): a 1 MB young generation keeps its
 * memory down where V8's default lets it grow to 16 MB and more under load. Measured A/B beside
 * 2 MB (bench/ab.js, two runs on a loaded machine): 1 to 8 MB less peak RSS per sidecar at full
 * speed, no CPU per request to tell apart.
 * MESH_SEMI_SPACE_MB overrides it where the sidecar is spawned; MESH_SIDECAR_NODE_FLAGS adds flags
 * there (space-separated), so a V8 setting can be measured A/B without a build (bench/ab.js --b-env).
 */
export function sidecarNodeFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  const extra = env.MESH_SIDECAR_NODE_FLAGS?.split(/\s+/).filter(Boolean) ?? [];
  return [`--max-semi-space-size=${env.MESH_SEMI_SPACE_MB ?? '1'}`, ...extra];
}
