// Keys and certificate facts through node:crypto alone: what the proxy needs, without node-forge.
import { generateKeyPair as genKeyPairCb, X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';

const genKeyPair = promisify(genKeyPairCb);

export const DAY = 24 * 3600 * 1000;

export interface KeyPair {
  keyPem: string;
  publicKeyPem: string;
}

export interface CertAndKey {
  certPem: string;
  keyPem: string;
}

export async function generateKey(bits = 2048): Promise<KeyPair> {
  const { privateKey, publicKey } = await genKeyPair('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return { keyPem: privateKey as unknown as string, publicKeyPem: publicKey as unknown as string };
}

export interface CertInfo {
  notBefore: Date;
  notAfter: Date;
  subject: string;
  fingerprint: string;
}

export function certInfo(pem: string): CertInfo {
  const c = new X509Certificate(pem);
  return { notBefore: new Date(c.validFrom), notAfter: new Date(c.validTo), subject: c.subject, fingerprint: c.fingerprint256 };
}

/** Splits a PEM bundle into its certificates. */
export function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}
