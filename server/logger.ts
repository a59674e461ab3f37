import pino, { type Logger } from 'pino';

// Paths that could ever hold a secret are censored, wherever a log call puts them.
export const REDACT_PATHS = [
  'req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'req.headers["x-vault-token"]',
  'privateKey', 'keyPem', 'key', 'secret', 'token', 'hmacKey', 'password', 'signature', 'jws', 'body', 'csr',
  '*.privateKey', '*.keyPem', '*.secret', '*.token', '*.hmacKey', '*.password', '*.signature', '*.jws',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { service: 'acme-ca' } }, destination);
}
