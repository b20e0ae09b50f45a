// Test-only driver: sigstore-js (@sigstore/sign, from npm `sigstore` 5.x) signing by a
// SigningConfig v0.2, the way its release picks a Rekor major version and a TSA, for
// tests/e2e/test_rekor_v2.py.
//
//   node sigstore_js_signing_config.mjs SIGNING_CONFIG ARTIFACT BUNDLE_OUT
//       (the identity token comes from SIGSTORE_ID_TOKEN, never from argv)
//
// Exit 0 on success; on failure, exit 1 with `<ErrorName>: <message>` on stderr.
import { readFileSync, writeFileSync } from 'node:fs';
import { bundleToJSON } from '@sigstore/bundle';
import { SigningConfig } from '@sigstore/protobuf-specs';
import { bundleBuilderFromSigningConfig } from '@sigstore/sign';

async function main() {
  const [configPath, artifactPath, bundlePath] = process.argv.slice(2);
  const token = process.env.SIGSTORE_ID_TOKEN;
  if (!configPath || !artifactPath || !bundlePath || !token) {
    throw new Error('usage: SIGSTORE_ID_TOKEN=... sigstore_js_signing_config.mjs CONFIG FILE OUT');
  }
  const builder = bundleBuilderFromSigningConfig({
    signingConfig: SigningConfig.fromJSON(JSON.parse(readFileSync(configPath, 'utf8'))),
    identityProvider: { getToken: async () => token },
    bundleType: 'messageSignature',
  });
  const bundle = await builder.create({ data: readFileSync(artifactPath) });
  writeFileSync(bundlePath, JSON.stringify(bundleToJSON(bundle)));
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`${error.name}: ${error.message}\n`);
    process.exit(1);
  },
);
