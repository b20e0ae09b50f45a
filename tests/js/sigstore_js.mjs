// Test-only driver: sigstore-js (npm `sigstore` 5.x) against a keyless server, for
// tests/e2e/test_sigstore_js.py.
//
//   node sigstore_js.mjs sign --fulcio-url URL --rekor-url URL --artifact FILE --bundle OUT
//       (the identity token comes from SIGSTORE_ID_TOKEN, never from argv)
//   node sigstore_js.mjs attest --fulcio-url URL --rekor-url URL --payload FILE
//       --payload-type TYPE --bundle OUT
//       (as npm provenance does: `legacyCompatibility`, so the log entry is intoto 0.0.2)
//   node sigstore_js.mjs verify --bundle FILE --artifact FILE --certificate-issuer ISS
//       (--certificate-identity-email RE | --certificate-identity-uri RE)
//       --tuf-mirror-url URL --tuf-root-path root.json --tuf-cache-path DIR
//
// Exit 0 on success; on failure, exit 1 with `<ErrorName>: <message>` on stderr.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { attest, sign, verify } from 'sigstore';

const OPTIONS = {
  'fulcio-url': { type: 'string' },
  'rekor-url': { type: 'string' },
  artifact: { type: 'string' },
  payload: { type: 'string' },
  'payload-type': { type: 'string' },
  bundle: { type: 'string' },
  'certificate-issuer': { type: 'string' },
  'certificate-identity-email': { type: 'string' },
  'certificate-identity-uri': { type: 'string' },
  'tuf-mirror-url': { type: 'string' },
  'tuf-root-path': { type: 'string' },
  'tuf-cache-path': { type: 'string' },
};

function required(values, name) {
  const value = values[name];
  if (!value) {
    throw new Error(`--${name} is required`);
  }
  return value;
}

function identityToken() {
  const token = process.env.SIGSTORE_ID_TOKEN;
  if (!token) {
    throw new Error('SIGSTORE_ID_TOKEN is not set');
  }
  return token;
}

async function runSign(values) {
  const bundle = await sign(readFileSync(required(values, 'artifact')), {
    fulcioURL: required(values, 'fulcio-url'),
    rekorURL: required(values, 'rekor-url'),
    identityToken: identityToken(),
  });
  writeFileSync(required(values, 'bundle'), JSON.stringify(bundle));
}

async function runAttest(values) {
  const payload = readFileSync(required(values, 'payload'));
  const bundle = await attest(payload, required(values, 'payload-type'), {
    fulcioURL: required(values, 'fulcio-url'),
    rekorURL: required(values, 'rekor-url'),
    identityToken: identityToken(),
    legacyCompatibility: true,
  });
  writeFileSync(required(values, 'bundle'), JSON.stringify(bundle));
}

async function runVerify(values) {
  const bundle = JSON.parse(readFileSync(required(values, 'bundle'), 'utf8'));
  await verify(bundle, readFileSync(required(values, 'artifact')), {
    certificateIssuer: required(values, 'certificate-issuer'),
    certificateIdentityEmail: values['certificate-identity-email'],
    certificateIdentityURI: values['certificate-identity-uri'],
    tufMirrorURL: required(values, 'tuf-mirror-url'),
    tufRootPath: required(values, 'tuf-root-path'),
    tufCachePath: required(values, 'tuf-cache-path'),
  });
}

async function main() {
  const { positionals, values } = parseArgs({ options: OPTIONS, allowPositionals: true });
  const commands = { attest: runAttest, sign: runSign, verify: runVerify };
  const command = commands[positionals[0]];
  if (positionals.length !== 1 || !command) {
    throw new Error('usage: sigstore_js.mjs attest|sign|verify [options]');
  }
  await command(values);
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`${error.name}: ${error.message}\n`);
    process.exit(1);
  },
);
