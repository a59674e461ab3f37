import { randomBytes } from 'node:crypto';

/** Unguessable resource ids (96 bits) and challenge tokens (128 bits, RFC 8555 §8.1). */
export const newId = (): string => randomBytes(12).toString('base64url');
export const newToken = (): string => randomBytes(16).toString('base64url');
