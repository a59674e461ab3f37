import { Crypto } from '@peculiar/webcrypto';
import * as pkijs from 'pkijs';

// pkijs needs a WebCrypto engine; one shared instance so that CryptoKeys imported anywhere in the
// process can sign anything pkijs builds.
export const webcrypto = new Crypto();
pkijs.setEngine('peculiar', new pkijs.CryptoEngine({ name: 'peculiar', crypto: webcrypto }));
export const subtle = webcrypto.subtle;
