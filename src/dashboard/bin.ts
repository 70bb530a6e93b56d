// The mesh binary of this package, for the dashboard's `mesh check` run.
export const MESH_BIN_PATH = new URL('../../../bin/mesh.js', import.meta.url).pathname;
