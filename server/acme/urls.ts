// Every URL the ACME API hands out, derived from one base so that `url` checks and links agree.
export class Urls {
  readonly base: string;
  constructor(externalUrl: URL) {
    this.base = `${externalUrl.origin}${externalUrl.pathname.replace(/\/+$/, '')}`;
  }
  directory(): string { return `${this.base}/directory`; }
  newNonce(): string { return `${this.base}/acme/new-nonce`; }
  newAccount(): string { return `${this.base}/acme/new-account`; }
  newOrder(): string { return `${this.base}/acme/new-order`; }
  revokeCert(): string { return `${this.base}/acme/revoke-cert`; }
  keyChange(): string { return `${this.base}/acme/key-change`; }
  renewalInfo(): string { return `${this.base}/acme/renewal-info`; }
  account(id: string): string { return `${this.base}/acme/account/${id}`; }
  accountOrders(id: string, cursor?: string): string { return `${this.base}/acme/account/${id}/orders${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''}`; }
  order(id: string): string { return `${this.base}/acme/order/${id}`; }
  finalize(id: string): string { return `${this.base}/acme/order/${id}/finalize`; }
  authz(id: string): string { return `${this.base}/acme/authz/${id}`; }
  challenge(id: string): string { return `${this.base}/acme/chall/${id}`; }
  certificate(id: string): string { return `${this.base}/acme/cert/${id}`; }
  /** The URL a request was made to, as the client must have written it in the JWS. */
  request(rawUrl: string): string { return `${this.base}${rawUrl}`; }
  accountIdFromUrl(url: string): string | null {
    const prefix = `${this.base}/acme/account/`;
    if (!url.startsWith(prefix)) return null;
    const id = url.slice(prefix.length);
    return /^[A-Za-z0-9_-]{1,64}$/.test(id) ? id : null;
  }
}
