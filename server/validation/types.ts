import type { ChallengeType, Identifier, ProblemRecord } from '../../storage/types.js';

export interface ValidationInput {
  type: ChallengeType;
  identifier: Identifier;
  token: string;
  /** token "." base64url(JWK thumbprint) (RFC 8555 §8.1). */
  keyAuthorization: string;
}

export type ValidationResult = { valid: true } | { valid: false; problem: ProblemRecord };

/** One challenge type; each validator is small and knows nothing of storage. */
export interface Validator {
  validate(input: ValidationInput): Promise<ValidationResult>;
}

// Boulder's convention: the peer answered wrongly → 403; it could not be reached → 400.
const STATUS: Record<string, number> = { unauthorized: 403, incorrectResponse: 403 };

export const fail = (type: string, detail: string, identifier: Identifier): ValidationResult => ({
  valid: false, problem: { type: `urn:ietf:params:acme:error:${type}`, detail, status: STATUS[type] ?? 400, identifier },
});
