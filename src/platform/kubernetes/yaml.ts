// Multi-document YAML as kubectl reads and writes it.
import { stringify } from 'yaml';

/** kubectl's layout: sequences not indented under their key, no folding, no anchors. */
export const YAML_OPTIONS = { lineWidth: 0, indentSeq: false, aliasDuplicateObjects: false } as const;

/** One document per object, separated by `---`; no line folding, so base64 and PEM stay intact. */
export function toYaml(objects: unknown[]): string {
  return objects.map((o) => `---\n${stringify(o, YAML_OPTIONS)}`).join('');
}
