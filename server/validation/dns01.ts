import { createHash } from 'node:crypto';
import type { ValidationResolver } from './resolver.js';
import { fail, type ValidationInput, type ValidationResult, type Validator } from './types.js';

export class Dns01Validator implements Validator {
  constructor(private readonly resolver: ValidationResolver) {}

  async validate(input: ValidationInput): Promise<ValidationResult> {
    const { identifier: id } = input;
    const name = `_acme-challenge.${id.value}`;
    const expected = createHash('sha256').update(input.keyAuthorization).digest('base64url');
    let records: string[];
    try {
      records = await this.resolver.txt(name);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return fail('dns', `no TXT record at ${name} (${code ?? (e as Error).message}); publish "${expected}" there`, id);
    }
    if (records.includes(expected)) return { valid: true };
    return fail('incorrectResponse', `the TXT records at ${name} (${records.length} found) do not include the expected value "${expected}"`, id);
  }
}
