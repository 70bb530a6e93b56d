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

/**
 * glibc gives each thread that allocates (V8's compiler and GC workers) a malloc arena of its own; a
 * sidecar's JS runs on one thread, so two arenas do. Measured A/B (bench/ab.js, load 7 on 2 cores):
 * 1.5-2.0 MB less RSS per sidecar idle, 0.5-1.7 MB less after load, no CPU per request to tell apart.
 * glibc reads it at exec, so it is set where the sidecar is spawned (a user's own setting wins).
 */
export const SIDECAR_MALLOC_ARENAS = '2';

/** Marks a MALLOC_ARENA_MAX that sidecarEnv added, so the app does not inherit it. */
const ADDED = 'MESH_SIDECAR_MALLOC_ARENAS';
/** The app's NODE_EXTRA_CA_CERTS, kept aside while its sidecar runs without it. */
const EXTRA_CA = 'MESH_APP_NODE_EXTRA_CA_CERTS';

/**
 * The environment a sidecar is spawned with: `env` with MALLOC_ARENA_MAX (unless it has one) and without
 * NODE_EXTRA_CA_CERTS. Node reads that file at start-up into a copy of its public root store, ~1.8 MB of RSS
 * measured, and a sidecar never uses that store: every TLS context it makes trusts the mesh's anchors only. The app
 * gets the variable back (appEnvOf), since its own TLS may need it.
 */
export function sidecarEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: extraCa, ...out } = env;
  if (extraCa !== undefined) out[EXTRA_CA] = extraCa;
  if (env.MALLOC_ARENA_MAX === undefined) Object.assign(out, { MALLOC_ARENA_MAX: SIDECAR_MALLOC_ARENAS, [ADDED]: '1' });
  return out;
}

/** A sidecar's environment as its app gets it: without what sidecarEnv added, with what it kept aside. */
export function appEnvOf(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (env[ADDED] === undefined && env[EXTRA_CA] === undefined) return env;
  const { [ADDED]: added, [EXTRA_CA]: extraCa, ...out } = env;
  if (added !== undefined) delete out.MALLOC_ARENA_MAX;
  if (extraCa !== undefined) out.NODE_EXTRA_CA_CERTS = extraCa;
  return out;
}
