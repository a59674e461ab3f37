/**
 * Holds the policy in force. Request handlers call current() once per request and keep the
 * object they got, so a reload in the middle of a request never mixes two policies (parsed
 * policies are frozen). A reload that fails leaves the old policy in place: a typo in the file
 * must not take issuance down or silently fall back to the permissive default.
 */
import { readFileSync } from 'node:fs';
import { parsePolicy, PolicyError } from './parse.js';
import { DEFAULT_POLICY, type PolicyConfig } from './types.js';

export type ReloadResult =
  | { ok: true; version: string; changed: boolean }
  | { ok: false; error: string };

export class PolicyStore {
  private policy: PolicyConfig;

  constructor(initial: PolicyConfig = DEFAULT_POLICY) {
    this.policy = initial;
  }

  /** The built-in policy, or the file's; throws with the reload message when the file is invalid. */
  static load(path: string | null): PolicyStore {
    const store = new PolicyStore();
    if (path) {
      const r = store.reload(path);
      if (!r.ok) throw new Error(r.error.replace(/; keeping policy \S+$/, ''));
    }
    return store;
  }

  current(): PolicyConfig {
    return this.policy;
  }

  /** Reads and parses `path`; on success swaps the policy in, on failure keeps the old one and
   * returns the message for the operator (it names the file and, for bad content, the key). */
  reload(path: string): ReloadResult {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      return { ok: false, error: `cannot read policy file ${path}: ${(e as Error).message}; keeping policy ${this.policy.version}` };
    }
    let next: PolicyConfig;
    try {
      next = parsePolicy(text, path);
    } catch (e) {
      const message = e instanceof PolicyError ? e.message : `policy ${path} could not be parsed: ${(e as Error).message}`;
      return { ok: false, error: `${message}; keeping policy ${this.policy.version}` };
    }
    // Same text, same policy: keeping the old object lets callers compare by identity.
    const changed = next.version !== this.policy.version;
    if (changed) this.policy = next;
    return { ok: true, version: next.version, changed };
  }
}
