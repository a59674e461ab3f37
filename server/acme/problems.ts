import type { Identifier, ProblemRecord } from '../../storage/types.js';

// RFC 8555 §6.7 error types (plus the profiles and ARI extensions), built in one place.
export type ProblemType =
  | 'accountDoesNotExist' | 'alreadyRevoked' | 'badCSR' | 'badNonce' | 'badPublicKey' | 'badRevocationReason'
  | 'badSignatureAlgorithm' | 'caa' | 'compound' | 'connection' | 'dns' | 'externalAccountRequired'
  | 'incorrectResponse' | 'invalidContact' | 'malformed' | 'orderNotReady' | 'rateLimited' | 'rejectedIdentifier'
  | 'serverInternal' | 'tls' | 'unauthorized' | 'unsupportedContact' | 'unsupportedIdentifier' | 'userActionRequired'
  | 'invalidProfile' | 'alreadyReplaced';

const DEFAULT_STATUS: Partial<Record<ProblemType, number>> = {
  accountDoesNotExist: 400, unauthorized: 403, serverInternal: 500, rateLimited: 429, orderNotReady: 403,
  externalAccountRequired: 403, userActionRequired: 403, alreadyReplaced: 409,
};

export class AcmeProblem extends Error {
  readonly status: number;
  readonly headers: Record<string, string> = {};
  subproblems?: ProblemRecord[];
  algorithms?: string[];
  identifier?: Identifier;

  constructor(readonly problemType: ProblemType, readonly detail: string, status?: number) {
    super(detail);
    this.status = status ?? DEFAULT_STATUS[problemType] ?? 400;
  }

  get type(): string {
    return `urn:ietf:params:acme:error:${this.problemType}`;
  }

  toRecord(): ProblemRecord {
    return {
      type: this.type, detail: this.detail, status: this.status,
      ...(this.identifier ? { identifier: this.identifier } : {}),
      ...(this.subproblems ? { subproblems: this.subproblems } : {}),
    };
  }

  toJSON(): Record<string, unknown> {
    return { ...this.toRecord(), ...(this.algorithms ? { algorithms: this.algorithms } : {}) };
  }
}

export const problem = (t: ProblemType, detail: string, status?: number): AcmeProblem => new AcmeProblem(t, detail, status);

export function problemRecord(t: ProblemType, detail: string, identifier?: Identifier): ProblemRecord {
  return { type: `urn:ietf:params:acme:error:${t}`, detail, ...(identifier ? { identifier } : {}) };
}
