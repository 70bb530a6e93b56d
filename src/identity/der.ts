// Just enough DER for the proxy's two needs, so the data plane does not load node-forge:
// reading a certificate's URI SANs, and writing a PKCS#10 request signed with node:crypto.
import { createPublicKey, sign, type KeyObject } from 'node:crypto';

interface Tlv {
  tag: number;
  start: number;
  end: number;
  next: number;
}

function tlv(buf: Buffer, at: number): Tlv {
  if (at + 2 > buf.length) throw new Error('truncated DER');
  const tag = buf[at]!;
  let len = buf[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > buf.length) throw new Error('bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > buf.length) throw new Error('truncated DER');
  return { tag, start, end, next: end };
}

function children(buf: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const t = tlv(buf, at);
    out.push(t);
    at = t.next;
  }
  return out;
}

const SAN_OID = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x11]);

/** The URI entries of a certificate's subjectAltName, read from its DER encoding. */
export function readUriSans(der: Buffer): string[] {
  const cert = tlv(der, 0);
  const tbs = children(der, cert)[0];
  if (!tbs) throw new Error('not a certificate');
  const extsWrapper = children(der, tbs).find((t) => t.tag === 0xa3);
  if (!extsWrapper) return [];
  const seq = children(der, extsWrapper)[0];
  if (!seq) return [];
  const out: string[] = [];
  for (const ext of children(der, seq)) {
    const parts = children(der, ext);
    const oid = parts[0]!;
    if (!der.subarray(oid.start - 2, oid.end).equals(SAN_OID)) continue;
    const octets = parts[parts.length - 1]!;
    const names = tlv(der, octets.start);
    for (const n of children(der, names)) if (n.tag === 0x86) out.push(der.toString('latin1', n.start, n.end));
  }
  return out;
}

function enc(tag: number, body: Buffer): Buffer {
  const n = body.length;
  let head: Buffer;
  if (n < 0x80) head = Buffer.from([tag, n]);
  else if (n < 0x100) head = Buffer.from([tag, 0x81, n]);
  else if (n < 0x10000) head = Buffer.from([tag, 0x82, n >> 8, n & 0xff]);
  else head = Buffer.from([tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([head, body]);
}

const seq = (...items: Buffer[]) => enc(0x30, Buffer.concat(items));
const OID_CN = Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03]);
const SHA256_RSA = seq(Buffer.from([0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]), Buffer.from([0x05, 0x00]));

/** A PKCS#10 certificate request for an RSA key, signed with SHA-256. */
export function buildCsr(privateKey: KeyObject | string, commonName: string): string {
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const subject = seq(enc(0x31, seq(OID_CN, enc(0x0c, Buffer.from(commonName.slice(0, 64), 'utf8')))));
  const info = seq(Buffer.from([0x02, 0x01, 0x00]), subject, spki, Buffer.from([0xa0, 0x00]));
  const sig = sign('sha256', info, privateKey);
  const der = seq(info, SHA256_RSA, enc(0x03, Buffer.concat([Buffer.from([0]), sig])));
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE REQUEST-----\n`;
}
